// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* iter/task_vma: one bck_vma per mapping of each target process, followed by its file's path if it has one. */
#include "path_walk.bpf.h"

/*
 * _install_special_mapping() VMAs ([vdso], [vvar], [vvar_vclock], [uprobes]) have no file, vm_ops set and
 * vm_private_data pointing at a struct vm_special_mapping whose first member is the name /proc shows. Comparing
 * vm_ops->name with special_mapping_name would be exact, but resolving that static symbol makes libbpf parse all
 * of /proc/kallsyms (~50 ms here); a name that does not look like "[...]" is ignored instead.
 */
static __always_inline void fill_special(struct bck_vma *r, struct vm_area_struct *vma)
{
	struct vm_special_mapping *sm;
	const char *name;

	if (!BPF_CORE_READ(vma, vm_ops))
		return;
	sm = BPF_CORE_READ(vma, vm_private_data);
	if (!sm)
		return;
	name = BPF_CORE_READ(sm, name);
	if (bpf_probe_read_kernel_str(r->special, sizeof(r->special), name) <= 0 || r->special[0] != '[')
		r->special[0] = 0;
}

/*
 * A mapped file's path is emitted once per run, however many VMAs and processes map it (libc: five VMAs in
 * every process): walking the path (path_walk.bpf.h) is most of this iterator's cost. Keyed by inode; `run` is
 * bumped by the collector before each run instead of clearing the map. When an object's output does not fit the read buffer the kernel
 * runs the program again for the same VMA, so the VMA that first emitted a path emits it again on a re-run.
 * A plain hash, not preallocated (an LRU map must be, which cost ~3 ms of each load): keys are the mapped files a
 * process has seen, and when it is full an update fails and the path is simply emitted again.
 */
struct path_seen {
	__u64 run;
	__u64 start;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct path_seen);
} vma_paths SEC(".maps");

static __always_inline bool path_already_emitted(struct bck_vma *r, __u64 inode)
{
	struct path_seen *seen = bpf_map_lookup_elem(&vma_paths, &inode);
	struct path_seen now = {run, r->start, r->tgid, 0};

	if (seen && seen->run == run && !(seen->tgid == r->tgid && seen->start == r->start))
		return true;
	bpf_map_update_elem(&vma_paths, &inode, &now, BPF_ANY);
	return false;
}

SEC("iter/task_vma")
int dump_vma(struct bpf_iter__task_vma *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct vm_area_struct *vma = ctx->vma;
	struct bck_vma r = {};
	struct file *file;

	if (!task || !vma || !is_frozen_target(task))
		return 0;
	/*
	 * Direct loads, not BPF_CORE_READ: a load through a pointer the verifier does not trust is still allowed (it
	 * becomes a load that cannot fault), and it costs a few ns where each bpf_probe_read_kernel call costs tens;
	 * with 23000 VMAs per 1000 processes that was a third of this iterator's time.
	 */
	file = vma->vm_file;
	r.hdr.kind = BCK_REC_VMA;
	r.hdr.size = sizeof(r);
	r.tgid = task->tgid;
	r.start = vma->vm_start;
	r.end = vma->vm_end;
	r.vm_flags = vma->vm_flags;
	r.pgoff = vma->vm_pgoff;
	r.file_id = (__u64)file;
	if (file) {
		struct inode *inode = file->f_inode;

		fill_inode_identity(&r, inode);
		r.file_size = inode->i_size;
		if (path_already_emitted(&r, (__u64)inode))
			r.flags |= BCK_VMA_F_PATH_CACHED;
	} else {
		fill_special(&r, vma);
	}
	bpf_seq_write(seq, &r, sizeof(r));
	if (file && !(r.flags & BCK_VMA_F_PATH_CACHED))
		emit_file_path(seq, file, BCK_PATH_VMA);
	return 0;
}
