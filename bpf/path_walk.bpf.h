/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Paths of files the iterators reach by walking kernel structures (an mm's exe_file, a task's cwd and root, a
 * VMA's file), built by walking dentries and mounts as d_path() does.
 *
 * Why not bpf_d_path: it takes only pointers the verifier trusts, and since 6.18.44 (the kernel these machines run
 * now) a pointer loaded from a field the kernel does not list as safe (task->mm, task->fs, vma->vm_file) is
 * untrusted, even from a trusted task or a trusted VMA and inside bpf_rcu_read_lock(). Only the task_file
 * iterator's own file is still trusted, and bpf_d_path stays there (common.bpf.h).
 *
 * What d_path() gives, reproduced here: components from the reader's root (bpfckpt's, the task running the read),
 * crossing mounts up to their mountpoints; " (deleted)" after an unlinked file; for a pseudo file (memfd, MAP_SHARED
 * anonymous memory, an anon inode) the name its filesystem's d_dname gives. A path that cannot be built (deeper
 * than BCK_WALK_DEPTH, longer than BCK_PATH_MAX, a pseudo file of another filesystem) is emitted empty, which the
 * collector refuses rather than guess. The tasks are frozen, so no rename races the walk.
 */
#ifndef BPFCKPT_PATH_WALK_BPF_H
#define BPFCKPT_PATH_WALK_BPF_H

#include "common.bpf.h"

#define BCK_WALK_DEPTH 128  /* path components; a power of two (index masks) */
#define BCK_WALK_MOUNTS 32  /* mount crossings on top of the components */
#define BCK_NAME_SLACK 256  /* NAME_MAX + NUL: a name copied at any offset below BCK_PATH_MAX stays in the buffer */

#define BCK_TMPFS_MAGIC 0x01021994
#define BCK_HUGETLBFS_MAGIC 0x958458f6
#define BCK_ANON_INODE_FS_MAGIC 0x09041934

struct walk_buf {
	struct bck_hdr hdr;
	char path[BCK_PATH_MAX + BCK_NAME_SLACK];
	const unsigned char *names[BCK_WALK_DEPTH]; /* the leaf's first */
	/*
	 * Counters live here, not in the bpf_loop context on the stack: the verifier cannot know a map value's
	 * contents, so the callback's states converge at once instead of once per count (which ran past its limit).
	 */
	__u32 n;     /* names collected */
	__u32 off;   /* bytes of path written */
	__u32 state; /* enum walk_state */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_buf);
} walk_scratch SEC(".maps") __weak;

enum walk_state { WALK_RUNNING, WALK_DONE, WALK_FAILED };

/* bpf_loop context: where the walk is, and what the reader's root is. */
struct path_walk {
	struct dentry *dentry;
	struct vfsmount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
};

/*
 * off within the path buffer, masked where the verifier sees it: clang drops a plain `& mask` after a bounds check
 * it already knows holds, and the verifier, which lost that bound in a spill, then refuses the access.
 */
static __always_inline __u64 path_index(__u64 off)
{
	asm volatile("%[off] &= %[mask]" : [off] "+r"(off) : [mask] "i"(BCK_PATH_MAX - 1));
	return off;
}

static __always_inline struct mount *real_mount(struct vfsmount *mnt)
{
	return (struct mount *)((char *)mnt - bpf_core_field_offset(struct mount, mnt));
}

/* One step towards the root: a mount crossing, or one name collected. */
static long walk_up_step(__u64 i, void *ctx)
{
	struct path_walk *w = ctx;
	struct dentry *d = w->dentry;
	struct vfsmount *mnt = w->mnt;
	__u32 zero = 0;
	struct walk_buf *b = bpf_map_lookup_elem(&walk_scratch, &zero);

	if (!b)
		return 1;
	if (d == w->root_dentry && mnt == w->root_mnt) {
		b->state = WALK_DONE;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);

	if (d == BPF_CORE_READ(mnt, mnt_root)) {
		struct mount *m = real_mount(mnt);
		struct mount *up = BPF_CORE_READ(m, mnt_parent);

		if (up == m) { /* the top of its mount tree: a detached mount or another namespace's root */
			b->state = WALK_DONE;
			return 1;
		}
		w->dentry = BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = (struct vfsmount *)((char *)up + bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	if (d == parent) { /* escaped its mount (d_path stops there too) */
		b->state = WALK_DONE;
		return 1;
	}
	__u32 n = b->n;

	if (n >= BCK_WALK_DEPTH) {
		b->state = WALK_FAILED;
		return 1;
	}
	b->names[n & (BCK_WALK_DEPTH - 1)] = BPF_CORE_READ(d, d_name.name);
	b->n = n + 1;
	w->dentry = parent;
	return 0;
}

/* Appends a NUL-terminated string of at most BCK_NAME_SLACK bytes (a dentry's name or our .rodata); false when
 * it does not fit. */
static __always_inline bool walk_append(struct walk_buf *b, const void *s)
{
	__u32 off = b->off;
	long len;

	if (off >= BCK_PATH_MAX - 1)
		return false;
	len = bpf_probe_read_kernel_str(&b->path[path_index(off)], BCK_NAME_SLACK, s);
	if (len <= 0)
		return false;
	b->off = off + len - 1;
	return b->off < BCK_PATH_MAX;
}

static __always_inline bool walk_append_char(struct walk_buf *b, char c)
{
	__u32 off = b->off;

	if (off >= BCK_PATH_MAX - 1)
		return false;
	b->path[path_index(off)] = c;
	b->off = off + 1;
	return true;
}

/* Appends "/" and the i-th name from the root down. */
static long walk_down_step(__u64 i, void *ctx)
{
	__u32 zero = 0;
	struct walk_buf *b = bpf_map_lookup_elem(&walk_scratch, &zero);

	if (!b)
		return 1;
	if (!walk_append_char(b, '/') || !walk_append(b, b->names[(b->n - 1 - i) & (BCK_WALK_DEPTH - 1)])) {
		b->state = WALK_FAILED;
		return 1;
	}
	return 0;
}

/* unlinked: unhashed and not the root of its tree (d_unlinked) */
static __always_inline bool dentry_unlinked(struct dentry *d)
{
	return !BPF_CORE_READ(d, d_hash.pprev) && BPF_CORE_READ(d, d_parent) != d;
}

static const char walk_deleted[] = " (deleted)";
static const char walk_anon_inode[] = "anon_inode:";

/* A pseudo file (d_path defers to d_dname): the names tmpfs/hugetlbfs (simple_dname) and anon inodes give. */
static __always_inline bool walk_pseudo(struct walk_buf *b, struct dentry *d)
{
	unsigned long magic = BPF_CORE_READ(d, d_sb, s_magic);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);

	if (magic == BCK_TMPFS_MAGIC || magic == BCK_HUGETLBFS_MAGIC)
		return walk_append_char(b, '/') && walk_append(b, name) && walk_append(b, walk_deleted);
	if (magic == BCK_ANON_INODE_FS_MAGIC)
		return walk_append(b, walk_anon_inode) && walk_append(b, name);
	return false;
}

static __always_inline bool walk_real(struct walk_buf *b, struct path_walk *w, struct dentry *leaf)
{
	bpf_loop(BCK_WALK_DEPTH + BCK_WALK_MOUNTS, walk_up_step, w, 0);
	if (b->state != WALK_DONE)
		return false;
	if (b->n == 0)
		return walk_append_char(b, '/');
	bpf_loop(b->n, walk_down_step, NULL, 0);
	if (b->state == WALK_FAILED)
		return false;
	return !dentry_unlinked(leaf) || walk_append(b, walk_deleted);
}

/*
 * Builds the path of {mnt, dentry} in walk_scratch and returns its length (0 when it cannot be built). A global
 * function, so the verifier checks it once per program rather than once per call (three in iter/task): the walk
 * is most of what it verifies, and verification is most of a dump's fixed cost. Pointers come as scalars, which
 * is all a global function may take; every read through them is a probe read. __weak: each iterator's object
 * has a copy and the linker keeps one.
 */
__noinline __weak int bck_walk_path(__u64 mnt_addr, __u64 dentry_addr)
{
	struct vfsmount *mnt = (struct vfsmount *)mnt_addr;
	struct dentry *dentry = (struct dentry *)dentry_addr;
	__u32 zero = 0;
	struct walk_buf *b = bpf_map_lookup_elem(&walk_scratch, &zero);
	struct task_struct *reader = bpf_get_current_task_btf();
	struct path_walk w = {
		.dentry = dentry,
		.mnt = mnt,
		.root_dentry = BPF_CORE_READ(reader, fs, root.dentry),
		.root_mnt = BPF_CORE_READ(reader, fs, root.mnt),
	};
	const struct dentry_operations *ops;
	bool ok;

	if (!b || !dentry || !mnt)
		return 0;
	b->n = 0;
	b->off = 0;
	b->state = WALK_RUNNING;
	ops = BPF_CORE_READ(dentry, d_op);
	if (ops && BPF_CORE_READ(ops, d_dname) &&
	    (BPF_CORE_READ(dentry, d_parent) != dentry || dentry != BPF_CORE_READ(mnt, mnt_root)))
		ok = walk_pseudo(b, dentry);
	else
		ok = walk_real(b, &w, dentry);
	return ok && b->off < BCK_PATH_MAX ? b->off : 0;
}

/* Emits the path of {mnt, dentry} as a BCK_REC_PATH record tagged `tag`. */
static __always_inline void emit_walked_path(struct seq_file *seq, struct vfsmount *mnt, struct dentry *dentry,
					     __u16 tag)
{
	__u32 off = bck_walk_path((__u64)mnt, (__u64)dentry);
	__u32 zero = 0;
	struct walk_buf *b = bpf_map_lookup_elem(&walk_scratch, &zero);

	if (!b)
		return;
	if (off >= BCK_PATH_MAX)
		off = 0;
	b->path[path_index(off)] = 0;
	write_path_record(seq, &b->hdr, off + 1, tag);
}

/*
 * Task paths (exe, cwd, root) emitted in this run, by identity: most tasks share theirs with many others, and
 * each walk costs about a microsecond. The value is the tid that emitted it: when the kernel runs the program again
 * for the same task (its output did not fit the read buffer), that task emits it again.
 */
struct path_seen_by {
	__u64 run;
	__u32 tid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct bck_path_id);
	__type(value, struct path_seen_by);
} task_paths SEC(".maps") __weak;

/* Emits the path of id unless another task already did in this run. A full map just means emitting again. */
static __always_inline void emit_task_path(struct seq_file *seq, const struct bck_path_id *id, __u32 tid, __u16 tag)
{
	struct path_seen_by *seen = bpf_map_lookup_elem(&task_paths, id);
	struct path_seen_by now = {run, tid, 0};

	if (!id->dentry || (seen && seen->run == run && seen->tid != tid))
		return;
	bpf_map_update_elem(&task_paths, id, &now, BPF_ANY);
	emit_walked_path(seq, (struct vfsmount *)id->mnt, (struct dentry *)id->dentry, tag);
}

/* The path of an open file reached through kernel structures (not an iterator's own file). */
static __always_inline void emit_file_path(struct seq_file *seq, struct file *file, __u16 tag)
{
	emit_walked_path(seq, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), tag);
}

#endif
