#include "exec/supervise.h"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "exec/job_cgroup.h"
#include "exec/signals.h"
#include "exec/spawn.h"

namespace bpfckpt::exec {

namespace {

namespace fs = std::filesystem;

// How long the end of a job may take: cgroup.kill until `populated 0`, then reaping what was orphaned to us.
constexpr int kKillTimeoutMs = 10000;
constexpr double kReapTimeoutS = 2.0;

// The snap creates DIR only when it fires, possibly hours later: what would make it fail is refused now, before the
// command runs.
Result<std::string> check_image_dir(const std::string& dir)
{
	if (dir.empty())
		return fail(ExitCode::usage, "-D: an image directory is required");
	std::string abs = fs::absolute(dir).lexically_normal().string();
	if (abs.size() > 1 && abs.back() == '/')
		abs.pop_back();
	struct stat st;
	if (::lstat(abs.c_str(), &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return fail(ExitCode::io, "image directory {}: exists and is not a directory", abs);
		std::error_code ec;
		if (!fs::is_empty(abs, ec) || ec)
			return fail(ExitCode::io, "image directory {}: exists and is not empty", abs);
		return abs;
	}
	if (errno != ENOENT)
		return fail_sys(errno, "image directory {}", abs);
	std::string parent = fs::path(abs).parent_path().string();
	if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
		return fail(ExitCode::io, "image directory {}: its parent {} is not a directory", abs, parent);
	if (::access(parent.c_str(), W_OK) != 0)
		return fail_errno(ExitCode::io, errno, "image directory {}: cannot create it in {}", abs, parent);
	return abs;
}

int status_code(int wstatus)
{
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

// The running job's processes: another bpfckpt among them (a nested `bpfckpt exec`, or a dump the job runs) holds
// BPF links, a signalfd, ptrace attachments and cgroups of its own that an image cannot hold.
std::optional<pid_t> find_bpfckpt(const std::vector<pid_t>& pids)
{
	struct stat self;
	bool have_self = ::stat("/proc/self/exe", &self) == 0;
	for (pid_t pid : pids) {
		struct stat st;
		if (have_self && ::stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) == 0 && st.st_dev == self.st_dev &&
		    st.st_ino == self.st_ino)
			return pid;
		auto comm = read_file(fmt::format("/proc/{}/comm", pid));
		if (comm && *comm == "bpfckpt\n")
			return pid;
	}
	return std::nullopt;
}

class Supervisor {
public:
	Supervisor(const ExecOptions& opt, std::string dir, SignalFd& sig, JobCgroup& job, Spawned& cmd)
		: opt_(opt), dir_(std::move(dir)), sig_(sig), job_(job), cmd_(cmd)
	{
	}

	ExecOutcome run();

private:
	enum class Event { finished, timeout, signal };
	Event wait_for_event();
	bool reap_exited();
	void forward(const signalfd_siginfo& si);
	ExecOutcome snap(const std::string& trigger, double t_trigger, int exit_ok);
	ExecOutcome no_image(const std::string& trigger, const std::string& why);
	void end_job();

	const ExecOptions& opt_;
	std::string dir_;  // absolute
	SignalFd& sig_;
	JobCgroup& job_;
	Spawned& cmd_;
	std::optional<int> cmd_status_;
	int trigger_signal_ = 0;
};

// Reaps every child that has exited: the command, and job processes orphaned to us (we are a child subreaper).
// True once we have no child left.
bool Supervisor::reap_exited()
{
	for (;;) {
		int st;
		pid_t r = ::waitpid(-1, &st, WNOHANG | __WALL);
		if (r > 0) {
			if (r == cmd_.pid && (WIFEXITED(st) || WIFSIGNALED(st)))
				cmd_status_ = status_code(st);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0;
	}
}

// A terminal's ^C or hangup (si_code SI_KERNEL) has already reached the command, which shares our process group:
// only what was sent to bpfckpt itself (kill(1), a CI runner) is passed on, so that the command sees it once.
void Supervisor::forward(const signalfd_siginfo& si)
{
	if (si.ssi_code > 0)
		return;
	::syscall(SYS_pidfd_send_signal, cmd_.pidfd.get(), int(si.ssi_signo), nullptr, 0);
}

Supervisor::Event Supervisor::wait_for_event()
{
	std::optional<double> deadline;
	if (opt_.timeout_s > 0)
		deadline = now_s() + opt_.timeout_s;
	for (;;) {
		int wait_ms = -1;
		if (deadline) {
			double left = *deadline - now_s();
			if (left <= 0)
				return Event::timeout;
			wait_ms = int(std::min(std::ceil(left * 1000), double(INT_MAX / 2)));
		}
		pollfd p{sig_.fd(), POLLIN, 0};
		::poll(&p, 1, wait_ms);
		while (auto si = sig_.take()) {
			int signo = int(si->ssi_signo);
			if (signo == SIGCHLD) {
				reap_exited();
				if (cmd_status_)
					return Event::finished;
			} else if (signo == opt_.snap_signal) {
				trigger_signal_ = signo;
				return Event::signal;
			} else {
				forward(*si);
			}
		}
	}
}

ExecOutcome Supervisor::no_image(const std::string& trigger, const std::string& why)
{
	return {kExitNoImage,
		fmt::format("{}: {}; the job was killed and {} was not created", trigger, why, dir_), true, {}};
}

ExecOutcome Supervisor::snap(const std::string& trigger, double t_trigger, int exit_ok)
{
	auto pids = job_.processes();
	if (!pids)
		return no_image(trigger, "list the job's processes: " + pids.error().describe());
	if (auto other = find_bpfckpt(*pids))
		return no_image(trigger, fmt::format("cgroup {} holds another bpfckpt (pid {}: a nested `bpfckpt exec`?), "
						     "which an image cannot hold; give that one its own "
						     "--snap-on-timeout", job_.cg().path, *other));
	dump::DumpOptions d;
	d.cgroup = job_.cg().dir();
	d.dir = dir_;
	auto st = dump::snap_cgroup(d);
	if (!st)
		return no_image(trigger, fmt::format("snap of cgroup {} failed: {}", job_.cg().path,
						     st.error().describe()));
	SnapTiming timing{trigger, now_s() - t_trigger, *st};
	return {exit_ok,
		fmt::format("{}: snapped {} process(es) of cgroup {} into {} and killed the job; open it live with "
			    "`bpfckpt restore -D {} --pidns`, or for gdb with `bpfckpt core -D {} -o OUT`",
			    trigger, st->processes, job_.cg().path, dir_, dir_, dir_),
		false, timing};
}

// Whatever is left of the job goes: a CI runner's rule, so that no stray daemon outlives its job or holds its PIDs.
void Supervisor::end_job()
{
	if (Status st = job_.kill_and_wait(kKillTimeoutMs); !st)
		log::warn("{}", st.error().describe());
	// Zombies orphaned to us would keep their PIDs taken after we exit, until PID 1 reaps them: a `restore` of the
	// image right after must find them free.
	double deadline = now_s() + kReapTimeoutS;
	while (!reap_exited() && now_s() < deadline) {
		pollfd p{sig_.fd(), POLLIN, 0};
		::poll(&p, 1, 10);
		while (sig_.take()) {
		}
	}
	if (Status st = job_.remove(); !st)
		log::warn("{}", st.error().describe());
}

ExecOutcome Supervisor::run()
{
	Event ev = wait_for_event();
	double t_trigger = now_s();
	ExecOutcome out;
	// A command that exited at the moment the trigger came has finished: there is no job left to snap.
	if (ev != Event::finished) {
		reap_exited();
		if (cmd_status_)
			ev = Event::finished;
	}
	if (ev == Event::finished)
		out.exit_status = *cmd_status_;
	else if (ev == Event::timeout)
		out = snap(fmt::format("timed out after {:g} s", opt_.timeout_s), t_trigger, kExitTimedOut);
	else
		out = snap("got " + signal_name(trigger_signal_), t_trigger, kExitSnappedOnSignal);
	end_job();
	return out;
}

ExecOutcome exec_failed(const std::string& cmd, int err)
{
	if (err == ENOENT)
		return {kExitNotFound, fmt::format("{}: command not found", cmd), true, {}};
	return {kExitCannotExecute, fmt::format("{}: cannot execute: {}", cmd, std::strerror(err)), true, {}};
}

}  // namespace

Result<ExecOutcome> run_exec(const ExecOptions& opt)
{
	if (opt.argv.empty())
		return fail(ExitCode::usage, "no command given (bpfckpt exec -D DIR -- CMD ARGS...)");
	std::string dir = BCK_TRY(check_image_dir(opt.dir));
	SignalFd sig = BCK_TRY(SignalFd::open({SIGCHLD, SIGINT, SIGTERM, SIGHUP, opt.snap_signal}));
	if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		return fail_sys(errno, "become a child subreaper");
	auto job = BCK_TRY(JobCgroup::create(opt.cgroup_parent));
	Spawned cmd = BCK_TRY(spawn_in_cgroup(opt.argv, job->cg(), sig.old_mask()));
	if (cmd.exec_errno)
		return exec_failed(opt.argv[0], cmd.exec_errno);
	return Supervisor(opt, std::move(dir), sig, *job, cmd).run();
}

}  // namespace bpfckpt::exec
