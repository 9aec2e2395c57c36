// A userfaultfd acts on the address space of the process that created it, so one for another process's memory
// has to be created by that process: a thread of it (in a ptrace stop) runs userfaultfd() as an injected syscall,
// bpfckpt takes the new fd with pidfd_getfd, and the target's own copy is closed at once, leaving its fd table as
// it was. Write tracking (track.h) and the copy after the thaw (live_copy.h) both start here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "common/fd.h"
#include "common/result.h"

namespace bpfckpt::dump {

// userfaultfd(flags) in thread `tid` of `pid`, through the syscall instruction at `syscall_addr`; then
// UFFDIO_API with `features`. nullopt when the target may not create one with these flags (EPERM: a fd that also
// handles faults from kernel mode needs CAP_SYS_PTRACE there, unless vm.unprivileged_userfaultfd is 1).
Result<std::optional<UniqueFd>> remote_userfaultfd(pid_t pid, pid_t tid, uint64_t syscall_addr, int flags,
						    uint64_t features);

}  // namespace bpfckpt::dump
