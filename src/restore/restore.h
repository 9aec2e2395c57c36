// `bpfckpt restore`: an image directory -> the process tree running again. Orchestration only: files.h opens
// what processes share, shim_loader.h replaces a restorer's memory with the saved one, finalize.h sets registers.
#pragma once

#include <map>
#include <string>

#include "common/result.h"
#include "restore/preflight.h"

namespace bpfckpt::restore {

struct RestoreOptions {
	std::string dir;
	bool detach = false;  // -d: return once everything runs; otherwise wait for the root and return its status
	bool pidns = false;   // --pidns: into a new PID namespace under a bpfckpt init, saved PIDs kept inside it
	std::map<std::string, int> inherit;  // --inherit-fd fd[N]:KEY: external file KEY is restore's fd N
	std::string cgroup;   // --cgroup: cgroup images go under this cgroup instead of the one they were snapped in
	std::string root;     // --root: the image's files are looked up beneath this directory first (locate.h)
};

// Parses CRIU's "fd[N]:KEY".
Result<std::pair<std::string, int>> parse_inherit_fd(const std::string& arg);

// CRIU's names; times in seconds.
struct RestoreStats {
	double forking_time = 0;
	double restore_time = 0;
	uint64_t pages_restored = 0;
	uint64_t processes = 0;
	int root_status = 0;  // without -d: the (first) root's exit code, or 128 + the signal that killed it
};

Result<RestoreStats> restore_image(const RestoreOptions& opt);

// restore --check: what the restore would find on this machine (preflight.h), restoring nothing.
Result<std::vector<Finding>> check_image(const RestoreOptions& opt);

}  // namespace bpfckpt::restore
