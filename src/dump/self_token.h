// `dump --self-token R:W`, the dump side of bpfckpt_checkpoint_self (include/bpfckpt/self.h, src/self/token.h):
// R and W are the fds of the caller's own pipe, in the caller, which waits reading it while bpfckpt dumps it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <utility>

#include "common/fd.h"
#include "common/result.h"

namespace bpfckpt::dump {

using SelfTokenFds = std::pair<int, int>;  // the caller's read end, write end

// Puts the RESTORED byte into the frozen caller's pipe for as long as the pipes are saved, so that the image holds
// it and only a process restored from the image reads it. Taken back out before anything can thaw the caller.
class SelfToken {
public:
	// Writes the byte; with no token (a dump not started by the API), does nothing.
	static Result<SelfToken> arm(const std::optional<SelfTokenFds>& fds, pid_t caller);
	// Takes the byte back. Also done, best effort, on destruction (a failed dump).
	Status disarm();

	SelfToken(SelfToken&&) = default;
	SelfToken& operator=(SelfToken&&) = default;
	~SelfToken();

private:
	SelfToken() = default;
	pid_t caller_ = 0;
	UniqueFd read_end_, write_end_;  // ours, on the caller's pipe
};

// A failed dump tells the waiting caller why: FAILED and an errno (the error's, else one for its exit class).
// Best effort: the library's watcher reports EIO when bpfckpt could not.
void report_self_failure(pid_t caller, const SelfTokenFds& fds, const Error& e);

}  // namespace bpfckpt::dump
