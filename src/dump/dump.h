// `bpfckpt dump`: a process tree -> an image directory. The orchestration only; each kind of state has its file.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <utility>

#include "common/result.h"

namespace bpfckpt::dump {

class Collector;

struct DumpOptions {
	pid_t pid = 0;               // dump: the root of the tree
	bool children = true;        // --no-children: the process alone
	std::string cgroup;          // snap: the cgroup (a path as the user gave it)
	std::string dir;
	bool leave_running = false;  // -R: thaw instead of kill
	bool track_mem = false;      // --track-mem: arm write tracking, so a later dump can be incremental
	std::string prev_dir;        // --prev-images-dir: save only what changed since this image
	bool fsync = true;
	bool progress = true;
	// -R: write-protect the memory and copy it after the thaw (src/dump/live_copy.h); --frozen-copy: while frozen
	bool live_copy = true;
	// --self-token R:W (hidden): the fds of the caller's pipe, for bpfckpt_checkpoint_self (src/dump/self_token.h)
	std::optional<std::pair<int, int>> self_token;
	// Loaded iterators to use (watch loads them once for all its snapshots); null: this dump loads its own.
	Collector* collector = nullptr;
};

// CRIU's names; times in seconds.
struct DumpStats {
	double freezing_time = 0;  // from the first seize until every thread is stopped
	double frozen_time = 0;    // from stopped until thawed (-R) or killed
	double memdump_time = 0;   // scanning and copying pages
	double memwrite_time = 0;  // of which writing blobs (overlapped with copying)
	double total_time = 0;
	uint64_t pages_scanned = 0;
	uint64_t pages_written = 0;
	uint64_t processes = 0;
	uint64_t threads = 0;
	uint64_t image_bytes = 0;
	bool incremental = false;  // the image names a parent
	std::vector<pid_t> pids;   // the processes in the image
};

// The BPF iterators, loaded: a dump's largest fixed cost (~20 ms), paid once by a caller that dumps repeatedly.
Result<std::unique_ptr<Collector>> load_collector();

// `dump -t PID`: the process and (unless !children) its descendants, frozen with ptrace.
Result<DumpStats> dump_tree(const DumpOptions& opt);
// `snap CGROUP`: every process in a cgroup v2 subtree, frozen by the kernel's cgroup freezer first.
Result<DumpStats> snap_cgroup(const DumpOptions& opt);

}  // namespace bpfckpt::dump
