// The cgroup v2 a `bpfckpt exec` job runs in: made fresh for the job (bpfckpt-exec-<our pid>, below the cgroup
// bpfckpt is in or below --cgroup-parent), so that everything the job forks can be snapped, killed and counted as one,
// and nothing else is. Never the root, never shared. The destructor kills what is left and removes it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/cgroup.h"
#include "common/result.h"

namespace bpfckpt::exec {

class JobCgroup {
public:
	// parent: a cgroup v2 path as the user gave it, or "" for the cgroup bpfckpt itself is in.
	static Result<std::unique_ptr<JobCgroup>> create(const std::string& parent);
	~JobCgroup();
	JobCgroup(const JobCgroup&) = delete;
	JobCgroup& operator=(const JobCgroup&) = delete;

	const cgroup::Cgroup& cg() const { return cg_; }

	// cgroup.kill, then waits up to timeout_ms for the kernel's `populated 0`: every task has exited (some may
	// still be zombies waiting for their parent).
	Status kill_and_wait(int timeout_ms);
	// rmdir of the job's cgroup and of any the job made below it, deepest first.
	Status remove();
	// Every process in the subtree (cgroup.procs of each cgroup in it).
	Result<std::vector<pid_t>> processes() const;

private:
	explicit JobCgroup(cgroup::Cgroup cg) : cg_(std::move(cg)) {}
	cgroup::Cgroup cg_;
	bool removed_ = false;
};

}  // namespace bpfckpt::exec
