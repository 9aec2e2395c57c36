// Freezing a process tree with ptrace: every thread is PTRACE_SEIZEd and PTRACE_INTERRUPTed, so it sits in a
// ptrace stop where its registers and memory can be read. The set is re-listed (through the task iterator) until
// a round finds no new task, so a fork racing with the freeze is caught. Every thread is detached on every path,
// by the destructor if nothing else; a detached thread runs on exactly as before.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <set>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "dump/collector.h"

namespace bpfckpt::dump {

class PtraceFreezer {
public:
	PtraceFreezer() = default;
	~PtraceFreezer();
	PtraceFreezer(const PtraceFreezer&) = delete;
	PtraceFreezer& operator=(const PtraceFreezer&) = delete;

	// Seizes every live task that `list` returns, until a round brings nothing new. Zombies cannot be traced
	// and need not be: they have no state that changes.
	Status freeze(const std::function<Result<std::vector<RawTask>>()>& list);
	// Seizes one thread and waits until it is in its interrupt stop; false when it exited first.
	Result<bool> seize(pid_t tid);
	void detach_all();

	const std::set<pid_t>& threads() const { return seized_; }
	// pidfds of the thread-group leaders, opened while they were seized: signals go through these, never a bare
	// PID that could have been reused.
	const std::map<pid_t, UniqueFd>& pidfds() const { return pidfds_; }

	// Kills every seized process through its pidfd (the dump's default ending), then detaches.
	void kill_all();

private:
	std::set<pid_t> seized_;
	std::map<pid_t, UniqueFd> pidfds_;
};

}  // namespace bpfckpt::dump
