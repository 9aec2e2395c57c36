#include "exec/signals.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <utility>

namespace bpfckpt::exec {

Result<SignalFd> SignalFd::open(std::initializer_list<int> signals)
{
	sigset_t set;
	sigemptyset(&set);
	for (int sig : signals)
		if (sig)
			sigaddset(&set, sig);
	SignalFd s;
	if (sigprocmask(SIG_BLOCK, &set, &s.old_) != 0)
		return fail_sys(errno, "block signals");
	s.restore_ = true;
	s.fd_.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
	if (!s.fd_)
		return fail_sys(errno, "signalfd");
	return s;
}

SignalFd::SignalFd(SignalFd&& o) noexcept
	: fd_(std::move(o.fd_)), old_(o.old_), restore_(std::exchange(o.restore_, false))
{
}

SignalFd::~SignalFd()
{
	if (restore_)
		sigprocmask(SIG_SETMASK, &old_, nullptr);
}

std::optional<signalfd_siginfo> SignalFd::take()
{
	signalfd_siginfo si;
	ssize_t n;
	do
		n = ::read(fd_.get(), &si, sizeof(si));
	while (n < 0 && errno == EINTR);
	if (n != ssize_t(sizeof(si)))
		return std::nullopt;
	return si;
}

Result<int> parse_signal(const std::string& name)
{
	int sig = 0;
	auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), sig);
	if (ec != std::errc() || end != name.data() + name.size()) {
		std::string n;
		for (char c : name)
			n += char(std::toupper(static_cast<unsigned char>(c)));
		if (n.rfind("SIG", 0) == 0)
			n.erase(0, 3);
		sig = 0;
		for (int s = 1; s < NSIG; s++)
			if (const char* abbrev = sigabbrev_np(s); abbrev && n == abbrev)
				sig = s;
	}
	if (sig <= 0 || sig >= NSIG)
		return fail(ExitCode::usage, "signal {:?}: not a signal name or number (e.g. USR1, SIGUSR2, 10)", name);
	if (sig == SIGKILL || sig == SIGSTOP)
		return fail(ExitCode::usage, "signal {}: cannot be caught, so it cannot trigger a snap", signal_name(sig));
	if (sig == SIGCHLD)
		return fail(ExitCode::usage, "signal SIGCHLD: bpfckpt exec watches its command with it; choose another");
	return sig;
}

std::string signal_name(int sig)
{
	const char* abbrev = sigabbrev_np(sig);
	return abbrev ? std::string("SIG") + abbrev : fmt::format("signal {}", sig);
}

}  // namespace bpfckpt::exec
