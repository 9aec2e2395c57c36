#include "dump/ptrace_freezer.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

namespace bpfckpt::dump {

namespace {

// Freezing normally takes one or two rounds; a tree that keeps forking faster than we can seize it is refused.
constexpr int kMaxRounds = 64;

int pidfd_open(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

// Waits for the thread's stop after PTRACE_INTERRUPT. A signal that arrives first shows up as a signal-delivery
// stop: it is passed on (exactly what would have happened without us) and the thread is interrupted again.
Status wait_stopped(pid_t tid)
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
			return fail(ExitCode::target_busy, "thread {} exited while being frozen", tid);
		if (WIFSTOPPED(status)) {
			int sig = WSTOPSIG(status);
			int event = status >> 16;
			if (event == PTRACE_EVENT_STOP || sig == SIGTRAP)
				return {};
			if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)sig) != 0)
				return fail_sys(errno, "resume thread {} with signal {}", tid, sig);
			if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
				return fail_sys(errno, "interrupt thread {}", tid);
		}
	}
}

}  // namespace

PtraceFreezer::~PtraceFreezer() { detach_all(); }

Status PtraceFreezer::seize(pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
		int e = errno;
		if (e == EPERM)
			return fail_errno(ExitCode::target_busy, e,
					  "thread {}: cannot attach (already traced by a debugger, or not permitted)", tid);
		if (e == ESRCH)
			return fail(ExitCode::target_busy, "thread {} exited while being frozen", tid);
		return fail_sys(e, "thread {}: PTRACE_SEIZE", tid);
	}
	seized_.insert(tid);
	if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
		return fail_sys(errno, "thread {}: PTRACE_INTERRUPT", tid);
	return wait_stopped(tid);
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
			BCK_CHECK(seize(tid));
			grew = true;
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
	detach_all();
}

}  // namespace bpfckpt::dump
