// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* iter/task_file: one bck_file per fd of each target process, followed by its path. */
#include "common.bpf.h"

static __always_inline bool fd_cloexec(struct task_struct *task, __u32 fd)
{
	unsigned long *bits = BPF_CORE_READ(task, files, fdt, close_on_exec);
	unsigned long word = 0;

	bpf_probe_read_kernel(&word, sizeof(word), bits + fd / 64);
	return word & (1ul << (fd % 64));
}

static __always_inline void fill_pipe(struct bck_file *r, struct inode *inode)
{
	struct pipe_inode_info *pipe = BPF_CORE_READ(inode, i_pipe);

	if (!pipe)
		return;
	r->pipe_ring_size = BPF_CORE_READ(pipe, ring_size);
	r->pipe_readers = BPF_CORE_READ(pipe, readers);
	r->pipe_writers = BPF_CORE_READ(pipe, writers);
}

static __always_inline void fill_socket(struct bck_file *r, struct file *file)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);

	if (!sock)
		return;
	r->sock_type = BPF_CORE_READ(sock, type);
	r->sock_family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	if (r->sock_family == 1 /* AF_UNIX */) {
		struct unix_sock *u = (void *)BPF_CORE_READ(sock, sk);

		r->sock_peer_ino = BPF_CORE_READ(u, peer, sk_socket, file, f_inode, i_ino);
	}
}

SEC("iter/task_file")
int dump_file(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct bck_file r = {};
	struct inode *inode;

	if (!task || !file || !is_frozen_target(task))
		return 0;
	/* Direct loads (a few ns each) rather than bpf_probe_read_kernel calls (tens): see task_vma.bpf.c. */
	inode = file->f_inode;
	r.hdr.kind = BCK_REC_FILE;
	r.hdr.size = sizeof(r);
	r.tgid = task->tgid;
	r.fd = ctx->fd;
	r.file_id = (__u64)file;
	r.pos = file->f_pos;
	r.f_flags = file->f_flags;
	r.f_mode = file->f_mode;
	fill_inode_identity(&r, inode);
	r.size = inode->i_size;
	r.rdev = inode->i_rdev;
	if (fd_cloexec(task, ctx->fd))
		r.flags |= BCK_FILE_F_CLOEXEC;
	if ((r.i_mode & BCK_S_IFMT) == BCK_S_IFIFO)
		fill_pipe(&r, inode);
	else if ((r.i_mode & BCK_S_IFMT) == BCK_S_IFSOCK)
		fill_socket(&r, file);
	bpf_seq_write(seq, &r, sizeof(r));
	emit_path(seq, &file->f_path, BCK_PATH_FILE);
	return 0;
}
