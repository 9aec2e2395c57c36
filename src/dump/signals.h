// The siginfo of queued signals, read with PTRACE_PEEKSIGINFO from a thread in a ptrace stop: with their si_code,
// si_pid and si_value, several queued instances of a real-time signal come back in their order.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "image/validate.h"

namespace bpfckpt::dump {

// The thread's own queue, or (shared) its process's, as consecutive 128-byte siginfo_t, oldest first. More than
// image::kMaxQueuedSignals in one queue are refused.
Result<std::string> peek_siginfos(pid_t tid, bool shared);

}  // namespace bpfckpt::dump
