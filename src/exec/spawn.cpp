#include "exec/spawn.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace bpfckpt::exec {

namespace {

// What a child that failed writes to the pipe before it exits.
struct ChildReport {
	int step;
	int err;
};
enum : int { kStepCgroup = 1, kStepExec = 2 };

[[noreturn]] void report_and_exit(int pipe_wr, int step)
{
	ChildReport r{step, errno};
	(void)!::write(pipe_wr, &r, sizeof(r));
	_exit(127);
}

// The child: everything it uses was built before fork.
[[noreturn]] void run_child(char* const* argv, const char* procs, const sigset_t& mask, int pipe_wr)
{
	int fd = ::open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ::write(fd, "0", 1) != 1)
		report_and_exit(pipe_wr, kStepCgroup);
	::close(fd);
	::sigprocmask(SIG_SETMASK, &mask, nullptr);
	::execvp(argv[0], argv);
	report_and_exit(pipe_wr, kStepExec);
}

// The child's report, or nothing (0 bytes) when its exec succeeded and closed the pipe.
ssize_t read_report(int fd, ChildReport& r)
{
	ssize_t n;
	do
		n = ::read(fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	return n;
}

}  // namespace

Result<Spawned> spawn_in_cgroup(const std::vector<std::string>& argv, const cgroup::Cgroup& cg,
				const sigset_t& child_mask)
{
	if (argv.empty())
		return fail(ExitCode::usage, "no command to run");
	std::vector<char*> args;
	for (const std::string& a : argv)
		args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	std::string procs = cg.file("cgroup.procs");
	int p[2];
	if (::pipe2(p, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe");
	UniqueFd rd(p[0]), wr(p[1]);

	pid_t pid = ::fork();
	if (pid < 0)
		return fail_sys(errno, "fork for {}", argv[0]);
	if (pid == 0)
		run_child(args.data(), procs.c_str(), child_mask, wr.get());
	wr.reset();

	ChildReport r{};
	ssize_t n = read_report(rd.get(), r);
	if (n != 0) {
		::waitpid(pid, nullptr, 0);
		if (n != ssize_t(sizeof(r)))
			return fail_sys(n < 0 ? errno : EIO, "{}: read the child's report", argv[0]);
		if (r.step == kStepCgroup)
			return fail_errno(exit_for_errno(r.err), r.err, "{}: join cgroup {}", argv[0], cg.path);
		Spawned failed;
		failed.pid = pid;
		failed.exec_errno = r.err;
		return failed;
	}
	Spawned s;
	s.pid = pid;
	s.pidfd.reset(int(::syscall(SYS_pidfd_open, pid, 0)));
	if (!s.pidfd) {
		int e = errno;
		::kill(pid, SIGKILL);
		::waitpid(pid, nullptr, 0);
		return fail_errno(ExitCode::kernel, e, "pidfd_open of {} (pid {})", argv[0], pid);
	}
	return s;
}

}  // namespace bpfckpt::exec
