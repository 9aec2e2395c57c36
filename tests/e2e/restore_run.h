// Restoring in e2e tests: `bpfckpt restore` with its stdout kept open for the restored tree (which writes its
// verdicts there), pidfds on what came back, and the verify protocol of tests/workloads/README.md. Shared by every
// test that restores.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "harness.h"

namespace e2e {

// Exit codes of bpfckpt (src/common/exit_codes.h).
inline constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2, kExitTargetBusy = 5, kExitBadImage = 8;


inline int pidfd_open(pid_t pid)
{
	return int(syscall(SYS_pidfd_open, pid, 0));
}




inline std::string trim_nl(std::string s)
{
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	return s;
}

// The relative name Workload::start needs to run an executable outside the workloads dir.
inline std::string name_for(const fs::path& exe)
{
	std::string rel;
	for (auto& part : fs::path(workload_path("x")).parent_path())
		if (part != "/")
			rel += "../";
	return rel + exe.relative_path().string();
}

// Every TID of every process in an image.
inline std::vector<pid_t> image_tids(const json& index)
{
	std::vector<pid_t> out;
	for (auto& p : index.at("processes"))
		for (auto& t : p.at("threads"))
			out.push_back(t.at("tid").get<pid_t>());
	return out;
}

inline std::vector<pid_t> image_pids(const json& index)
{
	std::vector<pid_t> out;
	for (auto& p : index.at("processes"))
		out.push_back(p.at("pid").get<pid_t>());
	return out;
}

inline bool exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

inline std::string proc_state(pid_t pid)
{
	return status_field(pid, "State").value_or("gone");
}

// Waits until none of `pids` exists, reaping those that are (or become, as orphans) our children. Fails naming
// what is still there after `timeout`.
inline testing::AssertionResult all_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout = 5s)
{
	auto deadline = Clock::now() + timeout;
	for (;;) {
		std::vector<pid_t> left;
		for (pid_t p : pids) {
			int st;
			waitpid(p, &st, WNOHANG | __WALL);
			if (exists(p))
				left.push_back(p);
		}
		if (left.empty())
			return testing::AssertionSuccess();
		if (Clock::now() > deadline) {
			auto r = testing::AssertionFailure();
			r << "still there after " << timeout.count() << " ms:";
			for (pid_t p : left) {
				auto comm = read_file("/proc/" + std::to_string(p) + "/comm").value_or("?");
				r << " " << p << " (" << trim_nl(comm) << ", " << proc_state(p)
				  << ", PPid " << status_field(p, "PPid").value_or("?") << ")";
			}
			return r;
		}
		std::this_thread::sleep_for(5ms);
	}
}

// The processes of a dumped (killed) tree: the harness's guard reaps the workload, its orphans are ours to reap.
inline void reap_dumped(Workload& wl, const std::vector<pid_t>& pids)
{
	wl.kill_all();
	EXPECT_TRUE(all_gone(pids, 10s)) << "the dumped tree's PIDs are still taken";
}

inline std::vector<std::string> dump_args(pid_t pid, const fs::path& dir, bool leave_running)
{
	std::vector<std::string> a{"dump", "-t", std::to_string(pid), "-D", dir.string()};
	if (leave_running)
		a.push_back("-R");
	return a;
}

// A dump that must succeed.
inline testing::AssertionResult dump_ok(pid_t pid, const fs::path& img, bool leave_running = false)
{
	RunResult r = run_bpfckpt(dump_args(pid, img, leave_running));
	if (r.exit_code != kExitOk)
		return testing::AssertionFailure() << "dump of " << pid << ": " << r.describe();
	return testing::AssertionSuccess();
}

// Reads lines from a pipe with a deadline.
class LineReader {
public:
	LineReader() = default;
	explicit LineReader(int fd) : fd_(fd) {}
	LineReader(const LineReader&) = delete;
	LineReader& operator=(const LineReader&) = delete;
	~LineReader()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	void reset(int fd)
	{
		if (fd_ >= 0)
			close(fd_);
		fd_ = fd;
		buf_.clear();
	}

	// The next line, without its newline; nullopt on timeout or EOF.
	std::optional<std::string> line(std::chrono::milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			auto nl = buf_.find('\n');
			if (nl != std::string::npos) {
				std::string l = buf_.substr(0, nl);
				buf_.erase(0, nl + 1);
				seen_ += l + "\n";
				return l;
			}
			if (fd_ < 0 || !poll_readable(fd_, std::chrono::milliseconds(ms_left(deadline))))
				return std::nullopt;
			char b[4096];
			ssize_t n = read(fd_, b, sizeof(b));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return std::nullopt;
			buf_.append(b, size_t(n));
		}
	}

	// The next line starting with one of `prefixes` (others are kept in seen() for failure messages).
	std::optional<std::string> line_starting(const std::vector<std::string>& prefixes,
						 std::chrono::milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			auto l = line(std::chrono::milliseconds(ms_left(deadline)));
			if (!l)
				return std::nullopt;
			for (auto& p : prefixes)
				if (l->rfind(p, 0) == 0)
					return l;
		}
	}

	const std::string& seen() const { return seen_; }

private:
	int fd_ = -1;
	std::string buf_, seen_;
};

// `bpfckpt restore ...` with stdin /dev/null, stdout a pipe that outlives it (the restored tree writes into it) and
// stderr collected once it exits. The destructor kills it if it still runs.
class RestoreRun {
public:
	RestoreRun() = default;
	RestoreRun(const RestoreRun&) = delete;
	RestoreRun& operator=(const RestoreRun&) = delete;
	~RestoreRun()
	{
		if (pid_ > 0) {
			kill(pid_, SIGKILL);
			int st;
			waitpid(pid_, &st, 0);
		}
		if (err_ >= 0)
			close(err_);
		if (pidfd_ >= 0)
			close(pidfd_);
	}

	bool start(const std::vector<std::string>& args)
	{
		std::vector<std::string> argv{bpfckpt_bin()};
		argv.insert(argv.end(), args.begin(), args.end());
		int o = -1;
		pid_ = spawn_piped(argv, {}, &o, &err_);
		if (pid_ <= 0)
			return false;
		out.reset(o);
		pidfd_ = pidfd_open(pid_);
		return true;
	}

	// Waits for bpfckpt itself to exit (not for what it restored); its stderr is complete by then.
	RunResult finish(std::chrono::milliseconds timeout = 180s)
	{
		RunResult r;
		auto deadline = Clock::now() + timeout;
		int st = 0;
		for (;;) {
			// stderr drained meanwhile, so a chatty restore cannot block on a full pipe.
			drain_err(r.err);
			pid_t w = waitpid(pid_, &st, WNOHANG);
			if (w == pid_)
				break;
			if (Clock::now() > deadline) {
				r.timed_out = true;
				kill(pid_, SIGKILL);
				waitpid(pid_, &st, 0);
				break;
			}
			poll_readable(pidfd_, 20ms);
		}
		pid_ = -1;
		drain_err(r.err);
		if (WIFEXITED(st) && !r.timed_out)
			r.exit_code = WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			r.term_signal = WTERMSIG(st);
		r.out = "(stdout belongs to the restored tree; seen so far: " + out.seen() + ")";
		return r;
	}

	pid_t pid() const { return pid_; }
	LineReader out;

private:
	void drain_err(std::string& s)
	{
		while (err_ >= 0 && poll_readable(err_, 0ms)) {
			char b[4096];
			ssize_t n = read(err_, b, sizeof(b));
			if (n <= 0) {
				close(err_);
				err_ = -1;
				break;
			}
			s.append(b, size_t(n));
		}
	}

	pid_t pid_ = -1;
	int err_ = -1, pidfd_ = -1;
};

// What restore brought back: pidfds on the saved PIDs, taken right after the restore. The destructor kills all of
// them and reaps those that became our children.
class Restored {
public:
	Restored() = default;
	Restored(const Restored&) = delete;
	Restored& operator=(const Restored&) = delete;
	~Restored() { kill_all(); }

	// Opens a pidfd on each pid; false (with error()) when one does not exist.
	bool adopt(const std::vector<pid_t>& pids)
	{
		bool ok = true;
		for (pid_t p : pids) {
			if (fds_.count(p))
				continue;
			int fd = pidfd_open(p);
			if (fd < 0) {
				ok = false;
				error_ += "pid " + std::to_string(p) + " is not running after the restore; ";
				continue;
			}
			fds_[p] = fd;
		}
		return ok;
	}
	const std::string& error() const { return error_; }

	bool signal(pid_t pid, int sig) const
	{
		auto it = fds_.find(pid);
		return it != fds_.end() && sys_pidfd_send_signal(it->second, sig) == 0;
	}

	bool exited(pid_t pid, std::chrono::milliseconds wait) const
	{
		auto it = fds_.find(pid);
		return it == fds_.end() || poll_readable(it->second, wait);
	}

	// The exit status when `pid` is our child (the restored root is, once `restore -d` has exited).
	std::optional<int> reap(pid_t pid, std::chrono::milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			int st;
			pid_t r = waitpid(pid, &st, WNOHANG | __WALL);
			if (r == pid)
				return st;
			if (r < 0)
				return std::nullopt;
			if (Clock::now() > deadline)
				return std::nullopt;
			std::this_thread::sleep_for(2ms);
		}
	}

	void kill_all()
	{
		std::vector<pid_t> pids;
		for (auto& [p, fd] : fds_) {
			sys_pidfd_send_signal(fd, SIGKILL);
			pids.push_back(p);
		}
		for (auto& [p, fd] : fds_)
			poll_readable(fd, 5000ms);
		all_gone(pids, 5s);
		for (auto& [p, fd] : fds_)
			close(fd);
		fds_.clear();
	}

private:
	std::map<pid_t, int> fds_;
	std::string error_;
};

// Restores `img` detached with a fresh RestoreRun; on success adopts every PID of the image.
inline testing::AssertionResult restore_detached(RestoreRun& rr, Restored& tree, const fs::path& img, const json& index,
					  const std::vector<std::string>& extra = {})
{
	std::vector<std::string> args{"restore", "-D", img.string(), "-d"};
	args.insert(args.end(), extra.begin(), extra.end());
	if (!rr.start(args))
		return testing::AssertionFailure() << "cannot start bpfckpt restore";
	RunResult r = rr.finish();
	if (r.exit_code != kExitOk)
		return testing::AssertionFailure() << "restore -d " << img << ": " << r.describe();
	if (!tree.adopt(image_pids(index)))
		return testing::AssertionFailure() << tree.error() << "\nrestore said:\n" << r.describe();
	return testing::AssertionSuccess();
}

// SIGUSR1 to the restored root, its verdict line from the restore's stdout, and its exit status.
inline std::string verify_restored(RestoreRun& rr, Restored& tree, pid_t root, std::chrono::milliseconds timeout = 60s)
{
	if (!tree.signal(root, SIGUSR1))
		return "cannot signal restored pid " + std::to_string(root) + " (" + proc_state(root) + ")";
	auto line = rr.out.line_starting({"PASS", "FAIL"}, timeout);
	if (!line)
		return "no verdict from restored pid " + std::to_string(root) + " within " +
		       std::to_string(timeout.count()) + " ms (state " + proc_state(root) + "); its output: " +
		       rr.out.seen();
	auto st = tree.reap(root, 10s);
	bool pass = *line == "PASS";
	if (st && !(WIFEXITED(*st) && WEXITSTATUS(*st) == (pass ? 0 : 1)))
		return *line + " (but exit status " + std::to_string(*st) + ")";
	if (!st && !tree.exited(root, 10s))
		return *line + " (and it did not exit)";
	return *line;
}

// `COUNT n` from a restored counter_mem after SIGUSR2.
inline std::optional<uint64_t> restored_count(RestoreRun& rr, Restored& tree, pid_t pid)
{
	if (!tree.signal(pid, SIGUSR2))
		return std::nullopt;
	auto line = rr.out.line_starting({"COUNT "}, 10s);
	if (!line)
		return std::nullopt;
	return std::stoull(line->substr(6));
}

}  // namespace e2e
