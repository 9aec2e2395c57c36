// bench_dump: how `bpfckpt dump` compares with the obvious alternatives, measured in one run.
//   1. metadata of ~1000 processes: the BPF iterators (with and without loading them) against reading /proc
//   2. a dump of 1 GiB of random memory against writing the same bytes from a buffer (page cache; and fsync'd), and
//      against memcpy as the physical limit
//   3. bpfckpt's peak RSS during that dump
//   4. the fixed cost of dumping a tiny process
// A benchmark, not a test: it prints figures and ratios; targets that are missed are reported, not failed.
// On the PVM guests first-touch faults are slow and idle memory goes back to the host (KERNEL.md, costs), so each
// comparison has a warm-up and runs its alternatives interleaved, reporting medians.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"
#include "dump/collector.h"

namespace {

using namespace bpfckpt;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;  // figures in the order they were measured

struct Config {
	bool quick = false;
	bool json = false;
	int processes = 1000;
	size_t mem_mib = 1024;
	int meta_reps = 5;
	int dump_rounds = 3;
	int fixed_reps = 10;
};

// --- interruption ----------------------------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// Without SA_RESTART, so that a blocked poll() or wait4() returns and the cleanup runs.
void install_signal_handlers()
{
	struct sigaction sa {};
	sa.sa_handler = on_signal;
	for (int sig : {SIGINT, SIGTERM, SIGHUP})
		sigaction(sig, &sa, nullptr);
}

Status check_stop()
{
	if (g_stop)
		return fail(ExitCode::failure, "interrupted");
	return {};
}

// --- timing ----------------------------------------------------------------------------------------------------------

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

double median(std::vector<double> v)
{
	if (v.empty())
		return 0;
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Samples by name; a warm-up round is run but not recorded.
struct Samples {
	std::map<std::string, std::vector<double>> by_name;
	bool recording = false;

	void add(const std::string& name, double v)
	{
		if (recording)
			by_name[name].push_back(v);
	}
	double med(const std::string& name) const
	{
		auto it = by_name.find(name);
		return it == by_name.end() ? 0 : median(it->second);
	}
};

// --- the report ------------------------------------------------------------------------------------------------------

struct Goal {
	bool at_most = true;  // value <= limit, else value >= limit
	double limit = 0;
	std::string unit;

	bool met(double v) const { return at_most ? v <= limit : v >= limit; }
	std::string describe() const { return fmt::format("{} {:g}{}", at_most ? "<=" : ">=", limit, unit); }
};

struct Figure {
	std::string name;
	double value = 0;
	std::string unit;
	std::optional<double> ratio;  // when set, the goal applies to it, not to value
	std::string ratio_of;         // "X vs Y"
	std::optional<Goal> goal;
};

class Report {
public:
	void add(Figure f) { figures_.push_back(std::move(f)); }
	void info(std::string name, double value, std::string unit) { add({std::move(name), value, std::move(unit)}); }
	void ratio(std::string name, double value, std::string unit, double ratio, std::string of,
		   std::optional<Goal> goal = {})
	{
		add({std::move(name), value, std::move(unit), ratio, std::move(of), std::move(goal)});
	}
	void goal(std::string name, double value, std::string unit, Goal goal)
	{
		add({std::move(name), value, std::move(unit), {}, {}, std::move(goal)});
	}

	void print_table(FILE* out) const
	{
		for (const Figure& f : figures_)
			fmt::print(out, "{}\n", line(f));
	}

	Json to_json(const Config& cfg) const
	{
		Json figs = Json::object();
		for (const Figure& f : figures_) {
			Json j{{"value", f.value}, {"unit", f.unit}};
			if (f.ratio) {
				j["ratio"] = *f.ratio;
				j["ratio_of"] = f.ratio_of;
			}
			if (f.goal) {
				j["target"] = (f.ratio ? "ratio " : "") + f.goal->describe();
				j["ok"] = f.goal->met(f.ratio.value_or(f.value));
			}
			figs[f.name] = std::move(j);
		}
		return Json{{"config",
			     {{"quick", cfg.quick},
			      {"processes", cfg.processes},
			      {"mem_mib", cfg.mem_mib},
			      {"meta_reps", cfg.meta_reps},
			      {"dump_rounds", cfg.dump_rounds},
			      {"fixed_reps", cfg.fixed_reps}}},
			    {"figures", std::move(figs)}};
	}

private:
	static std::string line(const Figure& f)
	{
		bool whole = f.value == std::floor(f.value) && std::abs(f.value) < 1e12;
		std::string s = whole ? fmt::format("{}: {:.0f}", f.name, f.value) : fmt::format("{}: {:.2f}", f.name, f.value);
		if (!f.unit.empty())
			s += " " + f.unit;
		std::vector<std::string> notes;
		if (f.ratio)
			notes.push_back(fmt::format("ratio {:.2f}x {}", *f.ratio, f.ratio_of));
		if (f.goal)
			notes.push_back(fmt::format("target {}: {}", f.goal->describe(),
						    f.goal->met(f.ratio.value_or(f.value)) ? "ok" : "MISSED"));
		if (!notes.empty())
			s += fmt::format(" ({})", fmt::join(notes, ", "));
		return s;
	}

	std::vector<Figure> figures_;
};

void progress(std::string_view what) { fmt::print(stderr, "# {}\n", what); }

// --- child processes -------------------------------------------------------------------------------------------------

// Kills a process group and reaps its leader and, since we are a child subreaper, every member orphaned to us.
void kill_and_reap(pid_t pgid)
{
	::kill(-pgid, SIGKILL);
	int st;
	while (::waitpid(pgid, &st, 0) < 0 && errno == EINTR) {
	}
	while (::waitpid(-pgid, &st, 0) > 0 || errno == EINTR) {
	}
}

// A spawned process, leader of its own process group: killed with the group and reaped on every path.
class Child {
public:
	Child() = default;
	Child(pid_t pid, UniqueFd out) : pid_(pid), out_(std::move(out)) {}
	Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)) {}
	Child& operator=(Child&& o) noexcept
	{
		if (this != &o) {
			stop();
			pid_ = std::exchange(o.pid_, -1);
			out_ = std::move(o.out_);
		}
		return *this;
	}
	~Child() { stop(); }

	pid_t pid() const { return pid_; }
	int out_fd() const { return out_.get(); }
	// The caller has reaped it.
	void forget() { pid_ = -1; }
	void stop()
	{
		if (pid_ > 0)
			kill_and_reap(std::exchange(pid_, -1));
		out_.reset();
	}

private:
	pid_t pid_ = -1;
	UniqueFd out_;
};

// fork + exec, stdin from /dev/null, stdout (and stderr if merge_stderr) into a pipe. The child leads its own process
// group, so that one kill reaches everything it forks, and dies with us (PDEATHSIG) if we die without cleaning up.
Result<Child> spawn(const std::vector<std::string>& argv, bool merge_stderr)
{
	int p[2];
	if (::pipe2(p, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe");
	UniqueFd rd(p[0]), wr(p[1]);
	std::vector<char*> args;
	for (const std::string& a : argv)
		args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	pid_t parent = ::getpid();
	pid_t pid = ::fork();
	if (pid < 0)
		return fail_sys(errno, "fork for {}", argv[0]);
	if (pid == 0) {  // async-signal-safe calls only until exec
		::setpgid(0, 0);
		::prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (::getppid() != parent)
			::_exit(127);
		int null = ::open("/dev/null", O_RDONLY);
		if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(wr.get(), 1) < 0 || (merge_stderr && ::dup2(wr.get(), 2) < 0))
			::_exit(127);
		::close_range(3, ~0U, 0);  // nothing of ours leaks into the targets' fd tables
		::execv(args[0], args.data());
		::_exit(127);
	}
	::setpgid(pid, pid);  // from both sides: no window in which kill(-pid) misses it
	return Child(pid, std::move(rd));
}

// Reads until a line is complete (want_line) or until EOF, whichever comes first, within timeout_s.
Result<std::string> read_output(int fd, bool want_line, int timeout_s, std::string_view what)
{
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	std::string out;
	char buf[65536];
	for (;;) {
		BCK_CHECK(check_stop());
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
		if (left <= 0)
			return fail(ExitCode::failure, "{}: no output after {} s", what, timeout_s);
		pollfd pfd{fd, POLLIN, 0};
		int r = ::poll(&pfd, 1, int(left));
		if (r < 0 && errno != EINTR)
			return fail_sys(errno, "{}: poll", what);
		if (r <= 0)
			continue;
		ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_sys(errno, "{}: read", what);
		}
		if (n == 0)
			return out;
		out.append(buf, size_t(n));
		if (want_line && out.find('\n') != std::string::npos)
			return out.substr(0, out.find('\n'));
	}
}

// A target started and past its `READY {json}` line.
struct Target {
	Child child;
	Json ready;
};

Result<Target> start_target(const std::vector<std::string>& argv, int timeout_s)
{
	Target t{BCK_TRY(spawn(argv, false)), {}};
	std::string line = BCK_TRY(read_output(t.child.out_fd(), true, timeout_s, argv[0]));
	if (!line.starts_with("READY "))
		return fail(ExitCode::failure, "{}: expected READY, got '{}'", argv[0], line);
	t.ready = Json::parse(line.substr(6), nullptr, false);
	if (t.ready.is_discarded())
		return fail(ExitCode::failure, "{}: bad READY line '{}'", argv[0], line);
	return t;
}

struct CommandResult {
	int status = 0;
	double wall_us = 0;
	long maxrss_kib = 0;  // ru_maxrss of the command (and of any children it reaped)
	std::string output;   // stdout and stderr
};

// Runs a command to completion: wall time from before fork to after wait4, its peak RSS from wait4.
Result<CommandResult> run_command(const std::vector<std::string>& argv, int timeout_s)
{
	auto t0 = Clock::now();
	Child child = BCK_TRY(spawn(argv, true));
	CommandResult res;
	res.output = BCK_TRY(read_output(child.out_fd(), false, timeout_s, argv[0]));
	rusage ru{};
	for (;;) {
		pid_t r = ::wait4(child.pid(), &res.status, 0, &ru);
		if (r == child.pid())
			break;
		if (r < 0 && errno != EINTR)
			return fail_sys(errno, "wait for {}", argv[0]);
		BCK_CHECK(check_stop());
	}
	res.wall_us = us_since(t0);
	child.forget();
	res.maxrss_kib = ru.ru_maxrss;
	return res;
}

// --- big buffers and scratch space -----------------------------------------------------------------------------------

// An anonymous mapping for our own GiB-sized buffers. MADV_DONTFORK keeps it out of every child we fork: fork would
// copy its page tables, and exec records the forked mm's peak RSS as the child's ru_maxrss, so the dump's measured
// peak would include our buffers.
class Buffer {
public:
	static Result<Buffer> map(size_t bytes)
	{
		void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return fail_sys(errno, "mmap {} MiB", bytes >> 20);
		Buffer b(static_cast<char*>(p), bytes);
		if (::madvise(p, bytes, MADV_DONTFORK) != 0)
			return fail_sys(errno, "madvise(MADV_DONTFORK)");
		::madvise(p, bytes, MADV_POPULATE_WRITE);  // faults in bulk; best effort, fill() touches every page
		return b;
	}
	Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
	Buffer& operator=(Buffer&&) = delete;
	~Buffer()
	{
		if (p_)
			::munmap(p_, n_);
	}

	char* data() const { return p_; }
	size_t size() const { return n_; }

	// xorshift64, as in target_mem.c: incompressible, no zero pages.
	void fill_random(uint64_t seed)
	{
		auto* w = reinterpret_cast<uint64_t*>(p_);
		for (size_t i = 0; i < n_ / sizeof(uint64_t); i++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			w[i] = seed;
		}
	}

private:
	Buffer(char* p, size_t n) : p_(p), n_(n) {}
	char* p_;
	size_t n_;
};

// A scratch directory under /var/tmp (the filesystem images go to), removed with everything in it.
class WorkDir {
public:
	static Result<WorkDir> create()
	{
		char tmpl[] = "/var/tmp/bpfckpt-bench-XXXXXX";
		if (!::mkdtemp(tmpl))
			return fail_sys(errno, "mkdtemp {}", tmpl);
		return WorkDir(tmpl);
	}
	WorkDir(WorkDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
	WorkDir& operator=(WorkDir&&) = delete;
	~WorkDir()
	{
		std::error_code ec;
		if (!path_.empty())
			std::filesystem::remove_all(path_, ec);
	}

	std::string path(std::string_view name) const { return fmt::format("{}/{}", path_, name); }

	// Removes a file or an image directory and writes back what is left dirty, so that the next measurement starts
	// from a quiet disk.
	static void discard(const std::string& p)
	{
		std::error_code ec;
		std::filesystem::remove_all(p, ec);
		::sync();
	}

private:
	explicit WorkDir(std::string p) : path_(std::move(p)) {}
	std::string path_;
};

// --- 1. metadata of many processes -----------------------------------------------------------------------------------

struct MetaCounts {
	size_t tasks = 0, files = 0, vmas = 0;
};

std::vector<std::string> split_lines(std::string_view s)
{
	std::vector<std::string> lines;
	while (!s.empty()) {
		size_t nl = s.find('\n');
		lines.emplace_back(s.substr(0, nl));
		s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
	}
	return lines;
}

Result<std::string> read_at(int dirfd, const char* name)
{
	UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", name);
	std::string out;
	char buf[16384];
	for (;;) {
		ssize_t n = ::read(fd.get(), buf, sizeof(buf));
		if (n < 0)
			return fail_sys(errno, "read {}", name);
		if (n == 0)
			return out;
		out.append(buf, size_t(n));
	}
}

struct ProcFd {
	std::string target;
	std::vector<std::string> info;
};

struct ProcSnapshot {
	std::vector<std::string> status, maps;
	std::vector<ProcFd> fds;
};

// The /proc way, done efficiently: one directory fd per process, *at() calls below it.
Result<ProcSnapshot> snapshot_proc(pid_t pid)
{
	std::string dir = fmt::format("/proc/{}", pid);
	UniqueFd pfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!pfd)
		return fail_sys(errno, "open {}", dir);
	ProcSnapshot snap;
	snap.status = split_lines(BCK_TRY(read_at(pfd.get(), "status")));
	snap.maps = split_lines(BCK_TRY(read_at(pfd.get(), "maps")));
	int fdfd = ::openat(pfd.get(), "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR* d = fdfd < 0 ? nullptr : ::fdopendir(fdfd);
	if (!d) {
		if (fdfd >= 0)
			::close(fdfd);
		return fail_sys(errno, "list {}/fd", dir);
	}
	std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
	while (dirent* e = ::readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		char link[4096];
		ssize_t n = ::readlinkat(::dirfd(d), e->d_name, link, sizeof(link));
		if (n < 0)
			return fail_sys(errno, "readlink {}/fd/{}", dir, e->d_name);
		std::string info = fmt::format("fdinfo/{}", e->d_name);
		snap.fds.push_back({std::string(link, size_t(n)), split_lines(BCK_TRY(read_at(pfd.get(), info.c_str())))});
	}
	return snap;
}

Result<MetaCounts> collect_proc(const std::vector<pid_t>& tgids)
{
	std::vector<ProcSnapshot> snaps;
	snaps.reserve(tgids.size());
	MetaCounts c;
	for (pid_t pid : tgids) {
		snaps.push_back(BCK_TRY(context(snapshot_proc(pid), "pid {}", pid)));
		c.tasks++;
		c.files += snaps.back().fds.size();
		c.vmas += snaps.back().maps.size();
	}
	return c;
}

template <typename F>
auto timed(Samples& s, const std::string& name, F&& f) -> decltype(f())
{
	auto t0 = Clock::now();
	auto r = f();
	s.add(name, us_since(t0));
	return r;
}

// Each step timed too (as prefix.set_targets, ...), to show which iterator the time goes to.
Result<MetaCounts> collect_iters(dump::Collector& col, const std::vector<pid_t>& tgids, Samples& s,
				 const std::string& prefix)
{
	BCK_CHECK(timed(s, prefix + ".set_targets", [&] { return col.set_targets(tgids); }));
	auto tasks = BCK_TRY(timed(s, prefix + ".tasks", [&] { return col.tasks(); }));
	auto files = BCK_TRY(timed(s, prefix + ".files", [&] { return col.files(); }));
	auto vmas = BCK_TRY(timed(s, prefix + ".vmas", [&] { return col.vmas(); }));
	return MetaCounts{tasks.size(), files.size(), vmas.size()};
}

Result<MetaCounts> collect_iters_with_load(const std::vector<pid_t>& tgids, Samples& s)
{
	auto col = BCK_TRY(timed(s, "iter_incl.open", [&] { return dump::Collector::open(); }));
	return collect_iters(*col, tgids, s, "iter_incl");
}

Status bench_metadata(const Config& cfg, Report& rep)
{
	progress(fmt::format("starting {} sleeping processes", cfg.processes));
	Target tree = BCK_TRY(start_target({BENCH_TARGET_TREE, std::to_string(cfg.processes)}, 120));
	std::vector<pid_t> tgids = tree.ready.at("pids").get<std::vector<pid_t>>();
	auto held = BCK_TRY(dump::Collector::open());  // for "excl. load": loaded once, outside the timing

	Samples s;
	MetaCounts proc, iter;
	for (int rep_i = -1; rep_i < cfg.meta_reps; rep_i++) {  // -1: warm-up
		progress(fmt::format("metadata round {}", rep_i < 0 ? "warm-up" : std::to_string(rep_i + 1)));
		BCK_CHECK(check_stop());
		s.recording = rep_i >= 0;
		proc = BCK_TRY(timed(s, "proc", [&] { return collect_proc(tgids); }));
		iter = BCK_TRY(timed(s, "iter_incl", [&] { return collect_iters_with_load(tgids, s); }));
		iter = BCK_TRY(timed(s, "iter_excl", [&] { return collect_iters(*held, tgids, s, "iter_excl"); }));
	}

	double p = s.med("proc"), incl = s.med("iter_incl"), excl = s.med("iter_excl");
	std::string n = std::to_string(cfg.processes);
	Goal five{false, 5, "x"};
	rep.info("meta.processes", double(tgids.size()), "processes");
	rep.info("meta.proc", p / 1e3, "ms");
	rep.ratio("meta.iter_incl_load", incl / 1e3, "ms", p / incl, "/proc vs iterators incl. load", five);
	rep.ratio("meta.iter_excl_load", excl / 1e3, "ms", p / excl, "/proc vs iterators excl. load", five);
	rep.info("meta.iter_open", s.med("iter_incl.open") / 1e3, "ms");
	for (const char* step : {"set_targets", "tasks", "files", "vmas"}) {
		double v = s.med(fmt::format("iter_excl.{}", step));
		rep.ratio(fmt::format("meta.iter_excl.{}", step), v / 1e3, "ms", v / excl,
			  fmt::format("{} vs iterators excl. load", step));
	}
	// What each side found, to show they did comparable work (task_vma does not list [vsyscall]).
	rep.info("meta.proc_tasks", double(proc.tasks), "processes");
	rep.info("meta.iter_tasks", double(iter.tasks), "tasks");
	rep.info("meta.proc_fds", double(proc.files), "fds");
	rep.info("meta.iter_files", double(iter.files), "files");
	rep.info("meta.proc_maps_lines", double(proc.vmas), "vmas");
	rep.info("meta.iter_vmas", double(iter.vmas), "vmas");
	return {};
}

// --- 2./3. a dump of 1 GiB -------------------------------------------------------------------------------------------

Result<double> write_file(const Buffer& buf, const std::string& path, bool do_fsync)
{
	constexpr size_t chunk = 8 << 20;
	auto t0 = Clock::now();
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!fd)
		return fail_sys(errno, "create {}", path);
	for (size_t off = 0; off < buf.size();) {
		ssize_t n = ::write(fd.get(), buf.data() + off, std::min(chunk, buf.size() - off));
		if (n < 0 && errno != EINTR)
			return fail_sys(errno, "write {}", path);
		off += size_t(std::max<ssize_t>(n, 0));
	}
	if (do_fsync && ::fsync(fd.get()) != 0)
		return fail_sys(errno, "fsync {}", path);
	fd.reset();
	return us_since(t0);
}

double time_memcpy(const Buffer& dst, const Buffer& src)
{
	auto t0 = Clock::now();
	std::memcpy(dst.data(), src.data(), std::min(dst.size(), src.size()));
	asm volatile("" ::"r"(dst.data()) : "memory");  // the copy must happen
	return us_since(t0);
}

struct DumpRun {
	double wall_us = 0;
	long maxrss_kib = 0;
	Json stats;             // the CLI's --stats --json: microseconds and counts
	double bpf_load_us = -1;  // from its -v log, when it prints one
};

// -v for the "BPF iterators loaded in X ms" line: the load happens before total_time starts.
Result<DumpRun> run_dump(pid_t pid, const std::string& dir, bool do_fsync)
{
	std::vector<std::string> argv{BENCH_BPFCKPT_BIN, "-v", "dump", "-t", std::to_string(pid), "-D", dir, "-R",
				      "--stats", "--json"};
	if (!do_fsync)
		argv.push_back("--no-fsync");
	CommandResult r = BCK_TRY(run_command(argv, 600));
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		return fail(ExitCode::failure, "bpfckpt dump -t {} failed (status {:#x}):\n{}", pid, r.status, r.output);
	// The JSON summary is the last line that looks like one; anything else is a warning on stderr.
	DumpRun run{r.wall_us, r.maxrss_kib, {}};
	for (const std::string& line : split_lines(r.output)) {
		if (size_t at = line.find("BPF iterators loaded in "); at != std::string::npos)
			run.bpf_load_us = std::strtod(line.c_str() + at + 24, nullptr) * 1e3;
		Json j = line.starts_with('{') ? Json::parse(line, nullptr, false) : Json();
		if (j.is_object())
			run.stats = std::move(j);
	}
	if (!run.stats.is_object())
		return fail(ExitCode::failure, "bpfckpt dump printed no JSON:\n{}", r.output);
	return run;
}

void add_dump_samples(Samples& s, const std::string& prefix, const DumpRun& d)
{
	s.add(prefix + ".wall", d.wall_us);
	for (const char* k : {"total_time", "frozen_time", "freezing_time", "memdump_time", "memwrite_time"})
		s.add(prefix + "." + k, d.stats.value(k, 0.0));
	s.add(prefix + ".maxrss", double(d.maxrss_kib));
	if (d.bpf_load_us >= 0)
		s.add(prefix + ".bpf_load", d.bpf_load_us);
}

double gbps(size_t bytes, double us) { return us > 0 ? double(bytes) / (us * 1e3) : 0; }

void report_dump(const Samples& s, size_t bytes, Report& rep)
{
	double plain = s.med("plain_write"), synced = s.med("write_fsync"), copy = s.med("memcpy");
	double nf = s.med("dump_nofsync.total_time"), fs = s.med("dump_fsync.total_time");
	Goal ratio15{true, 1.5, "x"};
	rep.info("dump.bytes", double(bytes >> 20), "MiB");
	rep.info("dump.memcpy", copy / 1e3, "ms");
	rep.info("dump.memcpy_rate", gbps(bytes, copy), "GB/s");
	rep.info("dump.plain_write", plain / 1e3, "ms");
	rep.info("dump.plain_write_rate", gbps(bytes, plain), "GB/s");
	rep.info("dump.write_fsync", synced / 1e3, "ms");
	rep.info("dump.write_fsync_rate", gbps(bytes, synced), "GB/s");

	rep.ratio("dump.nofsync.total_time", nf / 1e3, "ms", nf / plain, "dump --no-fsync vs plain write", ratio15);
	rep.ratio("dump.nofsync.wall", s.med("dump_nofsync.wall") / 1e3, "ms", s.med("dump_nofsync.wall") / plain,
		  "dump --no-fsync wall vs plain write");
	rep.ratio("dump.nofsync.vs_memcpy", nf / 1e3, "ms", nf / copy, "dump --no-fsync vs memcpy");
	rep.info("dump.nofsync.rate", gbps(bytes, nf), "GB/s");
	rep.info("dump.fsync.rate", gbps(bytes, fs), "GB/s");
	rep.ratio("dump.fsync.total_time", fs / 1e3, "ms", fs / synced, "dump vs write+fsync", ratio15);
	rep.ratio("dump.fsync.wall", s.med("dump_fsync.wall") / 1e3, "ms", s.med("dump_fsync.wall") / synced,
		  "dump wall vs write+fsync");
	for (const char* mode : {"nofsync", "fsync"}) {
		std::string p = fmt::format("dump_{}.", mode);
		double total = s.med(p + "total_time");
		for (const char* k : {"freezing_time", "frozen_time", "memdump_time", "memwrite_time"}) {
			double v = s.med(p + k);
			rep.ratio(fmt::format("dump.{}.{}", mode, k), v / 1e3, "ms", total > 0 ? v / total : 0,
				  fmt::format("{} vs total_time", k));
		}
	}
}

Status bench_big_dump(const Config& cfg, Report& rep)
{
	size_t bytes = cfg.mem_mib << 20;
	WorkDir work = BCK_TRY(WorkDir::create());
	progress(fmt::format("starting a target with {} MiB of random memory", cfg.mem_mib));
	Target target = BCK_TRY(start_target({BENCH_TARGET_MEM, std::to_string(cfg.mem_mib)}, 300));
	progress("filling our own buffers");
	Buffer src = BCK_TRY(Buffer::map(bytes));
	Buffer dst = BCK_TRY(Buffer::map(bytes));
	src.fill_random(0x2545f4914f6cdd1dull);
	std::memset(dst.data(), 1, dst.size());

	pid_t pid = target.child.pid();
	std::string file = work.path("plain.bin"), img = work.path("img"), scratch = work.path("prewarm.bin");
	// Memory freed seconds ago has gone back to the host, and taking it back costs like a first touch. Without this,
	// whichever alternative follows the slow fsync'd dump pays for it (plain write measured 1 GB/s instead of 6).
	auto prewarm = [&]() -> Status {
		BCK_TRY(write_file(src, scratch, false));
		WorkDir::discard(scratch);
		return {};
	};
	Samples s;
	for (int round = -1; round < cfg.dump_rounds; round++) {  // -1: warm-up
		progress(fmt::format("dump round {}", round < 0 ? "warm-up" : std::to_string(round + 1)));
		s.recording = round >= 0;
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm());
		s.add("plain_write", BCK_TRY(write_file(src, file, false)));
		WorkDir::discard(file);
		BCK_CHECK(prewarm());
		add_dump_samples(s, "dump_nofsync", BCK_TRY(run_dump(pid, img, false)));
		WorkDir::discard(img);
		BCK_CHECK(prewarm());
		s.add("write_fsync", BCK_TRY(write_file(src, file, true)));
		WorkDir::discard(file);
		BCK_CHECK(prewarm());
		add_dump_samples(s, "dump_fsync", BCK_TRY(run_dump(pid, img, true)));
		WorkDir::discard(img);
		s.add("memcpy", time_memcpy(dst, src));
	}
	report_dump(s, bytes, rep);

	// 3. Peak RSS. ru_maxrss also counts what fork copied of us before exec: show that floor, measured the same way.
	auto peak = [&](const char* k) {
		auto it = s.by_name.find(k);
		return it == s.by_name.end() ? 0.0 : *std::ranges::max_element(it->second);
	};
	double rss = std::max(peak("dump_nofsync.maxrss"), peak("dump_fsync.maxrss")) / 1024;
	CommandResult floor = BCK_TRY(run_command({"/bin/true"}, 10));
	rep.goal("rss.dump_peak", rss, "MiB", Goal{true, 64, " MiB"});
	rep.info("rss.spawn_floor", double(floor.maxrss_kib) / 1024, "MiB");
	return {};
}

// --- 4. the fixed cost -----------------------------------------------------------------------------------------------

Status bench_fixed_cost(const Config& cfg, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create());
	Target target = BCK_TRY(start_target({BENCH_TARGET_IDLE}, 30));
	std::string img = work.path("img");
	Samples s;
	progress(fmt::format("dumping an idle process {} times", cfg.fixed_reps + 1));
	for (int i = -1; i < cfg.fixed_reps; i++) {  // -1: warm-up
		BCK_CHECK(check_stop());
		s.recording = i >= 0;
		add_dump_samples(s, "tiny", BCK_TRY(run_dump(target.child.pid(), img, true)));
		WorkDir::discard(img);
		// Interleaved: what starting the binary alone costs (dynamic linking, static constructors).
		s.add("exec_only", BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "--version"}, 10)).wall_us);
	}
	double wall = s.med("tiny.wall"), total = s.med("tiny.total_time"), exec = s.med("exec_only");
	double load = s.med("tiny.bpf_load");
	rep.goal("fixed.wall", wall / 1e3, "ms", Goal{true, 50, " ms"});
	rep.ratio("fixed.total_time", total / 1e3, "ms", total / wall, "CLI total_time vs wall");
	rep.ratio("fixed.exec_only", exec / 1e3, "ms", exec / wall, "`bpfckpt --version` vs dump wall");
	if (s.by_name.contains("tiny.bpf_load"))
		rep.ratio("fixed.bpf_load", load / 1e3, "ms", load / wall, "BPF load (from -v, outside total_time) vs wall");
	rep.info("fixed.unaccounted", std::max(0.0, wall - total - exec - std::max(load, 0.0)) / 1e3, "ms");
	rep.info("fixed.frozen_time", s.med("tiny.frozen_time") / 1e3, "ms");
	rep.info("fixed.maxrss", s.med("tiny.maxrss") / 1024, "MiB");
	return {};
}

// --- main ------------------------------------------------------------------------------------------------------------

Status run_all(const Config& cfg, Report& rep)
{
	double load[3];
	if (::getloadavg(load, 3) > 0)  // other work on the machine skews every figure: say how much there was
		rep.info("env.loadavg_1min_start", load[0], "");
	BCK_CHECK(bench_metadata(cfg, rep));
	::malloc_trim(0);  // what phase 1 freed must not inflate the RSS floor of the dumps below
	BCK_CHECK(bench_big_dump(cfg, rep));
	BCK_CHECK(bench_fixed_cost(cfg, rep));
	if (::getloadavg(load, 3) > 0)
		rep.info("env.loadavg_1min_end", load[0], "");
	return {};
}

constexpr const char* usage = R"(usage: bench_dump [--quick] [--json]
Benchmarks `bpfckpt dump` (run as root). Prints `name: value unit (ratio ..., target ...: ok/MISSED)` lines.
  --quick   smaller sizes for a smoke run: 100 processes, 256 MiB
  --json    print a JSON object of all figures to stdout (the table then goes to stderr)
)";

}  // namespace

int main(int argc, char** argv)
{
	Config cfg;
	for (int i = 1; i < argc; i++) {
		std::string_view a = argv[i];
		if (a == "--quick") {
			cfg.quick = true;
			cfg.processes = 100;
			cfg.mem_mib = 256;
		} else if (a == "--json") {
			cfg.json = true;
		} else {
			fmt::print(a == "-h" || a == "--help" ? stdout : stderr, "{}", usage);
			return a == "-h" || a == "--help" ? 0 : 2;
		}
	}
	if (::geteuid() != 0) {
		fmt::print(stderr, "bench_dump: must run as root (BPF iterators, ptrace)\n");
		return 1;
	}
	// Orphans of the process tree we start are reparented to us, so that we can reap them.
	::prctl(PR_SET_CHILD_SUBREAPER, 1);
	install_signal_handlers();

	Report rep;
	Status st = run_all(cfg, rep);
	rep.print_table(cfg.json ? stderr : stdout);
	if (cfg.json)
		fmt::print("{}\n", rep.to_json(cfg).dump(2));
	if (!st) {
		fmt::print(stderr, "bench_dump: {}\n", st.error().describe());
		return 1;
	}
	return 0;
}
