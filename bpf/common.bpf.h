/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the three iterators share: the target filter and the record emitters. */
#ifndef BPFCKPT_COMMON_BPF_H
#define BPFCKPT_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfckpt/records.h"

/*
 * The three iterator files are linked into one object (bpftool gen object) so libbpf parses the kernel's BTF once
 * per run, not once per iterator: on these VMs each parse costs ~100 ms. What they share is defined __weak here,
 * so each file compiles alone and the linker keeps one copy.
 */
char LICENSE[] SEC("license") __weak = "Dual BSD/GPL";

/* Set by the collector through the skeleton's .bss before each run. */
__u32 filter_mode __weak;      /* enum bck_filter_mode */
__u32 filter_tgid __weak;      /* BCK_FILTER_DESCENDANTS */
__u64 filter_cgroup_id __weak; /* BCK_FILTER_CGROUP */

/* BCK_FILTER_TGID_SET: the frozen tasks' tgids. 32768 is pid_max's default and this machine's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps") __weak;

/* One page-plus of scratch per CPU for records with a path: bigger than the 512-byte BPF stack allows. */
struct path_buf {
	struct bck_hdr hdr;
	char path[BCK_PATH_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buf);
} path_scratch SEC(".maps") __weak;

#define BCK_MAX_ANCESTRY 64

static __always_inline bool is_descendant(struct task_struct *task, __u32 root)
{
	for (int i = 0; i < BCK_MAX_ANCESTRY; i++) {
		__u32 tgid = BPF_CORE_READ(task, tgid);
		if (tgid == root)
			return true;
		if (tgid <= 1)
			return false;
		task = BPF_CORE_READ(task, real_parent);
		if (!task)
			return false;
	}
	return false;
}

/*
 * In the cgroup v2 subtree whose root has id filter_cgroup_id: the task's default-hierarchy cgroup or one of its
 * ancestors is that cgroup. A walk up self.parent, not the bpf_cgroup_from_id/bpf_task_under_cgroup kfuncs: a
 * light skeleton's loader leaves __weak kfuncs unresolved, and the walk works from every iterator.
 */
static __always_inline bool in_cgroup(struct task_struct *task)
{
	struct cgroup *cg = BPF_CORE_READ(task, cgroups, dfl_cgrp);

	for (int i = 0; i < BCK_MAX_ANCESTRY && cg; i++) {
		if (BPF_CORE_READ(cg, kn, id) == filter_cgroup_id)
			return true;
		/* self is a cgroup's first member: its parent css is the parent cgroup */
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	return false;
}

static __always_inline bool is_target(struct task_struct *task)
{
	__u32 tgid = task->tgid;

	switch (filter_mode) {
	case BCK_FILTER_TGID_SET:
		return bpf_map_lookup_elem(&targets, &tgid) != NULL;
	case BCK_FILTER_DESCENDANTS:
		return is_descendant(task, filter_tgid);
	case BCK_FILTER_CGROUP:
		return in_cgroup(task);
	}
	return false;
}

/*
 * Emits path as a BCK_REC_PATH record. One that bpf_d_path cannot resolve (longer than BCK_PATH_MAX) is emitted
 * empty, header only: the collector refuses it rather than guess.
 */
static __always_inline void emit_path(struct seq_file *seq, const struct path *path, __u16 tag)
{
	__u32 zero = 0;
	struct path_buf *buf = bpf_map_lookup_elem(&path_scratch, &zero);
	long len;
	__u32 size;

	if (!buf)
		return;
	/* bpf_d_path's prototype predates const paths (6.18 made f_path const) */
	len = bpf_d_path((struct path *)path, buf->path, sizeof(buf->path));
	if (len <= 0 || len > BCK_PATH_MAX)
		len = 0;
	size = (sizeof(buf->hdr) + (__u32)len + 7) & ~7u;
	if (size > sizeof(*buf))
		size = sizeof(*buf);
	buf->hdr.kind = BCK_REC_PATH;
	buf->hdr.tag = tag;
	buf->hdr.size = size;
	bpf_seq_write(seq, buf, size);
}

static __always_inline __u64 inode_mtime_sec(struct inode *inode)
{
	return BPF_CORE_READ(inode, i_mtime_sec);
}

#endif
