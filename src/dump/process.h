// Process- and thread-level state from iter/task records: ids, credentials, signals, limits, timers, mm fields.
// Registers come from ptrace (threads.h), the memory map from vmas.h, fds from files.h.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "dump/collector.h"
#include "image/model.h"

namespace bpfckpt::dump {

// leader: the thread-group leader's record (sigactions, timers, paths); threads: every thread, leader included.
// state_before: each thread's scheduler state before it was frozen (freezing makes them all "traced").
Result<image::Process> build_process(const RawTask& leader, const std::vector<const RawTask*>& threads,
				     const std::map<pid_t, uint32_t>& state_before);

// Refuses state the restore engine cannot bring back, naming the process and the reason.
Status check_supported(const RawTask& leader);

std::string task_state_name(uint32_t state, uint32_t exit_state);

// Names the address space a task record shows (exec replaces it): the kernel's mm address, hashed, so no kernel
// pointer leaks. 0 for a task without one.
uint64_t mm_key_of(const bck_task& r);

}  // namespace bpfckpt::dump
