#include "harness.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <iostream>
#include <sstream>
#include <thread>

#include <xxhash.h>

namespace e2e {

int sys_pidfd_send_signal(int pidfd, int sig)
{
	return int(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int ms_left(Clock::time_point deadline)
{
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return left < 0 ? 0 : int(left);
}

bool poll_readable(int fd, std::chrono::milliseconds wait)
{
	pollfd p{fd, POLLIN, 0};
	int r;
	do
		r = poll(&p, 1, int(wait.count()));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

namespace {

// Grandchildren (a workload's children) are reparented to the test process when their parent dies, so that the
// guards can reap every process a test caused, not leave zombies to whoever PID 1 is.
[[maybe_unused]] const bool subreaper_set = [] { return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0; }();

int sys_pidfd_open(pid_t pid)
{
	return int(syscall(SYS_pidfd_open, pid, 0));
}




void close_fd(int& fd)
{
	if (fd >= 0)
		close(fd);
	fd = -1;
}

// Reaps `pid` (and, once it is gone, what is left of its process group) before `deadline`.
bool reap_until(pid_t pid, int* status, Clock::time_point deadline)
{
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG | __WALL);
		if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st))) {
			*status = st;
			return true;
		}
		if (r < 0 && errno == ECHILD)
			return true;
		if (Clock::now() > deadline)
			return false;
		std::this_thread::sleep_for(1ms);
	}
}

void reap_group(pid_t pgid, Clock::time_point deadline)
{
	for (;;) {
		int st;
		pid_t r = waitpid(-pgid, &st, WNOHANG | __WALL);
		if (r < 0 && errno == ECHILD)
			return;
		if (r == 0 && Clock::now() > deadline)
			return;
		if (r == 0)
			std::this_thread::sleep_for(1ms);
	}
}

// argv/envp built before fork, so the child only calls async-signal-safe functions.
struct ExecArgs {
	std::vector<std::string> argv_s, env_s;
	std::vector<char*> argv, env;

	ExecArgs(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& extra)
	    : argv_s(args)
	{
		for (char** e = environ; *e; e++) {
			std::string kv = *e;
			bool replaced = false;
			for (auto& [k, v] : extra)
				replaced |= kv.rfind(k + "=", 0) == 0;
			if (!replaced)
				env_s.push_back(kv);
		}
		for (auto& [k, v] : extra)
			env_s.push_back(k + "=" + v);
		for (auto& a : argv_s)
			argv.push_back(a.data());
		argv.push_back(nullptr);
		for (auto& e : env_s)
			env.push_back(e.data());
		env.push_back(nullptr);
	}
};

// Joins the cgroup whose cgroup.procs is `procs` (nullptr: stays where it is) with async-signal-safe calls only.
bool join_cgroup(const char* procs)
{
	if (!procs)
		return true;
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "0", 1) == 1;
	if (fd >= 0)
		close(fd);
	return ok;
}

[[noreturn]] void child_exec(ExecArgs& ea, int out_fd, int err_fd, std::optional<uid_t> uid,
			     const char* cgroup_procs = nullptr, bool new_session = false)
{
	if (new_session)
		setsid();
	else
		setpgid(0, 0);
	if (!join_cgroup(cgroup_procs))
		_exit(125);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0)
		dup2(devnull, 0);
	if (out_fd >= 0)
		dup2(out_fd, 1);
	if (err_fd >= 0)
		dup2(err_fd, 2);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, nullptr);
	if (uid) {
		if (setgroups(0, nullptr) < 0 || setgid(*uid) < 0 || setuid(*uid) < 0)
			_exit(126);
	}
	execve(ea.argv[0], ea.argv.data(), ea.env.data());
	_exit(127);
}

std::string trim(std::string s)
{
	size_t b = s.find_first_not_of(" \t\n");
	size_t e = s.find_last_not_of(" \t\n");
	return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string describe_status(int st)
{
	if (WIFEXITED(st))
		return "exit " + std::to_string(WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return std::string("killed by ") + strsignal(WTERMSIG(st));
	return "status " + std::to_string(st);
}

}  // namespace

std::string bpfckpt_bin()
{
	return BPFCKPT_BIN;
}

std::string workload_path(const std::string& name)
{
	return std::string(BPFCKPT_WORKLOADS) + "/" + name;
}

std::string source_dir()
{
	return BPFCKPT_SOURCE_DIR;
}

bool ci()
{
	const char* v = getenv("CI");
	return v && std::string(v) == "true";
}

std::optional<std::string> missing_requirement()
{
	if (geteuid() != 0)
		return "needs root (dumping uses BPF iterators and ptrace)";
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		return "kernel without BTF (/sys/kernel/btf/vmlinux): the BPF iterators cannot load";
	int fd = sys_pidfd_open(getpid());
	if (fd < 0)
		return "kernel without pidfd_open";
	close(fd);
	if (access(bpfckpt_bin().c_str(), X_OK) != 0)
		return "no bpfckpt binary at " + bpfckpt_bin();
	return std::nullopt;
}

// --- Workload --------------------------------------------------------------------------------------------------------

Workload::~Workload()
{
	kill_all();
	close_fd(out_);
	close_fd(pidfd_);
}

void Workload::kill_all()
{
	if (pid_ <= 0 || reaped_)
		return;
	if (pidfd_ >= 0)
		sys_pidfd_send_signal(pidfd_, SIGKILL);
	killpg(pid_, SIGKILL);
	for (const auto& d : descendants_)
		d->kill();  // the processes it reported, never a later one with the same pid
	auto deadline = Clock::now() + 10s;
	reaped_ = reap_until(pid_, &status_, deadline);
	reap_group(pid_, deadline);
}

bool Workload::start(const std::string& name, const std::vector<std::string>& args, std::chrono::milliseconds timeout)
{
	return start(name, args, StartOptions{.timeout = timeout});
}

bool Workload::start(const std::string& name, const std::vector<std::string>& args, const StartOptions& opt)
{
	std::chrono::milliseconds timeout = opt.timeout;
	std::vector<std::string> argv{workload_path(name)};
	argv.insert(argv.end(), args.begin(), args.end());
	ExecArgs ea(argv, {});
	std::string procs = opt.cgroup_dir.empty() ? "" : opt.cgroup_dir + "/cgroup.procs";
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		error_ = std::string("pipe: ") + strerror(errno);
		return false;
	}
	pid_ = fork();
	if (pid_ == 0)
		child_exec(ea, p[1], -1, std::nullopt, procs.empty() ? nullptr : procs.c_str(), opt.new_session);
	close(p[1]);
	out_ = p[0];
	if (pid_ < 0) {
		error_ = std::string("fork: ") + strerror(errno);
		return false;
	}
	if (!opt.new_session)
		setpgid(pid_, pid_);  // also in the child: whichever runs first (a group leader could not setsid)
	pidfd_ = sys_pidfd_open(pid_);
	std::string line;
	if (!read_line(line, timeout)) {
		kill_all();
		error_ = name + ": no READY line within " + std::to_string(timeout.count()) + " ms (" +
			 (reaped_ ? describe_status(status_) : std::string("still running")) + ")";
		return false;
	}
	if (line.rfind("READY ", 0) != 0) {
		error_ = name + ": expected READY, got: " + line;
		return false;
	}
	ready_ = json::parse(line.substr(6), nullptr, false);
	if (ready_.is_discarded()) {
		error_ = name + ": READY line is not JSON: " + line;
		return false;
	}
	// Its descendants in sessions or groups of their own outlive killpg, and would keep the test's output open.
	if (ready_.contains("pids") && ready_.at("pids").is_array())
		for (const json& p : ready_.at("pids"))
			if (p.is_number_integer() && p.get<pid_t>() != pid_)
				descendants_.push_back(std::make_unique<PidFd>(p.get<pid_t>()));
	return true;
}

bool Workload::read_line(std::string& line, std::chrono::milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	for (;;) {
		size_t nl = buffered_.find('\n');
		if (nl != std::string::npos) {
			line = buffered_.substr(0, nl);
			buffered_.erase(0, nl + 1);
			return true;
		}
		if (!poll_readable(out_, std::chrono::milliseconds(ms_left(deadline))))
			return false;
		char buf[4096];
		ssize_t n = read(out_, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;  // EOF: every writer is gone
		buffered_.append(buf, size_t(n));
	}
}

bool Workload::reap(std::chrono::milliseconds timeout)
{
	if (!reaped_)
		reaped_ = reap_until(pid_, &status_, Clock::now() + timeout);
	return reaped_;
}

std::string Workload::verify(std::chrono::milliseconds timeout)
{
	if (reaped_ || exited())
		return "workload " + std::to_string(pid_) + " is not running";
	sys_pidfd_send_signal(pidfd_, SIGUSR1);
	std::string line;
	if (!read_line(line, timeout))
		return "no verdict within " + std::to_string(timeout.count()) + " ms";
	if (!reap(10s))
		return line + " (and the workload did not exit)";
	bool pass = line == "PASS";
	if (WIFEXITED(status_) && WEXITSTATUS(status_) == (pass ? 0 : 1))
		return line;
	return line + " (but " + describe_status(status_) + ")";
}

bool Workload::exited(std::chrono::milliseconds wait)
{
	if (reaped_)
		return true;
	return pidfd_ >= 0 && poll_readable(pidfd_, wait);
}

// --- PidFd -----------------------------------------------------------------------------------------------------------

PidFd::PidFd(pid_t pid) : fd_(sys_pidfd_open(pid)) {}

PidFd::~PidFd()
{
	if (fd_ >= 0)
		close(fd_);
}

bool PidFd::exited(std::chrono::milliseconds wait) const
{
	return fd_ >= 0 && poll_readable(fd_, wait);
}

void PidFd::kill() const
{
	if (fd_ >= 0)
		sys_pidfd_send_signal(fd_, SIGKILL);
}

// --- Command ---------------------------------------------------------------------------------------------------------

std::string RunResult::describe() const
{
	std::ostringstream o;
	if (timed_out)
		o << "timed out";
	else if (term_signal)
		o << "killed by signal " << term_signal;
	else
		o << "exit " << exit_code;
	o << "\n--- stdout ---\n" << out << "\n--- stderr ---\n" << err;
	return o.str();
}

Command::~Command()
{
	if (pid_ > 0) {
		killpg(pid_, SIGKILL);
		int st;
		auto deadline = Clock::now() + 10s;
		reap_until(pid_, &st, deadline);
		reap_group(pid_, deadline);
	}
	close_fd(out_);
	close_fd(err_);
}

pid_t spawn_piped(const std::vector<std::string>& argv, const RunOptions& opt, int* out, int* err)
{
	ExecArgs ea(argv, opt.env);
	std::string procs = opt.cgroup_dir.empty() ? "" : opt.cgroup_dir + "/cgroup.procs";
	int o[2], e[2];
	if (pipe2(o, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(e, O_CLOEXEC) < 0) {
		close(o[0]);
		close(o[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		child_exec(ea, o[1], e[1], opt.uid, procs.empty() ? nullptr : procs.c_str());
	close(o[1]);
	close(e[1]);
	if (pid < 0) {
		close(o[0]);
		close(e[0]);
		return -1;
	}
	setpgid(pid, pid);
	*out = o[0];
	*err = e[0];
	return pid;
}

bool Command::start(const std::vector<std::string>& argv, const RunOptions& opt)
{
	opt_ = opt;
	started_ = Clock::now();
	pid_ = spawn_piped(argv, opt, &out_, &err_);
	return pid_ > 0;
}

RunResult Command::finish()
{
	RunResult res;
	if (pid_ <= 0) {
		res.err = "command did not start";
		return res;
	}
	auto deadline = started_ + opt_.timeout;
	while (out_ >= 0 || err_ >= 0) {
		pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
		int r = poll(p, 2, ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			res.timed_out = true;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[4096];
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0)
				(i == 0 ? res.out : res.err).append(buf, size_t(n));
			else if (n == 0 || errno != EINTR)
				close_fd(i == 0 ? out_ : err_);
		}
	}
	if (res.timed_out)
		killpg(pid_, SIGKILL);
	int st = 0;
	auto reap_deadline = std::max(deadline, Clock::now()) + 10s;
	if (!reap_until(pid_, &st, reap_deadline)) {
		killpg(pid_, SIGKILL);
		reap_until(pid_, &st, Clock::now() + 10s);
		res.timed_out = true;
	}
	reap_group(pid_, Clock::now() + 1s);
	pid_ = -1;
	close_fd(out_);
	close_fd(err_);
	if (WIFEXITED(st) && !res.timed_out)
		res.exit_code = WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		res.term_signal = WTERMSIG(st);
	return res;
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& opt)
{
	Command c;
	if (!c.start(argv, opt)) {
		RunResult r;
		r.err = std::string("cannot start ") + argv[0] + ": " + strerror(errno);
		return r;
	}
	return c.finish();
}

RunResult run_bpfckpt(const std::vector<std::string>& args, const RunOptions& opt)
{
	std::vector<std::string> argv{bpfckpt_bin()};
	argv.insert(argv.end(), args.begin(), args.end());
	return run(argv, opt);
}

// --- PtraceSeize -----------------------------------------------------------------------------------------------------

PtraceSeize::PtraceSeize(pid_t tid) : tid_(tid)
{
	ok_ = ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0;
}

PtraceSeize::~PtraceSeize()
{
	detach();
}

void PtraceSeize::detach()
{
	if (!ok_)
		return;
	ok_ = false;
	// PTRACE_DETACH needs the tracee in a ptrace-stop: interrupt it and wait for that stop first.
	if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) < 0)
		return;
	for (int i = 0; i < 100; i++) {
		int st;
		pid_t r = waitpid(tid_, &st, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != tid_ || !WIFSTOPPED(st))
			return;  // gone
		if (ptrace(PTRACE_DETACH, tid_, nullptr, nullptr) == 0)
			return;
	}
}

// --- files and mounts ------------------------------------------------------------------------------------------------

TmpfsMount::TmpfsMount(const std::string& options)
{
	std::string templ = "/tmp/bpfckpt-e2e-tmpfs.XXXXXX";
	if (!mkdtemp(templ.data())) {
		error_ = std::string("mkdtemp: ") + strerror(errno);
		return;
	}
	path_ = templ;
	if (mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) < 0) {
		error_ = std::string("mount tmpfs ") + options + ": " + strerror(errno);
		return;
	}
	mounted_ = true;
}

TmpfsMount::~TmpfsMount()
{
	if (mounted_)
		umount2(path_.c_str(), MNT_DETACH);
	if (!path_.empty())
		rmdir(path_.c_str());
}

std::optional<std::string> read_file(const fs::path& p)
{
	std::ifstream in(p, std::ios::binary);
	if (!in)
		return std::nullopt;
	std::ostringstream s;
	s << in.rdbuf();
	return s.str();
}

std::vector<std::string> list_dir(const fs::path& p)
{
	std::vector<std::string> names;
	std::error_code ec;
	for (auto& e : fs::directory_iterator(p, ec))
		names.push_back(e.path().filename().string());
	std::sort(names.begin(), names.end());
	return names;
}

std::vector<fs::path> find_index_files(const fs::path& dir)
{
	std::vector<fs::path> found;
	std::error_code ec;
	for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
	     it.increment(ec)) {
		if (it->path().filename() == "index.json")
			found.push_back(it->path());
	}
	return found;
}

// --- /proc ---------------------------------------------------------------------------------------------------------

std::vector<MapsEntry> read_maps(pid_t pid)
{
	std::vector<MapsEntry> out;
	std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
	std::string line;
	while (std::getline(in, line)) {
		MapsEntry m;
		char perms[8] = {}, dev[32] = {};
		unsigned long long start, end, off, ino;
		int n = 0;
		if (sscanf(line.c_str(), "%llx-%llx %7s %llx %31s %llu %n", &start, &end, perms, &off, dev, &ino, &n) < 6)
			continue;
		m.start = start;
		m.end = end;
		m.perms = perms;
		m.offset = off;
		m.dev = dev;
		m.ino = ino;
		m.path = n > 0 && size_t(n) <= line.size() ? trim(line.substr(size_t(n))) : "";
		out.push_back(m);
	}
	return out;
}

std::map<int, FdEntry> read_fds(pid_t pid)
{
	std::map<int, FdEntry> out;
	std::string base = "/proc/" + std::to_string(pid);
	for (auto& name : list_dir(base + "/fd")) {
		FdEntry e;
		e.fd = std::stoi(name);
		char buf[4096];
		ssize_t n = readlink((base + "/fd/" + name).c_str(), buf, sizeof(buf));
		if (n < 0)
			continue;  // closed meanwhile
		e.target.assign(buf, size_t(n));
		struct stat st;
		if (stat((base + "/fd/" + name).c_str(), &st) == 0)
			e.mode = st.st_mode;
		std::ifstream in(base + "/fdinfo/" + name);
		std::string key, value;
		while (in >> key >> value) {
			if (key == "pos:")
				e.pos = std::stoull(value);
			else if (key == "flags:")
				e.flags = uint32_t(std::stoul(value, nullptr, 8));
			else if (key == "ino:")
				e.ino = std::stoull(value);
			in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
		}
		out[e.fd] = e;
	}
	return out;
}

std::optional<std::string> status_field(pid_t pid, const std::string& field)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	if (!in)
		return std::nullopt;
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind(field + ":", 0) == 0)
			return trim(line.substr(field.size() + 1));
	}
	return std::nullopt;
}

std::vector<pid_t> thread_ids(pid_t pid)
{
	std::vector<pid_t> tids;
	for (auto& name : list_dir("/proc/" + std::to_string(pid) + "/task"))
		tids.push_back(pid_t(std::stoi(name)));
	return tids;
}

testing::AssertionResult running_untraced(pid_t pid)
{
	auto tids = thread_ids(pid);
	if (tids.empty())
		return testing::AssertionFailure() << "pid " << pid << " is gone";
	for (pid_t tid : tids) {
		std::string base = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status";
		std::ifstream in(base);
		std::string line, state, tracer;
		while (std::getline(in, line)) {
			if (line.rfind("State:", 0) == 0)
				state = trim(line.substr(6));
			else if (line.rfind("TracerPid:", 0) == 0)
				tracer = trim(line.substr(10));
		}
		if (state.empty())
			continue;  // the thread exited meanwhile
		char s = state[0];
		if (s == 't' || s == 'T' || s == 'Z' || s == 'X')
			return testing::AssertionFailure() << "pid " << pid << " tid " << tid << " State: " << state;
		if (tracer != "0")
			return testing::AssertionFailure() << "pid " << pid << " tid " << tid << " TracerPid: " << tracer;
	}
	return testing::AssertionSuccess();
}

// --- images --------------------------------------------------------------------------------------------------------

std::optional<json> load_index(const fs::path& dir)
{
	auto text = read_file(dir / "index.json");
	if (!text)
		return std::nullopt;
	json j = json::parse(*text, nullptr, false);
	if (j.is_discarded())
		return std::nullopt;
	return j;
}

std::string xxh3_hex(const void* data, size_t size)
{
	char buf[17];
	snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)XXH3_64bits(data, size));
	return buf;
}

std::optional<std::string> xxh3_file(const fs::path& p)
{
	int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return std::nullopt;
	XXH3_state_t* st = XXH3_createState();
	XXH3_64bits_reset(st);
	std::vector<char> buf(1 << 20);
	ssize_t n;
	bool ok = true;
	while ((n = read(fd, buf.data(), buf.size())) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ok = false;
			break;
		}
		XXH3_64bits_update(st, buf.data(), size_t(n));
	}
	close(fd);
	char out[17];
	snprintf(out, sizeof(out), "%016llx", (unsigned long long)XXH3_64bits_digest(st));
	XXH3_freeState(st);
	if (!ok)
		return std::nullopt;
	return std::string(out);
}

testing::AssertionResult validates(const fs::path& image_dir)
{
	return validates(std::vector<fs::path>{image_dir});
}

testing::AssertionResult validates(const std::vector<fs::path>& image_dirs)
{
	std::string script = source_dir() + "/tests/tools/validate_image.py";
	if (access(script.c_str(), R_OK) != 0) {
		if (ci())
			return testing::AssertionFailure() << script << " is missing";
		std::cerr << "[ NOTE     ] " << script << " is missing: schema validation skipped\n";
		return testing::AssertionSuccess();
	}
	std::vector<std::string> argv{"/usr/bin/python3", script};
	for (const fs::path& d : image_dirs)
		argv.push_back(d.string());
	RunResult r = run(argv, {.timeout = 120s});
	if (r.exit_code == 0)
		return testing::AssertionSuccess();
	auto failure = testing::AssertionFailure() << "validate_image.py";
	for (const fs::path& d : image_dirs)
		failure << " " << d;
	return failure << ": " << r.describe();
}

size_t count_lines(const std::string& s)
{
	size_t n = 0;
	std::istringstream in(s);
	std::string line;
	while (std::getline(in, line))
		n += !trim(line).empty();
	return n;
}

}  // namespace e2e
