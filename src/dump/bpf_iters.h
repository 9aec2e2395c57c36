/*
 * A C face for the BPF light skeleton (bpftool gen skeleton -L), which only compiles as C. The light skeleton is
 * loaded by a small BPF loader program that applies CO-RE relocations in the kernel, so libbpf never parses the
 * kernel's 5 MiB BTF in userspace: loading takes ~20 ms here instead of ~85 ms, most of a tiny dump's fixed cost.
 */
#ifndef BPFCKPT_BPF_ITERS_H
#define BPFCKPT_BPF_ITERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bck_iter_prog { BCK_ITER_TASK = 0, BCK_ITER_FILE = 1, BCK_ITER_VMA = 2 };

struct bck_iters;

/* NULL with errno set on failure. target_words: the targets bitmap's size in 64-bit words (pid_max / 64). */
struct bck_iters *bck_iters_load(uint32_t target_words);
void bck_iters_destroy(struct bck_iters *it);
int bck_iters_prog_fd(const struct bck_iters *it, enum bck_iter_prog prog);
int bck_iters_targets_fd(const struct bck_iters *it);
void bck_iters_set_filter(struct bck_iters *it, uint32_t mode, uint32_t tgid, uint64_t cgroup_id);

#ifdef __cplusplus
}
#endif

#endif
