// What `bpfckpt check` tests: one probe per kernel feature or privilege that dump and restore rely on. Each probe
// exercises the feature for real (loading the iterators, tracing a child, ...) rather than reading a version
// number, because a feature can be compiled out, blocked by an LSM or denied to us on a kernel new enough to have it.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace bpfckpt::check {

struct ProbeResult {
	std::string name;
	bool ok = false;
	bool required = true;
	std::string detail;   // what was seen when ok, why not otherwise
	bool denied = false;  // failed for want of a privilege (EPERM/EACCES, a missing capability)
};

ProbeResult probe_capabilities();
ProbeResult probe_btf();
ProbeResult probe_bpf_iterators();
ProbeResult probe_ptrace();
ProbeResult probe_pidfd_getfd();
ProbeResult probe_process_vm_readv();
ProbeResult probe_pagemap_scan();
ProbeResult probe_userfaultfd_wp_async();
ProbeResult probe_clone3_set_tid();
ProbeResult probe_cgroup_freezer();
ProbeResult probe_posix_timer_ids();  // not required: only images with POSIX timers need it

// Every probe, in the order `bpfckpt check` prints them.
std::vector<ProbeResult> run_all_probes();

// Success when every required probe holds. Otherwise ExitCode::permission when each missing requirement is a
// missing privilege (running as root would fix it), ExitCode::kernel when any is not.
Status verdict(const std::vector<ProbeResult>& results);

}  // namespace bpfckpt::check
