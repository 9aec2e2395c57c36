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
/* Bumped by the collector before each run: the path caches (task_paths, vma_paths) hold entries of older runs. */
__u64 run __weak;

/*
 * BCK_FILTER_TGID_SET: the frozen tasks' tgids, as a bitmap: bit tgid % 64 of word tgid / 64. An array, so the
 * verifier inlines each lookup (this filter runs for every VMA and fd of every task in the system) and filling it is
 * one batch write of the words, with nothing to allocate. max_entries is pid_max / 64, set by the collector before
 * the load (bck_iters_load); 512 words is pid_max 32768.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
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

/*
 * The frozen set (BCK_FILTER_TGID_SET), the only filter the file and VMA iterators run with: the collector fills
 * the targets map before it reads them. The discovery filters live with the task iterator.
 */
static __always_inline bool is_frozen_target(struct task_struct *task)
{
	__u32 tgid = task->tgid;
	__u32 word = tgid / 64;
	__u64 *bits = bpf_map_lookup_elem(&targets, &word);

	return bits && (*bits >> (tgid % 64)) & 1;
}

/*
 * What a file record and a VMA record both say of the inode behind them, by the same names: restore checks with
 * it that a file is still the one dumped (src/restore/locate.cpp). A macro, as the records are two types. Direct
 * loads: see task_vma.bpf.c.
 */
#define fill_inode_identity(r, inode)                       \
	do {                                                \
		(r)->ino = (inode)->i_ino;                  \
		(r)->dev = (inode)->i_sb->s_dev;            \
		(r)->i_mode = (inode)->i_mode;              \
		(r)->mtime_sec = (inode)->i_mtime_sec;      \
		(r)->mtime_nsec = (inode)->i_mtime_nsec;    \
	} while (0)

/*
 * Writes a BCK_REC_PATH record: hdr, then the path after it in the same buffer, len bytes with its NUL (0: none).
 * Padded to 8 bytes and capped at BCK_PATH_MAX, which both scratch buffers have room for.
 */
static __always_inline void write_path_record(struct seq_file *seq, struct bck_hdr *hdr, __u32 len, __u16 tag)
{
	__u32 size = (sizeof(*hdr) + len + 7) & ~7u;

	if (size > sizeof(*hdr) + BCK_PATH_MAX)
		size = sizeof(*hdr) + BCK_PATH_MAX;
	hdr->kind = BCK_REC_PATH;
	hdr->tag = tag;
	hdr->size = size;
	bpf_seq_write(seq, hdr, size);
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

	if (!buf)
		return;
	/* bpf_d_path's prototype predates const paths (6.18 made f_path const) */
	len = bpf_d_path((struct path *)path, buf->path, sizeof(buf->path));
	if (len <= 0 || len > BCK_PATH_MAX)
		len = 0;
	write_path_record(seq, &buf->hdr, (__u32)len, tag);
}

#endif
