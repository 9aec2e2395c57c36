// Signals pending at the dump, brought back with their siginfo: the shim queues each saved siginfo again from inside
// the restored process (the kernel refuses a forged si_code from another process), and the restorer sends, as from
// kill(), only the pending signals that have none (a standard signal whose siginfo the kernel could not allocate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::restore {

struct QueuedSignal {
	uint32_t tid = 0;  // the thread whose own queue held it; 0 for the process's queue
	int signo = 0;
	std::string info;  // siginfo_t bytes, as PTRACE_PEEKSIGINFO gave them
};

// Every queued siginfo of p, each queue oldest first: the process's, then each thread's. SIGKILL and SIGSTOP are left
// out (a stopped process is stopped again by the restorer). A signal number out of 1..64 is a bad image.
Result<std::vector<QueuedSignal>> read_queued_signals(const std::string& dir, const image::Process& p);

// The signals of `queue` (0: the process's, else a tid) that have a saved siginfo, as a sigset bit mask.
uint64_t signals_with_siginfo(const std::vector<QueuedSignal>& queued, uint32_t queue);

}  // namespace bpfckpt::restore
