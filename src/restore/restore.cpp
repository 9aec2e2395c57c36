#include "restore/restore.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "common/fd.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "image/chain.h"
#include "restore/files.h"
#include "restore/finalize.h"
#include "restore/locate.h"
#include "restore/preflight.h"
#include "restore/shim/plan.h"
#include "restore/shim_loader.h"
#include "restore/signals.h"

namespace bpfckpt::restore {

namespace {

constexpr int kReadyTimeoutMs = 30000;


// What a restorer tells the master, in one atomic pipe write (< PIPE_BUF).
struct Report {
	int32_t pid;        // as the image has it
	int32_t ok;
	int32_t outer_pid;  // as the master's PID namespace numbers it (differs under --pidns)
	int32_t pad;
	uint64_t shim_start;
	uint64_t shim_len;
	char msg[224];
};
static_assert(sizeof(Report) <= 256);

// Pipes between the master and the restorers, all above the saved fd numbers.
struct Control {
	int report_rd = -1, report_wr = -1;
	std::vector<int> go_rd, go_wr;  // per process: the master writes one byte when the restorer may jump
};

// Where a cgroup image's processes go: the saved cgroup tree, recreated under `base` (the snapped cgroup's own path,
// or --cgroup). Directories restore created are removed again if the restore fails.
struct CgroupPlacement {
	std::string mount;
	std::string base;  // "" for images that are not of a cgroup: processes stay in restore's cgroup
	std::vector<std::string> created;

	std::string path_of(const std::string& rel) const { return rel.empty() ? base : base + "/" + rel; }
	void remove_created()
	{
		for (auto it = created.rbegin(); it != created.rend(); ++it)
			rmdir(it->c_str());
		created.clear();
	}
};

Result<CgroupPlacement> place_cgroups(const image::Image& img, const std::string& override_path)
{
	CgroupPlacement cp;
	if (img.target.kind != "cgroup") {
		if (!override_path.empty())
			return fail(ExitCode::usage, "--cgroup {}: the image is of a process tree, not of a cgroup",
				    override_path);
		return cp;
	}
	cp.mount = BCK_TRY(cgroup::v2_mount());
	cp.base = BCK_TRY(cgroup_base(img, cp.mount, override_path));
	for (const std::string& rel : img.cgroups) {
		auto made = cgroup::create(cp.mount, cp.path_of(rel));
		if (!made) {
			cp.remove_created();
			return std::unexpected(made.error());
		}
		for (const std::string& dir : *made)
			cp.created.push_back(dir);
	}
	return cp;
}

// Our PID as the master sees it: /proc is the master's, so /proc/self names us in its namespace.
pid_t outer_self()
{
	auto link = read_link("/proc/self");
	return link ? pid_t(std::stol(*link)) : getpid();
}

// Reads the innermost PID of an outer one (NSpid's last field).
pid_t inner_pid(pid_t outer)
{
	auto status = read_file(fmt::format("/proc/{}/status", outer));
	if (!status)
		return -1;
	auto at = status->find("NSpid:");
	if (at == std::string::npos)
		return outer;
	std::string line = status->substr(at + 6, status->find('\n', at) - at - 6);
	auto last = line.find_last_of(" \t");
	return pid_t(std::stol(last == std::string::npos ? line : line.substr(last + 1)));
}

pid_t clone_with_pid(pid_t pid)
{
	clone_args args{};
	args.exit_signal = SIGCHLD;
	args.set_tid = reinterpret_cast<uint64_t>(&pid);
	args.set_tid_size = 1;
	return pid_t(syscall(SYS_clone3, &args, sizeof(args)));
}

// A zombie comes back as one: the child dies at once the way it died before (exit code, or the signal with the
// default action), and its parent, not yet restored, leaves it unreaped.
[[noreturn]] void become_zombie(const image::Process& p)
{
	int32_t wait_status = p.exit_code;
	prctl(PR_SET_NAME, p.comm.c_str());
	int sig = wait_status & 0x7f;
	if (sig) {
		signal(sig, SIG_DFL);
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		sigprocmask(SIG_UNBLOCK, &one, nullptr);
		prctl(PR_SET_DUMPABLE, 0);  // a core dump here would be of bpfckpt, not of the saved process
		kill(getpid(), sig);
	}
	_exit((wait_status >> 8) & 0xff);
}

// Both paths are as bpfckpt sees them: enter the cwd first, then the root, and the cwd stays what it was. Under
// --root both are looked up beneath it first, as files are.
Status enter_dirs(const image::Process& p, const FileLookup& look)
{
	Located cwd = BCK_TRY(look.open(dir_identity("cwd", p.cwd), O_PATH | O_DIRECTORY));
	if (fchdir(cwd.fd.get()) != 0)
		return fail_sys(errno, "chdir {}", p.cwd);
	if (p.root == "/")
		return {};
	Located root = BCK_TRY(look.open(dir_identity("root", p.root), O_PATH | O_DIRECTORY));
	std::string path = look.has_root() ? fmt::format("/proc/self/fd/{}", root.fd.get()) : p.root;
	if (chroot(path.c_str()) != 0)
		return fail_sys(errno, "chroot {}", p.root);
	return {};
}

class Restorer {
public:
	Restorer(const image::Chain& chain, const MasterFiles& mf, const Control& c, const CgroupPlacement& cg,
		 const FileLookup& look)
		: chain_(chain), img_(chain.newest()), mf_(mf), ctl_(c), cg_(cg), look_(look)
	{
	}

	// Runs in the forked process that becomes img.processes[i]; never returns.
	[[noreturn]] void run(size_t i);

private:
	Status prepare(size_t i);
	void report_error(size_t i, const Error& e);

	const image::Chain& chain_;
	const image::Image& img_;
	const MasterFiles& mf_;
	const Control& ctl_;
	const CgroupPlacement& cg_;
	const FileLookup& look_;
};

void Restorer::report_error(size_t i, const Error& e)
{
	Report r{};
	r.pid = int32_t(img_.processes[i].pid);
	snprintf(r.msg, sizeof(r.msg), "%s", e.describe().c_str());
	(void)!write(ctl_.report_wr, &r, sizeof(r));
}

Status Restorer::prepare(size_t i)
{
	const image::Process& p = img_.processes[i];
	// A restorer that outlives its parent's failure must not linger; cleared again right before the shim.
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	// Into its cgroup before it creates anything: children, and the threads the shim makes, are born there.
	if (!cg_.base.empty())
		BCK_CHECK(context(cgroup::enter(cg_.mount, cg_.path_of(p.cgroup)), "pid {}: cgroup {}", p.pid,
				  cg_.path_of(p.cgroup)));
	if (p.sid == p.pid && setsid() < 0)
		return fail_sys(errno, "pid {}: setsid", p.pid);
	if (p.pgid == p.pid && p.sid != p.pid && setpgid(0, 0) != 0)
		return fail_sys(errno, "pid {}: setpgid", p.pid);
	for (size_t j = 0; j < img_.processes.size(); j++) {
		if (img_.processes[j].ppid != p.pid || j == i)
			continue;
		pid_t child = clone_with_pid(pid_t(img_.processes[j].pid));
		if (child < 0)
			return fail_sys(errno, "pid {}: create child {}", p.pid, img_.processes[j].pid);
		if (child == 0) {
			if (img_.processes[j].state == "zombie")
				become_zombie(img_.processes[j]);
			run(j);
		}
	}
	// Best effort: a group outside the image (or init's group 0) stays as it is.
	bool group_elsewhere = p.pgid != 0 && p.pgid != p.pid && getpgrp() != pid_t(p.pgid);
	if (group_elsewhere && access(fmt::format("/proc/{}", p.pgid).c_str(), F_OK) == 0)
		setpgid(0, pid_t(p.pgid));
	BCK_CHECK(context(enter_dirs(p, look_), "pid {}", p.pid));
	umask(mode_t(p.umask));
	ShimInputs in = BCK_TRY(open_shim_inputs(chain_, p, mf_.base, mf_.by_shmem, look_));
	ShimPlacement where = BCK_TRY(place_shim(p, shim_plan_bytes(p, in)));
	std::vector<int> keep = in.all();
	keep.push_back(ctl_.report_wr);
	keep.push_back(ctl_.go_rd[i]);
	BCK_CHECK(install_fds(p, mf_, keep));
	// The other processes' control pipes came along with the fork; children have theirs already.
	close(ctl_.report_rd);
	for (size_t j = 0; j < ctl_.go_wr.size(); j++) {
		close(ctl_.go_wr[j]);
		if (j != i)
			close(ctl_.go_rd[j]);
	}
	static const int kResources[] = {RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE,
					 RLIMIT_RSS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS,
					 RLIMIT_LOCKS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE,
					 RLIMIT_RTPRIO, RLIMIT_RTTIME};
	for (size_t r = 0; r < p.rlimits.size() && r < std::size(kResources); r++) {
		rlimit rl{p.rlimits[r].cur, p.rlimits[r].max};
		if (setrlimit(kResources[r], &rl) != 0)
			return fail_sys(errno, "pid {}: set rlimit {}", p.pid, p.rlimits[r].name);
	}

	Report ready{};
	ready.pid = int32_t(p.pid);
	ready.ok = 1;
	ready.outer_pid = outer_self();
	ready.shim_start = where.start;
	ready.shim_len = where.len;
	if (write(ctl_.report_wr, &ready, sizeof(ready)) != sizeof(ready))
		return fail_sys(errno, "pid {}: report ready", p.pid);
	char go;
	if (read(ctl_.go_rd[i], &go, 1) != 1)
		_exit(1);  // the master gave up: it reports why
	prctl(PR_SET_PDEATHSIG, 0);
	return enter_shim(p, in, where, {ctl_.report_wr, ctl_.go_rd[i]});
}

void Restorer::run(size_t i)
{
	Status st = prepare(i);
	report_error(i, st ? Error{ExitCode::failure, 0, "restore shim returned"} : st.error());
	_exit(1);
}

// --pidns: PID 1 of a new namespace. It creates the roots with their saved PIDs, forwards the signals a supervisor
// sends (PID 1 ignores what it has no handler for) to them, reaps orphans, and once every root has exited, exits
// with the first root's status.
pid_t clone_pidns_init()
{
	clone_args args{};
	args.flags = CLONE_NEWPID;
	args.exit_signal = SIGCHLD;
	return pid_t(syscall(SYS_clone3, &args, sizeof(args)));
}

std::vector<pid_t> g_ns_roots;

void forward_signal(int sig)
{
	for (pid_t r : g_ns_roots)
		kill(r, sig);
}

int wait_status_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// The init holds a copy of the master's fd table: the caller's stdio, the control pipes and the restored pipes'
// ends. Kept, they would hold a caller's `$(bpfckpt restore -d ...)` open and keep a restored pipe from ever
// reading EOF.
void drop_inherited_fds()
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3; fd++)
		if (null >= 0)
			dup2(null, fd);
	close_range(3, ~0U, 0);
}

[[noreturn]] void pidns_init(Restorer& restorer, const std::vector<size_t>& roots, const image::Image& img)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (size_t idx : roots) {
		pid_t pid = clone_with_pid(pid_t(img.processes[idx].pid));
		if (pid < 0)
			_exit(127);
		if (pid == 0)
			restorer.run(idx);
		g_ns_roots.push_back(pid);
	}
	drop_inherited_fds();
	for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH})
		signal(sig, forward_signal);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, nullptr);
	prctl(PR_SET_PDEATHSIG, 0);  // with -d the restore exits first; the namespace must live on
	std::set<pid_t> left(g_ns_roots.begin(), g_ns_roots.end());
	int first_status = 0;
	for (;;) {
		int status;
		pid_t r = waitpid(-1, &status, 0);
		if (r < 0 && errno == ECHILD)
			_exit(first_status);
		if (r < 0 || !left.erase(r))
			continue;
		if (r == g_ns_roots.front())
			first_status = wait_status_code(status);
		if (left.empty())
			_exit(first_status);
	}
}

// The processes whose parent is not in the image, the target first: the master (or the --pidns init) creates
// these, and each restorer creates its own children.
std::vector<size_t> root_indexes(const image::Image& img)
{
	std::set<uint32_t> pids;
	for (const auto& p : img.processes)
		pids.insert(p.pid);
	std::vector<size_t> roots;
	for (size_t i = 0; i < img.processes.size(); i++)
		if (!pids.count(img.processes[i].ppid) || img.processes[i].ppid == img.processes[i].pid)
			roots.push_back(i);
	// The target's root first, the others in image order (one pid: a rotate, not libstdc++'s stable_partition,
	// whose temporary buffer clang warns about under C++23).
	auto target = std::find_if(roots.begin(), roots.end(),
				   [&](size_t i) { return img.processes[i].pid == img.target.pid; });
	if (target != roots.end())
		std::rotate(roots.begin(), target, target + 1);
	return roots;
}

// The master's side: collects every restorer's "ready", seizes it, lets it go, and finishes each process once
// all of its threads are parked in the shim.
class Master {
public:
	// Threads, files, pipes and shared memory come from the newest image alone; private memory through the chain.
	explicit Master(const image::Chain& chain) : chain_(chain), img_(chain.newest()), dir_(chain.newest_dir()) {}
	~Master() { kill_all(); }

	Status run(const RestoreOptions& opt, const CgroupPlacement& cg, const FileLookup& look, RestoreStats& st);

private:
	Status create_roots(const RestoreOptions& opt, Restorer& restorer);
	Status make_control(int base);
	Status collect_ready();
	Status wait_parked();
	Status check_shim_error(pid_t pid);
	void kill_all();
	Status requeue_pending();

	const image::Chain& chain_;
	const image::Image& img_;
	const std::string& dir_;
	Control ctl_;
	std::vector<pid_t> roots_;               // our children: the roots, or the --pidns init
	bool done_ = false;
	std::map<pid_t, ShimPlacement> shims_;   // by pid
	std::map<pid_t, UniqueFd> pidfds_;
	std::set<pid_t> parked_;
	std::map<pid_t, pid_t> tgid_of_;         // saved tid -> saved pid
	std::map<pid_t, pid_t> outer_;           // saved tid -> tid in our namespace
	std::map<pid_t, pid_t> inner_;           // the reverse
};

Status Master::make_control(int base)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_DIRECT) != 0)  // O_DIRECT: packet mode, one Report per read
		return fail_sys(errno, "pipe2");
	ctl_.report_rd = BCK_TRY(move_high(fds[0], base));
	ctl_.report_wr = BCK_TRY(move_high(fds[1], base));
	for (size_t i = 0; i < img_.processes.size(); i++) {
		if (pipe2(fds, O_CLOEXEC) != 0)
			return fail_sys(errno, "pipe2");
		ctl_.go_rd.push_back(BCK_TRY(move_high(fds[0], base)));
		ctl_.go_wr.push_back(BCK_TRY(move_high(fds[1], base)));
	}
	return {};
}

Status Master::collect_ready()
{
	size_t ready = 0, expected = 0;
	for (const auto& p : img_.processes)
		expected += p.state != "zombie";
	while (ready < expected) {
		pollfd pfd{ctl_.report_rd, POLLIN, 0};
		int n = poll(&pfd, 1, kReadyTimeoutMs);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(ExitCode::failure, "restore: {} of {} processes not ready after {} s", expected - ready,
				    expected, kReadyTimeoutMs / 1000);
		Report r{};
		if (read(ctl_.report_rd, &r, sizeof(r)) != sizeof(r))
			return fail_sys(errno, "read a restorer's report");
		r.msg[sizeof(r.msg) - 1] = 0;
		if (!r.ok)
			return fail(ExitCode::failure, "{}", r.msg);
		pid_t pid = r.pid, outer = r.outer_pid;
		outer_[pid] = outer;
		inner_[outer] = pid;
		int pfd_ = int(syscall(SYS_pidfd_open, outer, 0));
		if (pfd_ < 0)
			return fail_sys(errno, "pid {}: pidfd_open", pid);
		pidfds_.emplace(pid, UniqueFd(pfd_));
		shims_[pid] = {r.shim_start, r.shim_len};
		// Seized before it jumps, so that the threads the shim creates are traced from their first instruction.
		if (ptrace(PTRACE_SEIZE, outer, nullptr, (void*)(PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL)) != 0)
			return fail_sys(errno, "pid {}: PTRACE_SEIZE", pid);
		ready++;
	}
	for (size_t i = 0; i < img_.processes.size(); i++)
		if (img_.processes[i].state != "zombie" && write(ctl_.go_wr[i], "g", 1) != 1)
			return fail_sys(errno, "release pid {}", img_.processes[i].pid);
	return {};
}

Status Master::check_shim_error(pid_t pid)
{
	shim_plan plan{};
	iovec local{&plan, sizeof(plan)};
	iovec remote{reinterpret_cast<void*>(shims_.at(pid).start + shim_plan_offset()), sizeof(plan)};
	if (process_vm_readv(outer_.at(pid), &local, 1, &remote, 1, 0) != ssize_t(sizeof(plan)))
		return fail_sys(errno, "pid {}: read the shim's report", pid);
	if (plan.error)
		return fail_errno(ExitCode::failure, int(-plan.error), "pid {}: restore shim: {} step failed at {:#x}", pid,
				  shim_step_name(plan.error_step), plan.error_arg);
	return {};
}

Status Master::wait_parked()
{
	size_t threads = 0;
	for (const auto& p : img_.processes)
		if (p.state != "zombie")
			for (const auto& t : p.threads)
				threads++, tgid_of_[pid_t(t.tid)] = pid_t(p.pid);
	while (parked_.size() < threads) {
		int status;
		pid_t otid = waitpid(-1, &status, __WALL);
		if (otid < 0)
			return fail_sys(errno, "wait for restored threads");
		if (!inner_.count(otid)) {
			// A thread the shim just created: learn its saved TID (they differ under --pidns).
			pid_t in = inner_pid(otid);
			if (in > 0 && tgid_of_.count(in) && !(WIFEXITED(status) || WIFSIGNALED(status)))
				inner_[otid] = in, outer_[in] = otid;
		}
		if (!inner_.count(otid))
			continue;
		pid_t tid = inner_[otid];
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return fail(ExitCode::failure, "pid {}: thread {} died during restore ({} {})", tgid_of_[tid], tid,
				    WIFEXITED(status) ? "exit" : "signal",
				    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		int sig = WSTOPSIG(status);
		int event = status >> 16;
		if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_STOP) {
			ptrace(PTRACE_CONT, otid, nullptr, nullptr);
			continue;
		}
		if (sig == SIGTRAP) {
			BCK_CHECK(check_shim_error(tgid_of_[tid]));
			parked_.insert(tid);
			continue;
		}
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGSYS || sig == SIGABRT)
			return fail(ExitCode::failure, "pid {}: thread {} got signal {} in the restore shim", tgid_of_[tid],
				    tid, sig);
		// Anything else is passed on. SIGCHLD from a zombie child restored just before is dropped: the saved
		// process had already been told of that child's death before the dump.
		ptrace(PTRACE_CONT, otid, nullptr, (void*)(long)(sig == SIGCHLD ? 0 : sig));
	}
	return {};
}

// A stopped process stops again. The shim queued the pending signals that had a siginfo again; the others (a
// standard signal whose siginfo the kernel could not allocate) are sent again as from kill(), while the threads are
// still stopped, so they are delivered (or stay pending, if blocked) once the threads run.
Status Master::requeue_pending()
{
	for (const auto& p : img_.processes) {
		if (p.state == "zombie")
			continue;
		std::vector<QueuedSignal> queued = BCK_TRY(read_queued_signals(dir_, p));
		pid_t pid = outer_.at(pid_t(p.pid));
		if (p.state == "stopped")  // it was in a group stop: it stops again as soon as it runs
			kill(pid, SIGSTOP);
		uint64_t shared = p.shared_pending & ~signals_with_siginfo(queued, 0);
		for (int sig = 1; sig <= 64; sig++)
			if (shared & (1ull << (sig - 1)))
				kill(pid, sig);
		for (const auto& t : p.threads) {
			uint64_t own = t.pending & ~signals_with_siginfo(queued, t.tid);
			for (int sig = 1; sig <= 64; sig++)
				if (own & (1ull << (sig - 1)))
					syscall(SYS_tgkill, pid, outer_.at(pid_t(t.tid)), sig);
		}
	}
	return {};
}

void Master::kill_all()
{
	if (done_)
		return;
	for (auto& [pid, fd] : pidfds_)
		syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
	for (pid_t r : roots_)
		kill(r, SIGKILL);  // our own child: its pid cannot have been reused before we reap it
	// A thread we trace that dies stays a zombie until we, its tracer, reap it, and its process's leader cannot be
	// reaped before it: waiting for the roots alone would hang once the shim has created threads.
	std::set<pid_t> left(roots_.begin(), roots_.end());
	while (!left.empty()) {
		pid_t w = waitpid(-1, nullptr, __WALL);
		if (w < 0 && errno != EINTR)
			break;
		left.erase(w);
	}
}

// Each root is our child with its saved PID; under --pidns, the namespace's init is, and it creates the roots.
Status Master::create_roots(const RestoreOptions& opt, Restorer& restorer)
{
	std::vector<size_t> roots = root_indexes(img_);
	if (opt.pidns) {
		pid_t init = clone_pidns_init();
		if (init < 0)
			return fail_sys(errno, "create a PID namespace");
		if (init == 0)
			pidns_init(restorer, roots, img_);
		roots_.push_back(init);
		return {};
	}
	for (size_t idx : roots) {
		pid_t pid = clone_with_pid(pid_t(img_.processes[idx].pid));
		if (pid < 0) {
			int e = errno;
			return fail_errno(e == EEXIST ? ExitCode::target_busy : exit_for_errno(e), e, "pid {}: create",
					  img_.processes[idx].pid);
		}
		if (pid == 0)
			restorer.run(idx);
		roots_.push_back(pid);
	}
	return {};
}

Status Master::run(const RestoreOptions& opt, const CgroupPlacement& cg, const FileLookup& look, RestoreStats& st)
{
	double t0 = now_s();
	MasterFiles mf = BCK_TRY(open_master_files(img_, dir_, opt.inherit, look));
	BCK_CHECK(make_control(mf.base));
	Restorer restorer(chain_, mf, ctl_, cg, look);
	BCK_CHECK(create_roots(opt, restorer));
	for (int fd : mf.all)
		close(fd);
	BCK_CHECK(collect_ready());
	st.forking_time = now_s() - t0;
	BCK_CHECK(wait_parked());
	for (const auto& p : img_.processes) {
		if (p.state == "zombie")
			continue;
		const ShimPlacement& s = shims_.at(pid_t(p.pid));
		auto outer = [this](uint32_t tid) { return outer_.at(pid_t(tid)); };
		BCK_CHECK(context(finalize_process(p, dir_, s.start, s.len, outer), "pid {}", p.pid));
		image::PageCounts pages = BCK_TRY(chain_.count_pages(p.pid));
		st.pages_restored += pages.own + pages.inherited;
	}
	BCK_CHECK(requeue_pending());
	for (pid_t tid : parked_)
		ptrace(PTRACE_DETACH, outer_.at(tid), nullptr, nullptr);
	done_ = true;
	st.restore_time = now_s() - t0;
	st.processes = img_.processes.size();
	if (opt.detach)
		return {};
	for (size_t i = 0; i < roots_.size(); i++) {
		int status = 0;
		if (waitpid(roots_[i], &status, 0) != roots_[i])
			return fail_sys(errno, "wait for pid {}", roots_[i]);
		if (i == 0)
			st.root_status = wait_status_code(status);
	}
	return {};
}

}  // namespace

Result<std::pair<std::string, int>> parse_inherit_fd(const std::string& arg)
{
	int fd = -1, used = 0;
	if (sscanf(arg.c_str(), "fd[%d]:%n", &fd, &used) != 1 || used == 0 || fd < 0 || size_t(used) == arg.size())
		return fail(ExitCode::usage, "--inherit-fd {}: expected fd[N]:KEY, e.g. fd[3]:pipe:[12345]", arg);
	if (fcntl(fd, F_GETFD) < 0)
		return fail(ExitCode::usage, "--inherit-fd {}: fd {} is not open", arg, fd);
	return std::make_pair(arg.substr(size_t(used)), fd);
}

Result<RestoreStats> restore_image(const RestoreOptions& opt)
{
	// Every image of the chain is validated and checksummed before anything is created.
	image::Chain chain = BCK_TRY(image::Chain::load(opt.dir, true));
	const image::Image& img = chain.newest();
	FileLookup look = BCK_TRY(FileLookup::open(opt.root));
	std::vector<Finding> findings = preflight(img, {opt.pidns, opt.cgroup}, look);
	for (const Finding& f : findings)
		if (f.blocks)
			return fail(f.exit, "{}", f.message());
	for (const Finding& f : findings)  // what --check calls notes: said once the restore goes ahead
		if (f.check == "file" && !look.has_root())
			log::warn("{}", f.message());
		else
			log::debug("{}", f.message());
	CgroupPlacement cg = BCK_TRY(place_cgroups(img, opt.cgroup));
	RestoreStats st;
	Status done;
	{
		Master m(chain);
		done = m.run(opt, cg, look, st);
	}  // a failed master kills what it created before the cgroups it made are removed
	if (!done) {
		cg.remove_created();
		return std::unexpected(done.error());
	}
	return st;
}

}  // namespace bpfckpt::restore

namespace bpfckpt::restore {

Result<std::vector<Finding>> check_image(const RestoreOptions& opt)
{
	image::Chain chain = BCK_TRY(image::Chain::load(opt.dir, true));
	FileLookup look = BCK_TRY(FileLookup::open(opt.root));
	return preflight(chain.newest(), {opt.pidns, opt.cgroup}, look);
}

}  // namespace bpfckpt::restore
