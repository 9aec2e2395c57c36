#include "dump/signals.h"

#include <signal.h>
#include <sys/ptrace.h>

#include <iterator>

namespace bpfckpt::dump {

Result<std::string> peek_siginfos(pid_t tid, bool shared)
{
	const char* which = shared ? "its process's" : "its own";
	std::string out;
	siginfo_t batch[32];
	for (;;) {
		__ptrace_peeksiginfo_args args{};
		args.off = out.size() / sizeof(siginfo_t);
		args.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0;
		args.nr = int32_t(std::size(batch));
		long n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, batch);
		if (n < 0)
			return fail_sys(errno, "thread {}: read {} queued signals", tid, which);
		if (n == 0)
			return out;
		out.append(reinterpret_cast<const char*>(batch), size_t(n) * sizeof(siginfo_t));
		if (out.size() / sizeof(siginfo_t) > image::kMaxQueuedSignals)
			return fail(ExitCode::unsupported, "thread {}: more than {} signals queued in {} queue: not "
				    "supported", tid, image::kMaxQueuedSignals, which);
	}
}

}  // namespace bpfckpt::dump
