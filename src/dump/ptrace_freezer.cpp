#include "dump/ptrace_freezer.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "common/fs.h"
#include "common/log.h"

namespace bpfckpt::dump {

namespace {

// Freezing normally takes one or two rounds; a tree that keeps forking faster than we can seize it is refused.
constexpr int kMaxRounds = 64;

int pidfd_open(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

// Waits for the thread's stop after PTRACE_INTERRUPT. A signal that arrives first shows up as a signal-delivery
// stop: it is passed on (exactly what would have happened without us) and the thread is interrupted again.
Result<bool> wait_stopped(pid_t tid)
{
	for (;;) {
		int status = 0;
		pid_t r = waitpid(tid, &status, __WALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return fail_sys(errno, "wait for thread {} to stop", tid);
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return false;  // it was on its way out before it could stop: not part of the frozen tree
		if (WIFSTOPPED(status)) {
			int sig = WSTOPSIG(status);
			int event = status >> 16;
			if (event == PTRACE_EVENT_STOP || sig == SIGTRAP)
				return true;
			if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)sig) != 0)
				return fail_sys(errno, "resume thread {} with signal {}", tid, sig);
			if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
				return fail_sys(errno, "interrupt thread {}", tid);
		}
	}
}

// After PTRACE_SEIZE fails with EPERM: a task that is exiting (or already gone) refuses too, and is no reason to
// fail; one traced by someone else is.
Result<bool> exiting_or_gone(pid_t tid)
{
	auto status = read_file(fmt::format("/proc/{}/status", tid));
	if (!status)
		return true;
	std::istringstream in(*status);
	for (std::string line; std::getline(in, line);) {
		if (line.rfind("State:", 0) == 0 && (line.find('Z') != std::string::npos || line.find('X') != std::string::npos))
			return true;
		if (line.rfind("TracerPid:", 0) == 0 && std::stol(line.substr(10)) != 0)
			return fail(ExitCode::target_busy, "thread {}: already traced by pid {} (a debugger?)", tid,
				    std::stol(line.substr(10)));
	}
	return false;
}

}  // namespace

PtraceFreezer::~PtraceFreezer() { detach_all(); }

Result<bool> PtraceFreezer::seize(pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
		int e = errno;
		if (e == ESRCH || (e == EPERM && BCK_TRY(exiting_or_gone(tid))))
			return false;
		if (e == EPERM)
			return fail_errno(ExitCode::permission, e, "thread {}: PTRACE_SEIZE refused", tid);
		return fail_sys(e, "thread {}: PTRACE_SEIZE", tid);
	}
	seized_.insert(tid);
	if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 && errno != ESRCH)
		return fail_sys(errno, "thread {}: PTRACE_INTERRUPT", tid);
	bool stopped = BCK_TRY(wait_stopped(tid));
	if (!stopped)
		seized_.erase(tid);
	return stopped;
}

Status PtraceFreezer::freeze(const std::function<Result<std::vector<RawTask>>()>& list)
{
	for (int round = 0; round < kMaxRounds; round++) {
		auto tasks = BCK_TRY(list());
		bool grew = false;
		for (const RawTask& t : tasks) {
			pid_t tid = pid_t(t.rec.tid);
			if (t.rec.exit_state || seized_.count(tid))
				continue;
			grew = true;  // even a task that vanished meanwhile: the next round must confirm the set
			if (!BCK_TRY(seize(tid)))
				continue;
			if (t.rec.tid == t.rec.tgid && !pidfds_.count(tid)) {
				int fd = pidfd_open(tid);
				if (fd < 0)
					return fail_sys(errno, "pidfd_open {}", tid);
				pidfds_.emplace(tid, UniqueFd(fd));
			}
		}
		if (!grew)
			return {};
		log::debug("freeze round {}: {} threads stopped", round + 1, seized_.size());
	}
	return fail(ExitCode::target_busy, "the tree kept growing while being frozen ({} rounds)", kMaxRounds);
}

void PtraceFreezer::detach_all()
{
	for (pid_t tid : seized_)
		ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
	seized_.clear();
}

void PtraceFreezer::kill_all()
{
	for (auto& [pid, fd] : pidfds_)
		syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
	// A traced thread that dies stays a zombie until its tracer reaps it, and the process's pidfd reports the exit
	// only once all its threads are gone: reap them rather than detach. Leaders last: the kernel reports a leader's
	// death only after the rest of its thread group is gone.
	for (int leaders = 0; leaders < 2; leaders++)
		for (pid_t tid : seized_)
			if (bool(pidfds_.count(tid)) == bool(leaders))
				waitpid(tid, nullptr, __WALL);
	seized_.clear();
}

}  // namespace bpfckpt::dump
