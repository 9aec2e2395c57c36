#include "check/probes.h"

#include <elf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bpfckpt/compat.h"
#include "common/fd.h"
#include "common/fs.h"
#include "dump/collector.h"

namespace bpfckpt::check {

namespace {

// ---- helpers ----------------------------------------------------------------------------------------------------

// A probe's body returns the detail to print on success; this turns it into the probe's result.
ProbeResult finish(const char* name, Result<std::string> r)
{
	if (r)
		return ProbeResult{name, true, true, std::move(*r), false};
	return ProbeResult{name, false, true, r.error().describe(), r.error().exit == ExitCode::permission};
}

pid_t wait_child(pid_t pid, int* status)
{
	for (;;) {
		pid_t r = ::waitpid(pid, status, __WALL);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

// A forked victim for probes that act on another process. The child runs `setup`, hands its int result to the
// parent, then sleeps until killed. It is killed and reaped on every path, and dies with us if we die first.
// `setup` runs after fork() in a possibly multi-threaded parent: async-signal-safe calls only.
class Child {
public:
	template <typename F>
	static Result<Child> spawn(F setup);

	Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), value_(o.value_) {}
	Child& operator=(Child&&) = delete;
	~Child()
	{
		if (pid_ > 0) {
			::kill(pid_, SIGKILL);
			int st;
			wait_child(pid_, &st);
		}
	}

	pid_t pid() const { return pid_; }
	int value() const { return value_; }

private:
	Child() = default;
	pid_t pid_ = -1;
	int value_ = 0;
};

template <typename F>
Result<Child> Child::spawn(F setup)
{
	int p[2];
	if (::pipe2(p, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe2");
	UniqueFd rd(p[0]), wr(p[1]);
	pid_t parent = ::getpid();
	pid_t pid = ::fork();
	if (pid < 0)
		return fail_sys(errno, "fork");
	if (pid == 0) {
		::prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (::getppid() != parent)
			::_exit(1);
		int v = setup();
		if (::write(wr.get(), &v, sizeof(v)) != sizeof(v))
			::_exit(1);
		for (;;)
			::pause();
	}
	Child c;
	c.pid_ = pid;
	wr.reset();
	pollfd pfd{rd.get(), POLLIN, 0};
	if (::poll(&pfd, 1, 5000) <= 0)
		return fail(ExitCode::failure, "child {} did not get ready within 5 s", pid);
	if (::read(rd.get(), &c.value_, sizeof(c.value_)) != sizeof(c.value_))
		return fail(ExitCode::failure, "child {} exited before it was ready", pid);
	return c;
}

// An anonymous private mapping, unmapped on every path.
class Mapping {
public:
	explicit Mapping(size_t len)
	    : len_(len), addr_(::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
	{
	}
	Mapping(const Mapping&) = delete;
	Mapping& operator=(const Mapping&) = delete;
	~Mapping()
	{
		if (ok())
			::munmap(addr_, len_);
	}
	bool ok() const { return addr_ != MAP_FAILED; }
	char* data() const { return static_cast<char*>(addr_); }
	uint64_t addr() const { return reinterpret_cast<uintptr_t>(addr_); }

private:
	size_t len_;
	void* addr_;
};

// A ptrace attachment, detached on every path (before the Child it traces is killed).
class Seized {
public:
	explicit Seized(pid_t pid) : pid_(pid) {}
	Seized(const Seized&) = delete;
	Seized& operator=(const Seized&) = delete;
	~Seized() { ::ptrace(PTRACE_DETACH, pid_, nullptr, nullptr); }

private:
	pid_t pid_;
};

// A cgroup directory we created, removed on every path.
class TempCgroup {
public:
	explicit TempCgroup(std::string path) : path_(std::move(path)) {}
	TempCgroup(const TempCgroup&) = delete;
	TempCgroup& operator=(const TempCgroup&) = delete;
	~TempCgroup() { ::rmdir(path_.c_str()); }
	const std::string& path() const { return path_; }

private:
	std::string path_;
};

size_t page_size()
{
	return size_t(::sysconf(_SC_PAGESIZE));
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mountinfo(std::string_view s)
{
	std::string out;
	for (size_t i = 0; i < s.size(); i++) {
		if (s[i] == '\\' && i + 3 < s.size()) {
			auto oct = [](char c) { return c >= '0' && c <= '7'; };
			if (oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
				out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
				i += 3;
				continue;
			}
		}
		out += s[i];
	}
	return out;
}

// The cgroup v2 mount point: pure v2 systems have it at /sys/fs/cgroup, hybrid ones elsewhere.
Result<std::string> cgroup2_mount()
{
	std::string info = BCK_TRY(read_file("/proc/self/mountinfo"));
	size_t pos = 0;
	while (pos < info.size()) {
		size_t eol = info.find('\n', pos);
		if (eol == std::string::npos)
			eol = info.size();
		std::string_view line(info.data() + pos, eol - pos);
		pos = eol + 1;
		// "id parent major:minor root mount_point options [optional...] - fstype source super_options"
		size_t sep = line.find(" - ");
		if (sep == std::string_view::npos || line.substr(sep + 3).substr(0, 8) != "cgroup2 ")
			continue;
		std::string_view f = line;
		for (int skip = 0; skip < 4; skip++)
			f.remove_prefix(std::min(f.size(), f.find(' ') + 1));
		return unescape_mountinfo(f.substr(0, f.find(' ')));
	}
	return fail(ExitCode::kernel, "no cgroup2 file system is mounted (see /proc/self/mountinfo)");
}

// ---- probe bodies -----------------------------------------------------------------------------------------------

Result<std::string> try_capabilities()
{
	__user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
	if (::syscall(SYS_capget, &hdr, data) != 0)
		return fail_sys(errno, "capget");
	uint64_t eff = uint64_t(data[0].effective) | uint64_t(data[1].effective) << 32;
	struct {
		int cap;
		const char* name;
	} const wanted[] = {{CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
			    {CAP_BPF, "CAP_BPF"},
			    {CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE"}};
	std::string missing;
	for (auto& w : wanted)
		if (!(eff & (uint64_t(1) << w.cap)))
			missing += missing.empty() ? w.name : std::string(", ") + w.name;
	if (!missing.empty())
		return fail(ExitCode::permission, "not in the effective set: {}", missing);
	return std::string("CAP_SYS_ADMIN, CAP_BPF, CAP_CHECKPOINT_RESTORE are effective");
}

Result<std::string> try_btf()
{
	const char* path = "/sys/kernel/btf/vmlinux";
	UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {} (a kernel built with CONFIG_DEBUG_INFO_BTF is needed)", path);
	uint16_t magic = 0;
	if (::read(fd.get(), &magic, sizeof(magic)) != sizeof(magic))
		return fail_sys(errno, "read {}", path);
	if (magic != 0xeB9F)
		return fail(ExitCode::kernel, "{} does not start with the BTF magic (got {:#x})", path, magic);
	struct stat st{};
	::fstat(fd.get(), &st);
	return fmt::format("{} readable, {} KiB", path, st.st_size / 1024);
}

// Loading, attaching and reading all three iterators, filtered to ourselves, is what a dump does first.
Result<std::string> try_bpf_iterators()
{
	auto collector = BCK_TRY(dump::Collector::open());
	pid_t self = ::getpid();
	auto tasks = BCK_TRY(collector->tasks_below(self));
	if (std::none_of(tasks.begin(), tasks.end(), [&](const dump::RawTask& t) { return pid_t(t.rec.tid) == self; }))
		return fail(ExitCode::kernel, "iter/task did not report our own pid {}", self);
	BCK_CHECK(collector->set_targets({self}));
	auto files = BCK_TRY(collector->files());
	auto vmas = BCK_TRY(collector->vmas());
	auto ours = [&](const auto& v) {
		return std::count_if(v.begin(), v.end(), [&](const auto& x) { return pid_t(x.rec.tgid) == self; });
	};
	if (ours(files) == 0)
		return fail(ExitCode::kernel, "iter/task_file reported none of our fds");
	if (ours(vmas) == 0)
		return fail(ExitCode::kernel, "iter/task_vma reported none of our vmas");
	return fmt::format("iter/task, iter/task_file, iter/task_vma load and attach; saw {} task(s), {} fds, {} vmas of ours",
			   tasks.size(), ours(files), ours(vmas));
}

Result<std::string> try_ptrace()
{
	Child child = BCK_TRY(Child::spawn([] { return 0; }));
	pid_t pid = child.pid();
	if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0)
		return fail_sys(errno, "PTRACE_SEIZE {}", pid);
	Seized seized(pid);
	if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0)
		return fail_sys(errno, "PTRACE_INTERRUPT {}", pid);
	int st = 0;
	if (wait_child(pid, &st) != pid)
		return fail_sys(errno, "waitpid {}", pid);
	if (!WIFSTOPPED(st) || (st >> 16) != PTRACE_EVENT_STOP)
		return fail(ExitCode::kernel, "PTRACE_INTERRUPT: unexpected wait status {:#x}", st);

	user_regs_struct regs{};
	iovec iov{&regs, sizeof(regs)};
	if (::ptrace(PTRACE_GETREGSET, pid, NT_PRSTATUS, &iov) != 0)
		return fail_sys(errno, "PTRACE_GETREGSET NT_PRSTATUS");
	size_t prstatus = iov.iov_len;

	// Large enough for every xstate component x86 defines today (AMX tiles included).
	std::vector<uint8_t> xstate(64 * 1024);
	iov = {xstate.data(), xstate.size()};
	if (::ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) != 0)
		return fail_sys(errno, "PTRACE_GETREGSET NT_X86_XSTATE");
	if (iov.iov_len < BCK_XSTATE_XCR0_OFFSET + sizeof(uint64_t))
		return fail(ExitCode::kernel, "NT_X86_XSTATE returned only {} bytes", iov.iov_len);
	uint64_t xcr0;
	std::memcpy(&xcr0, xstate.data() + BCK_XSTATE_XCR0_OFFSET, sizeof(xcr0));
	return fmt::format("SEIZE, INTERRUPT, GETREGSET NT_PRSTATUS ({} B) and NT_X86_XSTATE ({} B, XCR0 {:#x})",
			   prstatus, iov.iov_len, xcr0);
}

// The child fills a pipe and names its read end; we take that fd and read the bytes back.
Result<std::string> try_pidfd_getfd()
{
	static constexpr char kMsg[] = "bpfckpt";
	Child child = BCK_TRY(Child::spawn([] {
		int p[2];
		if (::pipe(p) != 0 || ::write(p[1], kMsg, sizeof(kMsg)) != sizeof(kMsg))
			return -1;
		return p[0];
	}));
	if (child.value() < 0)
		return fail(ExitCode::failure, "the child could not fill its pipe");
	UniqueFd pidfd(int(::syscall(SYS_pidfd_open, child.pid(), 0)));
	if (!pidfd)
		return fail_sys(errno, "pidfd_open {}", child.pid());
	UniqueFd fd(int(::syscall(SYS_pidfd_getfd, pidfd.get(), child.value(), 0)));
	if (!fd)
		return fail_sys(errno, "pidfd_getfd {} fd {}", child.pid(), child.value());
	char got[sizeof(kMsg)] = {};
	if (::read(fd.get(), got, sizeof(got)) != sizeof(got) || std::memcmp(got, kMsg, sizeof(kMsg)) != 0)
		return fail(ExitCode::kernel, "pidfd_getfd: the pipe taken from the child does not hold its bytes");
	return fmt::format("took pipe fd {} from child {} and read its bytes", child.value(), child.pid());
}

// The child writes a pattern over memory it inherited; reading it back proves we see the child's copy, not ours.
Result<std::string> try_process_vm_readv()
{
	std::vector<uint64_t> buf(8192, 0);  // 64 KiB: the iovec size dump uses for speed
	uint64_t* mem = buf.data();
	size_t n = buf.size();
	auto pattern = [](size_t i) { return 0x9e3779b97f4a7c15ULL * (i + 1); };
	Child child = BCK_TRY(Child::spawn([=] {
		for (size_t i = 0; i < n; i++)
			mem[i] = pattern(i);
		return 0;
	}));
	std::vector<uint64_t> got(n, 0);
	iovec local{got.data(), n * sizeof(uint64_t)};
	iovec remote{mem, n * sizeof(uint64_t)};
	ssize_t r = ::process_vm_readv(child.pid(), &local, 1, &remote, 1, 0);
	if (r < 0)
		return fail_sys(errno, "process_vm_readv {}", child.pid());
	if (size_t(r) != local.iov_len)
		return fail(ExitCode::kernel, "process_vm_readv read {} of {} bytes", r, local.iov_len);
	for (size_t i = 0; i < n; i++)
		if (got[i] != pattern(i))
			return fail(ExitCode::kernel, "process_vm_readv: word {} is {:#x}, the child wrote {:#x}", i, got[i],
				    pattern(i));
	return fmt::format("read {} KiB written by child {}", r / 1024, child.pid());
}

// Four pages, the first and third touched: the scan must report exactly those two as present.
Result<std::string> try_pagemap_scan()
{
	size_t pg = page_size();
	Mapping map(4 * pg);
	if (!map.ok())
		return fail_sys(errno, "mmap");
	map.data()[0] = 1;
	map.data()[2 * pg] = 1;

	UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open /proc/self/pagemap");
	page_region regions[4]{};
	pm_scan_arg arg{};
	arg.size = sizeof(arg);
	arg.start = map.addr();
	arg.end = map.addr() + 4 * pg;
	arg.vec = reinterpret_cast<uintptr_t>(regions);
	arg.vec_len = 4;
	arg.category_mask = PAGE_IS_PRESENT;
	arg.return_mask = PAGE_IS_PRESENT;
	int n = ::ioctl(fd.get(), PAGEMAP_SCAN, &arg);
	if (n < 0) {
		if (errno == ENOTTY || errno == EINVAL)
			return fail(ExitCode::kernel, "ioctl PAGEMAP_SCAN is not supported (Linux 6.7 added it)");
		return fail_sys(errno, "ioctl PAGEMAP_SCAN");
	}
	auto is = [&](const page_region& r, uint64_t page) {
		return r.start == map.addr() + page * pg && r.end == r.start + pg && r.categories == PAGE_IS_PRESENT;
	};
	if (n != 2 || !is(regions[0], 0) || !is(regions[1], 2))
		return fail(ExitCode::kernel, "PAGEMAP_SCAN found {} present region(s), expected pages 0 and 2 of 4", n);
	return std::string("found exactly the 2 touched pages of 4 as PAGE_IS_PRESENT");
}

// What incremental dumps need: a write-protect mode that tracks writes without faulting to us.
Result<std::string> try_userfaultfd_wp_async()
{
	constexpr uint64_t want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
	UniqueFd uffd(int(::syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY)));
	if (!uffd)
		return fail_sys(errno, "userfaultfd");
	uffdio_api api{};
	api.api = UFFD_API;
	api.features = want;
	if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) {
		if (errno == EINVAL)
			return fail(ExitCode::kernel,
				    "UFFDIO_API refuses WP_ASYNC|WP_UNPOPULATED (Linux 6.7 added WP_ASYNC)");
		return fail_sys(errno, "UFFDIO_API");
	}
	if ((api.features & want) != want)
		return fail(ExitCode::kernel, "UFFDIO_API features {:#x} lack WP_ASYNC|WP_UNPOPULATED", api.features);

	size_t pg = page_size();
	Mapping map(pg);
	if (!map.ok())
		return fail_sys(errno, "mmap");
	uffdio_register reg{};
	reg.range = {map.addr(), pg};
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (::ioctl(uffd.get(), UFFDIO_REGISTER, &reg) != 0)
		return fail_sys(errno, "UFFDIO_REGISTER MODE_WP");
	return std::string("UFFDIO_API grants WP_ASYNC and WP_UNPOPULATED; anonymous memory registers for MODE_WP");
}

// Restore recreates the saved pids: ask for a free one near pid_max, where nothing is likely to race us for it.
Result<std::string> try_clone3_set_tid()
{
	std::string text = BCK_TRY(read_file("/proc/sys/kernel/pid_max"));
	pid_t pid_max = pid_t(std::strtol(text.c_str(), nullptr, 10));
	if (pid_max < 1000)
		return fail(ExitCode::failure, "/proc/sys/kernel/pid_max is {}", text);
	for (pid_t want = pid_max - 1; want > pid_max - 200; want--) {
		if (::access(fmt::format("/proc/{}", want).c_str(), F_OK) == 0)
			continue;
		pid_t tid = want;
		clone_args args{};
		args.exit_signal = SIGCHLD;
		args.set_tid = reinterpret_cast<uintptr_t>(&tid);
		args.set_tid_size = 1;
		long got = ::syscall(SYS_clone3, &args, sizeof(args));
		if (got == 0)
			::_exit(0);
		if (got < 0) {
			if (errno == EEXIST)  // taken since we looked
				continue;
			return fail_sys(errno, "clone3 with set_tid {}", want);
		}
		int st;
		wait_child(pid_t(got), &st);
		if (got != want)
			return fail(ExitCode::kernel, "clone3 asked for pid {} and created {}", want, got);
		return fmt::format("created a child with the requested pid {}", want);
	}
	return fail(ExitCode::failure, "no free pid in the 200 below pid_max {}", pid_max);
}

// Restoring POSIX timers needs timer_create() to take the saved id: a child (the switch is per process) asks for
// an unlikely id and checks that it got it. Only images with timers need this, so the probe is not required.
Result<std::string> try_posix_timer_ids()
{
	constexpr int kWanted = 4242;
	pid_t child = ::fork();
	if (child < 0)
		return fail_sys(errno, "fork");
	if (child == 0) {
		if (::prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0) != 0)
			::_exit(1);
		sigevent sev{};
		sev.sigev_notify = SIGEV_NONE;
		int id = kWanted;  // read by the kernel while the switch is on
		if (::syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id) != 0)
			::_exit(2);
		::_exit(id == kWanted ? 0 : 3);
	}
	int st = 0;
	wait_child(child, &st);
	if (!WIFEXITED(st))
		return fail(ExitCode::failure, "the probe's child died (status {:#x})", st);
	switch (WEXITSTATUS(st)) {
	case 0:
		return fmt::format("timer_create made timer {} as asked (PR_TIMER_CREATE_RESTORE_IDS)", kWanted);
	case 1:
		return fail(ExitCode::kernel, "prctl(PR_TIMER_CREATE_RESTORE_IDS) is not supported (Linux 6.15 added it): "
			    "images with POSIX timers cannot be restored");
	case 2:
		return fail(ExitCode::kernel, "timer_create refused the id asked for");
	default:
		return fail(ExitCode::kernel, "timer_create ignored the id asked for");
	}
}

// dump freezes a cgroup and snap kills one: create a child cgroup, check both files, freeze it (empty, so at once).
Result<std::string> try_cgroup_freezer()
{
	std::string mount = BCK_TRY(cgroup2_mount());
	TempCgroup cg(fmt::format("{}/bpfckpt-check-{}", mount, ::getpid()));
	if (::mkdir(cg.path().c_str(), 0755) != 0)
		return fail_sys(errno, "mkdir {}", cg.path());
	for (const char* f : {"cgroup.freeze", "cgroup.kill"})
		if (::access((cg.path() + "/" + f).c_str(), W_OK) != 0)
			return fail_sys(errno, "{}/{}", cg.path(), f);
	BCK_CHECK(write_file(cg.path() + "/cgroup.freeze", "1", 0644));
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
	for (;;) {
		std::string events = BCK_TRY(read_file(cg.path() + "/cgroup.events"));
		if (events.find("frozen 1") != std::string::npos)
			break;
		if (std::chrono::steady_clock::now() > deadline)
			return fail(ExitCode::kernel, "{} did not report frozen within 2 s", cg.path());
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
	BCK_CHECK(write_file(cg.path() + "/cgroup.freeze", "0", 0644));
	return fmt::format("cgroup2 at {}: a child cgroup has cgroup.freeze and cgroup.kill, and froze", mount);
}

}  // namespace

// ---- probes -----------------------------------------------------------------------------------------------------

ProbeResult probe_capabilities() { return finish("capabilities", try_capabilities()); }
ProbeResult probe_btf() { return finish("btf", try_btf()); }
ProbeResult probe_bpf_iterators() { return finish("bpf_iterators", try_bpf_iterators()); }
ProbeResult probe_ptrace() { return finish("ptrace", try_ptrace()); }
ProbeResult probe_pidfd_getfd() { return finish("pidfd_getfd", try_pidfd_getfd()); }
ProbeResult probe_process_vm_readv() { return finish("process_vm_readv", try_process_vm_readv()); }
ProbeResult probe_pagemap_scan() { return finish("pagemap_scan", try_pagemap_scan()); }
ProbeResult probe_userfaultfd_wp_async() { return finish("userfaultfd_wp_async", try_userfaultfd_wp_async()); }
ProbeResult probe_clone3_set_tid() { return finish("clone3_set_tid", try_clone3_set_tid()); }
ProbeResult probe_cgroup_freezer() { return finish("cgroup_freezer", try_cgroup_freezer()); }

ProbeResult probe_posix_timer_ids()
{
	ProbeResult r = finish("posix_timer_ids", try_posix_timer_ids());
	r.required = false;
	return r;
}

std::vector<ProbeResult> run_all_probes()
{
	// A braced list runs its initialisers in order: the output follows this list.
	return {probe_capabilities(), probe_btf(), probe_bpf_iterators(), probe_ptrace(), probe_pidfd_getfd(),
		probe_process_vm_readv(), probe_pagemap_scan(), probe_userfaultfd_wp_async(), probe_clone3_set_tid(),
		probe_cgroup_freezer(), probe_posix_timer_ids()};
}

Status verdict(const std::vector<ProbeResult>& results)
{
	size_t required = 0, missing = 0, denied = 0;
	for (const auto& r : results) {
		if (!r.required)
			continue;
		required++;
		if (!r.ok) {
			missing++;
			denied += r.denied;
		}
	}
	if (missing == 0)
		return {};
	if (denied == missing)
		return fail(ExitCode::permission, "{} of {} requirements missing: run as root", missing, required);
	return fail(ExitCode::kernel, "{} of {} requirements missing", missing, required);
}

}  // namespace bpfckpt::check
