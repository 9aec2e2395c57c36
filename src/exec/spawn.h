// Starting a job's command: forked, moved into the job's cgroup before exec (so that nothing it runs is ever
// outside it), given back the signal mask bpfckpt started with, then exec'ed with bpfckpt's stdio and environment.
// An exec that fails is reported through a close-on-exec pipe, so that "not found" is told apart from a command
// that ran and exited 127.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/cgroup.h"
#include "common/fd.h"
#include "common/result.h"

namespace bpfckpt::exec {

struct Spawned {
	pid_t pid = -1;
	UniqueFd pidfd;      // signals to the command go through this, never a PID that could have been reused
	int exec_errno = 0;  // non-zero: execvp failed with it, the child has exited and been reaped
};

// argv[0] is searched in PATH as a shell would. Fails (nothing left running) when the child could not join the
// cgroup.
Result<Spawned> spawn_in_cgroup(const std::vector<std::string>& argv, const cgroup::Cgroup& cg,
				const sigset_t& child_mask);

}  // namespace bpfckpt::exec
