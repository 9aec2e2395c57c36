#include "dump/bpf_iters.h"

#include <errno.h>
#include <stdlib.h>

#include "bpfckpt_iters.lskel.h"

struct bck_iters {
	struct bpfckpt_iters *skel;
};

struct bck_iters *bck_iters_load(uint32_t target_words)
{
	struct bck_iters *it = calloc(1, sizeof(*it));
	int err;

	if (!it)
		return NULL;
	it->skel = bpfckpt_iters__open();
	if (!it->skel) {
		err = errno ? errno : EINVAL;
		goto fail;
	}
	/* the light skeleton's loader takes a non-zero max_entries as given */
	it->skel->maps.targets.max_entries = target_words;
	err = bpfckpt_iters__load(it->skel);
	if (err) {
		err = err < 0 ? -err : EINVAL;
		bpfckpt_iters__destroy(it->skel);
		goto fail;
	}
	return it;
fail:
	free(it);
	errno = err;
	return NULL;
}

void bck_iters_destroy(struct bck_iters *it)
{
	if (!it)
		return;
	bpfckpt_iters__destroy(it->skel);
	free(it);
}

int bck_iters_prog_fd(const struct bck_iters *it, enum bck_iter_prog prog)
{
	switch (prog) {
	case BCK_ITER_TASK:
		return it->skel->progs.dump_task.prog_fd;
	case BCK_ITER_FILE:
		return it->skel->progs.dump_file.prog_fd;
	case BCK_ITER_VMA:
		return it->skel->progs.dump_vma.prog_fd;
	}
	return -1;
}

int bck_iters_targets_fd(const struct bck_iters *it)
{
	return it->skel->maps.targets.map_fd;
}

void bck_iters_set_filter(struct bck_iters *it, uint32_t mode, uint32_t tgid, uint64_t cgroup_id)
{
	it->skel->bss->filter_mode = mode;
	it->skel->bss->filter_tgid = tgid;
	it->skel->bss->filter_cgroup_id = cgroup_id;
	it->skel->bss->run++; /* forgets which VMA paths were emitted */
}
