// One walk of a process's page tables with the PAGEMAP_SCAN ioctl (on /proc/PID/pagemap): as many calls as the
// result needs, each matching run of pages handed to a callback.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>

#include "bpfckpt/compat.h"
#include "common/fd.h"
#include "common/result.h"

namespace bpfckpt::dump {

// The pm_scan_arg fields that choose pages (PAGE_IS_* categories) and what happens to them (PM_SCAN_* flags).
struct ScanQuery {
	uint64_t flags = 0;
	uint64_t category_inverted = 0;
	uint64_t category_mask = 0;
	uint64_t category_anyof_mask = 0;
	uint64_t return_mask = 0;
};

// /proc/PID/pagemap, where the scans of pid go.
Result<UniqueFd> open_pagemap(pid_t pid);

// Walks [start, end); 0, or the errno of the call that failed (EPERM with PM_SCAN_CHECK_WPASYNC: a vma in the
// range is not registered WP_ASYNC).
int pagemap_scan(int pagemap, uint64_t start, uint64_t end, const ScanQuery& q,
		 const std::function<void(const page_region&)>& each);

}  // namespace bpfckpt::dump
