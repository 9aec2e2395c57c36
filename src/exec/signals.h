// Signals for `bpfckpt exec`: the signals it acts on are blocked and read from a signalfd (so a snap, which
// blocks SIGINT/SIGTERM/SIGHUP itself, and the supervision loop see the same pending signals), and signal names
// as users write them.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <initializer_list>
#include <optional>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace bpfckpt::exec {

class SignalFd {
public:
	// Blocks `signals` (0 entries are skipped) and opens a signalfd for them.
	static Result<SignalFd> open(std::initializer_list<int> signals);
	SignalFd(SignalFd&& o) noexcept;
	SignalFd& operator=(SignalFd&&) = delete;
	~SignalFd();  // restores the mask bpfckpt started with

	int fd() const { return fd_.get(); }
	// The mask from before open(): what a child must run with.
	const sigset_t& old_mask() const { return old_; }
	// One pending signal, or nullopt when none is.
	std::optional<signalfd_siginfo> take();

private:
	SignalFd() = default;
	UniqueFd fd_;
	sigset_t old_{};
	bool restore_ = false;
};

// "USR1", "SIGUSR1", "usr1" or "10". Refuses what cannot be caught (KILL, STOP) and SIGCHLD, which exec needs.
Result<int> parse_signal(const std::string& name);
// "SIGUSR1".
std::string signal_name(int sig);

}  // namespace bpfckpt::exec
