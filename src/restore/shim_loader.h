// Building the shim's plan for one process and handing control to the shim. Runs inside the restored process,
// still in bpfckpt's address space, as the very last step before the saved memory replaces it.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "image/chain.h"
#include "image/model.h"
#include "restore/locate.h"
#include "restore/signals.h"

namespace bpfckpt::restore {

// Where the shim sits in the restored process: the restorer removes it from outside at the end.
struct ShimPlacement {
	uint64_t start = 0;
	uint64_t len = 0;
};

// Chooses a hole of the saved address space that is also free in ours (so the shim can be copied there now).
Result<ShimPlacement> place_shim(const image::Process& p, size_t plan_bytes);

// Opens what the shim needs (page blobs, mapped files, exe) above `fd_base` and returns their numbers, so the
// caller keeps them when it closes everything else. The pages are resolved through the image chain: a run may read
// from an older image's page blob.
struct ShimInputs {
	int exe_fd = -1;
	std::vector<int> vma_fds;  // per vma, -1 for anonymous (shared memory: the master's fd of the object)
	std::vector<std::vector<image::ResolvedRun>> vma_runs;  // per vma, the pages to copy in
	std::vector<int> page_fds;  // by chain level: the process's page blob there, -1 when no run reads it
	std::vector<QueuedSignal> queued;  // signals the shim queues again
	size_t nr_runs() const;
	std::vector<int> all() const;
};
Result<ShimInputs> open_shim_inputs(const image::Chain& chain, const image::Process& p, int fd_base,
				    const std::vector<int>& shmem_fds, const FileLookup& look);

// Whether this kernel's [vdso], [vvar] and [vvar_vclock] can be moved to the image's: each present there with the
// same size. What enter_shim refuses on, checked up front.
Status check_special_mappings(const image::Process& p);

// Builds the plan, copies shim + plan into the placement and jumps. Returns only on failure. extra_close: fds
// the shim closes once memory is in place (the restorer's own control pipes).
Status enter_shim(const image::Process& p, const ShimInputs& in, const ShimPlacement& where,
		  const std::vector<int>& extra_close);

// What a SHIM_STEP_* number stands for, in the shim's error report ("timers", "creds", ...).
std::string shim_step_name(uint64_t step);

// Where the plan sits in the shim's mapping: the restorer reads the shim's error report from there.
uint64_t shim_plan_offset();

size_t shim_plan_bytes(const image::Process& p, const ShimInputs& in);

}  // namespace bpfckpt::restore
