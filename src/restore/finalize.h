// The last step of a restore, done from outside with ptrace: every thread of a restored process is parked on the
// shim's int3. The restorer removes the shim's mapping (a munmap injected through the vdso's syscall instruction,
// since code cannot unmap itself and go on) and sets each thread's saved registers, FPU/AVX state, signal mask,
// affinity and priority, adjusted as the kernel would for an interrupted syscall. Detaching then lets them run.
#pragma once

#include <sys/types.h>

#include <functional>

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::restore {

// outer_tid: a saved TID as this (the restorer's) PID namespace numbers it; they differ under --pidns.
Status finalize_process(const image::Process& p, const std::string& dir, uint64_t shim_start, uint64_t shim_len,
			const std::function<pid_t(uint32_t)>& outer_tid);

}  // namespace bpfckpt::restore
