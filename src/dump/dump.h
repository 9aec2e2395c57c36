// `bpfckpt dump`: a process tree -> an image directory. The orchestration only; each kind of state has its file.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace bpfckpt::dump {

struct DumpOptions {
	pid_t pid = 0;
	std::string dir;
	bool leave_running = false;  // -R: thaw instead of kill
	bool fsync = true;
	bool progress = true;
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
};

Result<DumpStats> dump_tree(const DumpOptions& opt);

}  // namespace bpfckpt::dump
