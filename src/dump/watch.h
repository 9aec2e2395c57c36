// `bpfckpt watch`: a snapshot of a process tree or a cgroup every interval, as a chain under one directory: a full
// image, then incremental ones (write tracking stays armed between them), a full one again every --full-every.
// --keep prunes the oldest by flattening its child (which then needs no parent) and deleting it, so every kept
// snapshot stays restorable. SIGINT/SIGTERM/SIGHUP stop it between snapshots (or abort the one being taken),
// leaving the target running and untracked.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace bpfckpt::dump {

struct WatchOptions {
	pid_t pid = 0;         // -t PID, or
	std::string cgroup;    // a cgroup
	std::string dir;
	double interval = 1;   // seconds between the starts of two snapshots
	unsigned keep = 0;     // 0: keep all
	unsigned full_every = 0;  // 0: only the first is full
	bool json = false;
	bool fsync = true;
};

Status watch(const WatchOptions& opt);

}  // namespace bpfckpt::dump
