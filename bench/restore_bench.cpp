// bench_restore: how `bpfckpt restore` compares with the obvious alternatives, measured in one run.
//   1. restore of a 64 MiB and a 1 GiB process (wall of `bpfckpt restore -d`, its restore_time and forking_time, and
//      what the wall spends outside restore_time: exec and loading the image, which checksums every blob)
//   2. page-restore throughput for 1 GiB against memcpy (the physical limit), against faulting the same bytes in
//      page by page (first-touch faults), and against MADV_POPULATE_WRITE + one large pread from the page blob (what
//      the engine's shim does)
//   3. restore of a tree of 100 processes against that of a single tiny process
// Each image is dumped once into /var/tmp and restored from repeatedly; after every restore the restored processes
// are killed and their PIDs waited for until free, so that the next restore can take them again.
// A benchmark, not a test: it prints figures and ratios; targets that are missed are reported, not failed.
// On the PVM guests first-touch faults are slow and idle memory goes back to the host (KERNEL.md, costs), so each
// comparison has a warm-up and runs its alternatives interleaved, reporting medians.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"
#include "image/validate.h"

namespace {

using namespace bpfckpt;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;  // figures in the order they were measured

constexpr size_t kPage = 4096;

struct Config {
	bool quick = false;
	bool json = false;
	size_t small_mib = 64;
	size_t big_mib = 1024;
	int tree_processes = 100;
	int rounds = 3;
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

double gbps(double bytes, double us) { return us > 0 ? bytes / (us * 1e3) : 0; }

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
			      {"small_mib", cfg.small_mib},
			      {"big_mib", cfg.big_mib},
			      {"tree_processes", cfg.tree_processes},
			      {"rounds", cfg.rounds}}},
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

// --- PIDs ------------------------------------------------------------------------------------------------------------

bool pid_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Reaps whatever of ours has exited (we are a child subreaper, so that includes restored processes whose restorer
// has gone) until none of pids exists any more, zombies included: only then can a restore take them again.
Status wait_pids_free(const std::vector<pid_t>& pids, int timeout_s)
{
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	for (;;) {
		int st;
		while (::waitpid(-1, &st, WNOHANG | __WALL) > 0) {
		}
		auto busy = std::ranges::find_if(pids, pid_exists);
		if (busy == pids.end())
			return {};
		if (Clock::now() > deadline)
			return fail(ExitCode::failure, "pid {} still in use {} s after it was killed", *busy, timeout_s);
		BCK_CHECK(check_stop());
		std::this_thread::sleep_for(std::chrono::microseconds(500));
	}
}

// Restored processes: not spawned by us, so addressed through pidfds (a PID could be reused, a pidfd cannot). Killed
// on every path; the caller waits for their PIDs to be free with wait_pids_free.
class Restored {
public:
	static Result<Restored> attach(const std::vector<pid_t>& pids)
	{
		Restored r;
		for (pid_t pid : pids) {
			int fd = int(::syscall(SYS_pidfd_open, pid, 0));
			if (fd < 0)
				return fail_sys(errno, "restored pid {}: pidfd_open", pid);
			r.fds_.emplace_back(fd);
			pollfd pfd{fd, POLLIN, 0};
			if (::poll(&pfd, 1, 0) > 0)
				return fail(ExitCode::failure, "restored pid {} has already exited", pid);
		}
		return r;
	}
	Restored() = default;
	Restored(Restored&&) noexcept = default;
	Restored& operator=(Restored&&) = delete;
	~Restored() { kill(); }

	// SIGKILL to each, then waits until each has exited (its pidfd becomes readable).
	void kill()
	{
		for (const UniqueFd& fd : fds_)
			::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
		for (const UniqueFd& fd : fds_) {
			pollfd pfd{fd.get(), POLLIN, 0};
			while (::poll(&pfd, 1, 10000) < 0 && errno == EINTR) {
			}
		}
		fds_.clear();
	}

private:
	std::vector<UniqueFd> fds_;
};

// --- child processes -------------------------------------------------------------------------------------------------

// A spawned process, leader of its own process group: killed with the group and reaped on every path.
class Child {
public:
	Child() = default;
	Child(pid_t pid, UniqueFd out) : pid_(pid), out_(std::move(out)) {}
	Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)) {}
	Child& operator=(Child&&) = delete;
	~Child() { stop(); }

	pid_t pid() const { return pid_; }
	int out_fd() const { return out_.get(); }
	// It has exited, or someone else kills it now; the caller reaps it.
	void forget() { pid_ = -1; }
	void stop()
	{
		if (pid_ > 0) {
			pid_t pgid = std::exchange(pid_, -1);
			::kill(-pgid, SIGKILL);
			int st;
			while (::waitpid(pgid, &st, 0) < 0 && errno == EINTR) {
			}
			while (::waitpid(-pgid, &st, 0) > 0 || errno == EINTR) {
			}
		}
		out_.reset();
	}

private:
	pid_t pid_ = -1;
	UniqueFd out_;
};

// fork + exec, stdin from /dev/null. stdout goes to out_file if given (targets: a file that still exists when they
// are restored, not a pipe whose other end is ours), else with stderr into a pipe (commands). A target's stderr goes
// to /dev/null. The child leads its own process group and dies with us (PDEATHSIG) if we die without cleaning up.
Result<Child> spawn(const std::vector<std::string>& argv, const std::string& out_file = {})
{
	int p[2] = {-1, -1};
	if (out_file.empty() && ::pipe2(p, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe");
	UniqueFd rd(p[0]), wr(p[1]);
	if (!out_file.empty()) {
		wr = UniqueFd(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
		if (!wr)
			return fail_sys(errno, "create {}", out_file);
	}
	std::vector<char*> args;
	for (const std::string& a : argv)
		args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	bool target = !out_file.empty();
	pid_t parent = ::getpid();
	pid_t pid = ::fork();
	if (pid < 0)
		return fail_sys(errno, "fork for {}", argv[0]);
	if (pid == 0) {  // async-signal-safe calls only until exec
		::setpgid(0, 0);
		::prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (::getppid() != parent)
			::_exit(127);
		int in = ::open("/dev/null", O_RDONLY);
		int err = target ? ::open("/dev/null", O_WRONLY) : wr.get();
		if (in < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(wr.get(), 1) < 0 || ::dup2(err, 2) < 0)
			::_exit(127);
		::close_range(3, ~0U, 0);  // nothing of ours leaks into the targets' fd tables
		::execv(args[0], args.data());
		::_exit(127);
	}
	::setpgid(pid, pid);  // from both sides: no window in which kill(-pid) misses it
	return Child(pid, std::move(rd));
}

// Reads until EOF, within timeout_s.
Result<std::string> read_output(int fd, int timeout_s, std::string_view what)
{
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	std::string out;
	char buf[65536];
	for (;;) {
		BCK_CHECK(check_stop());
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
		if (left <= 0)
			return fail(ExitCode::failure, "{}: no EOF after {} s (did a restored process keep its stdout?)",
				    what, timeout_s);
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
	}
}

// A target started, its stdout in a file, past its `READY {json}` line.
struct Target {
	Child child;
	Json ready;
};

Result<Target> start_target(const std::vector<std::string>& argv, const std::string& out_file, int timeout_s)
{
	Target t{BCK_TRY(spawn(argv, out_file)), {}};
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	for (;;) {
		BCK_CHECK(check_stop());
		std::string text;
		if (FILE* f = std::fopen(out_file.c_str(), "re")) {
			char buf[65536];
			size_t n;
			while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
				text.append(buf, n);
			std::fclose(f);
		}
		if (size_t nl = text.find('\n'); nl != std::string::npos) {
			std::string line = text.substr(0, nl);
			if (!line.starts_with("READY "))
				return fail(ExitCode::failure, "{}: expected READY, got '{}'", argv[0], line);
			t.ready = Json::parse(line.substr(6), nullptr, false);
			if (t.ready.is_discarded())
				return fail(ExitCode::failure, "{}: bad READY line '{}'", argv[0], line);
			return t;
		}
		int st;
		if (::waitpid(t.child.pid(), &st, WNOHANG) == t.child.pid()) {
			t.child.forget();
			return fail(ExitCode::failure, "{} exited (status {:#x}) before READY", argv[0], st);
		}
		if (Clock::now() > deadline)
			return fail(ExitCode::failure, "{}: no READY after {} s", argv[0], timeout_s);
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
}

struct CommandResult {
	int status = 0;
	double wall_us = 0;
	std::string output;  // stdout and stderr
};

// Runs a command to completion: wall time from before fork to after wait4.
Result<CommandResult> run_command(const std::vector<std::string>& argv, int timeout_s)
{
	auto t0 = Clock::now();
	Child child = BCK_TRY(spawn(argv));
	CommandResult res;
	res.output = BCK_TRY(read_output(child.out_fd(), timeout_s, argv[0]));
	for (;;) {
		pid_t r = ::waitpid(child.pid(), &res.status, 0);
		if (r == child.pid())
			break;
		if (r < 0 && errno != EINTR)
			return fail_sys(errno, "wait for {}", argv[0]);
		BCK_CHECK(check_stop());
	}
	res.wall_us = us_since(t0);
	child.forget();
	return res;
}

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

// The last line of a command's output that parses as a JSON object; anything else is a warning on stderr.
Result<Json> last_json(const CommandResult& r, std::string_view what)
{
	Json out;
	for (const std::string& line : split_lines(r.output)) {
		Json j = line.starts_with('{') ? Json::parse(line, nullptr, false) : Json();
		if (j.is_object())
			out = std::move(j);
	}
	if (!out.is_object())
		return fail(ExitCode::failure, "{} printed no JSON:\n{}", what, r.output);
	return out;
}

// --- big buffers and scratch space -----------------------------------------------------------------------------------

// An anonymous mapping for our own GiB-sized buffers, populated in bulk. MADV_DONTFORK keeps it out of every child we
// fork: fork would copy its page tables for nothing.
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
		::madvise(p, bytes, MADV_POPULATE_WRITE);  // best effort, fill_random() touches every page
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

// A scratch directory under /var/tmp (the images go there), removed with everything in it.
class WorkDir {
public:
	static Result<WorkDir> create()
	{
		char tmpl[] = "/var/tmp/bpfckpt-rbench-XXXXXX";
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

	// Removes a file and writes back what is left dirty, so that the next measurement starts from a quiet disk.
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

Status write_file(const char* data, size_t bytes, const std::string& path)
{
	constexpr size_t chunk = 8 << 20;
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!fd)
		return fail_sys(errno, "create {}", path);
	for (size_t off = 0; off < bytes;) {
		ssize_t n = ::write(fd.get(), data + off, std::min(chunk, bytes - off));
		if (n < 0 && errno != EINTR)
			return fail_sys(errno, "write {}", path);
		off += size_t(std::max<ssize_t>(n, 0));
	}
	return {};
}

// Memory freed seconds ago has gone back to the host, and taking it back costs like a first touch: writing and
// deleting a scratch file of the size about to be allocated takes it back first, outside the timing.
Status prewarm(const WorkDir& work, const Buffer& src, size_t bytes)
{
	std::string scratch = work.path("prewarm.bin");
	BCK_CHECK(write_file(src.data(), std::min(bytes, src.size()), scratch));
	WorkDir::discard(scratch);
	return {};
}

// --- dump and restore ------------------------------------------------------------------------------------------------

// A dumped image: where it is, the PIDs its restore takes, and what the dump cost (once, for reference).
struct Image {
	std::string dir;
	std::vector<pid_t> pids;
	double dump_wall_us = 0;
	std::string pages_blob;  // of the process with the most pages
	uint64_t pages = 0;      // in all processes
};

// Starts a target, dumps it (which kills it), reaps it and everything it forked, and waits until its PIDs are free.
Result<Image> make_image(const WorkDir& work, const std::string& name, const std::vector<std::string>& argv,
			 int timeout_s)
{
	Image img;
	img.dir = work.path(name);
	Target target = BCK_TRY(start_target(argv, work.path(name + ".out"), timeout_s));
	if (target.ready.contains("pids"))
		img.pids = target.ready.at("pids").get<std::vector<pid_t>>();
	else
		img.pids = {target.child.pid()};
	progress(fmt::format("dumping {} ({} process(es)) into {}", name, img.pids.size(), img.dir));
	CommandResult r = BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "dump", "-t", std::to_string(target.child.pid()), "-D",
					       img.dir, "--stats", "--json"},
					      600));
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		return fail(ExitCode::failure, "bpfckpt dump of {} failed (status {:#x}):\n{}", name, r.status, r.output);
	img.dump_wall_us = r.wall_us;
	// The dump killed the tree: reap the root (our child) and the rest (orphaned to us), until every PID is free.
	target.child.stop();
	BCK_CHECK(wait_pids_free(img.pids, 30));

	image::Image loaded = BCK_TRY(image::load_image(img.dir));
	uint64_t most = 0;
	for (const auto& p : loaded.processes) {
		uint64_t n = 0;
		for (const auto& v : p.vmas)
			for (const auto& run : v.pages)
				n += run.npages;
		img.pages += n;
		if (n > most) {
			most = n;
			img.pages_blob = img.dir + "/" + p.pages_blob;
		}
	}
	return img;
}

struct RestoreRun {
	double wall_us = 0;
	Json stats;  // forking_time, restore_time (microseconds), pages_restored, processes
};

// One `bpfckpt restore -d`, then the restored processes killed and their PIDs waited for until free.
Result<RestoreRun> restore_once(const Image& img)
{
	CommandResult r =
		BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "restore", "-D", img.dir, "-d", "--stats", "--json"}, 600));
	// Whatever happened, nothing restored may outlive this call.
	auto restored = Restored::attach(img.pids);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
		if (restored)
			restored->kill();
		BCK_CHECK(wait_pids_free(img.pids, 30));
		return fail(ExitCode::failure, "bpfckpt restore -D {} failed (status {:#x}):\n{}", img.dir, r.status,
			    r.output);
	}
	if (!restored) {
		// Some did not come back: kill those that did.
		for (pid_t pid : img.pids)
			if (auto one = Restored::attach({pid}))
				one->kill();
		BCK_CHECK(wait_pids_free(img.pids, 30));
		return std::unexpected(restored.error());
	}
	restored->kill();
	BCK_CHECK(wait_pids_free(img.pids, 30));
	RestoreRun run{r.wall_us, BCK_TRY(last_json(r, "bpfckpt restore"))};
	if (run.stats.value("processes", 0) != int(img.pids.size()))
		return fail(ExitCode::failure, "restore of {} reports {} processes, expected {}", img.dir,
			    run.stats.value("processes", 0), img.pids.size());
	return run;
}

void add_restore_samples(Samples& s, const std::string& prefix, const RestoreRun& r)
{
	s.add(prefix + ".wall", r.wall_us);
	s.add(prefix + ".forking_time", r.stats.value("forking_time", 0.0));
	s.add(prefix + ".restore_time", r.stats.value("restore_time", 0.0));
	s.add(prefix + ".pages_restored", r.stats.value("pages_restored", 0.0));
}

// Loading the image in-process, as restore does before its restore_time starts: parse, validate, checksum every blob.
Result<double> time_load_image(const Image& img)
{
	auto t0 = Clock::now();
	BCK_TRY(image::load_image(img.dir));
	return us_since(t0);
}

// --- 2. the alternatives for filling memory ---------------------------------------------------------------------------

double time_memcpy(const Buffer& dst, const Buffer& src)
{
	auto t0 = Clock::now();
	std::memcpy(dst.data(), src.data(), std::min(dst.size(), src.size()));
	asm volatile("" ::"r"(dst.data()) : "memory");  // the copy must happen
	return us_since(t0);
}

class Mapping {
public:
	static Result<Mapping> fresh(size_t bytes)
	{
		void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return fail_sys(errno, "mmap {} MiB", bytes >> 20);
		return Mapping(static_cast<char*>(p), bytes);
	}
	Mapping(Mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
	~Mapping()
	{
		if (p_)
			::munmap(p_, n_);
	}
	char* data() const { return p_; }

private:
	Mapping(char* p, size_t n) : p_(p), n_(n) {}
	char* p_;
	size_t n_;
};

// Fresh anonymous memory filled page by page: one first-touch fault per 4 KiB page (THP is madvise-only here).
Result<double> time_fault_copy(const Buffer& src, size_t bytes)
{
	auto t0 = Clock::now();
	Mapping m = BCK_TRY(Mapping::fresh(bytes));
	for (size_t off = 0; off < bytes; off += kPage)
		std::memcpy(m.data() + off, src.data() + off, kPage);
	asm volatile("" ::"r"(m.data()) : "memory");
	return us_since(t0);  // without the munmap
}

struct PopulateRead {
	double populate_us = 0, pread_us = 0;
};

// What the shim does: fresh anonymous memory, MADV_POPULATE_WRITE over all of it, one large pread from the page blob.
Result<PopulateRead> time_populate_pread(const std::string& blob, size_t bytes)
{
	UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", blob);
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0 || size_t(st.st_size) < bytes)
		return fail(ExitCode::failure, "{}: {} bytes, fewer than the {} to read", blob, st.st_size, bytes);
	PopulateRead r;
	auto t0 = Clock::now();
	Mapping m = BCK_TRY(Mapping::fresh(bytes));
	if (::madvise(m.data(), bytes, MADV_POPULATE_WRITE) != 0)
		return fail_sys(errno, "madvise(MADV_POPULATE_WRITE)");
	r.populate_us = us_since(t0);
	auto t1 = Clock::now();
	for (size_t done = 0; done < bytes;) {
		ssize_t n = ::pread(fd.get(), m.data() + done, bytes - done, off_t(done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail_sys(n < 0 ? errno : EIO, "pread {}", blob);
		done += size_t(n);
	}
	r.pread_us = us_since(t1);
	return r;
}

// --- 1./2. restore of a small and a big process ----------------------------------------------------------------------

void report_memory(const Config& cfg, const Samples& s, Report& rep)
{
	auto tag = [](size_t mib) { return mib % 1024 == 0 ? fmt::format("{}g", mib / 1024) : fmt::format("{}m", mib); };
	for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
		std::string p = "restore_" + tag(mib);
		double wall = s.med(p + ".wall"), rt = s.med(p + ".restore_time"), fork = s.med(p + ".forking_time");
		double load = s.med(p + ".load_image");
		rep.info(p + ".size", double(mib), "MiB");
		rep.info(p + ".wall", wall / 1e3, "ms");
		rep.ratio(p + ".restore_time", rt / 1e3, "ms", wall > 0 ? rt / wall : 0, "restore_time vs wall");
		rep.ratio(p + ".forking_time", fork / 1e3, "ms", rt > 0 ? fork / rt : 0, "forking_time vs restore_time");
		rep.ratio(p + ".outside_restore_time", (wall - rt) / 1e3, "ms", wall > 0 ? (wall - rt) / wall : 0,
			  "wall - restore_time vs wall");
		rep.ratio(p + ".load_image", load / 1e3, "ms", wall > rt ? load / (wall - rt) : 0,
			  "in-process load_image (checksums) vs wall - restore_time");
		rep.info(p + ".pages_restored", s.med(p + ".pages_restored"), "pages");
	}
	double exec = s.med("exec_only");
	rep.info("restore.exec_only", exec / 1e3, "ms");
	std::string sm = "restore_" + tag(cfg.small_mib), bg = "restore_" + tag(cfg.big_mib);
	double scale = double(cfg.big_mib) / double(cfg.small_mib);
	rep.ratio("restore.scaling", s.med(bg + ".restore_time") / 1e3, "ms",
		  s.med(bg + ".restore_time") / std::max(1.0, s.med(sm + ".restore_time")),
		  fmt::format("{} vs {} restore_time (sizes {:g}x apart)", bg, sm, scale));

	// 2. throughput of the big one.
	double bytes = double(cfg.big_mib << 20);
	double restored = s.med(bg + ".pages_restored") * kPage;
	double rt = s.med(bg + ".restore_time");
	double copy = s.med("memcpy"), fault = s.med("fault_copy");
	double pop = s.med("populate"), pread = s.med("pread"), pp = s.med("populate_pread");
	double rate = gbps(restored, rt);
	rep.info("pages.bytes", bytes / double(1 << 20), "MiB");
	rep.info("pages.memcpy", copy / 1e3, "ms");
	rep.info("pages.memcpy_rate", gbps(bytes, copy), "GB/s");
	rep.info("pages.fault_copy", fault / 1e3, "ms");
	rep.info("pages.fault_copy_rate", gbps(bytes, fault), "GB/s");
	rep.info("pages.fault_copy_per_page", fault / (bytes / kPage), "us");
	rep.info("pages.populate_pread", pp / 1e3, "ms");
	rep.info("pages.populate_pread_rate", gbps(bytes, pp), "GB/s");
	rep.ratio("pages.populate", pop / 1e3, "ms", pp > 0 ? pop / pp : 0, "populate vs populate+pread");
	rep.info("pages.populate_per_page", pop / (bytes / kPage), "us");
	rep.ratio("pages.pread", pread / 1e3, "ms", pp > 0 ? pread / pp : 0, "pread vs populate+pread");
	rep.info("pages.pread_rate", gbps(bytes, pread), "GB/s");
	rep.info("pages.restore_rate", rate, "GB/s");
	rep.ratio("pages.restore_vs_fault", rate, "GB/s", fault > 0 ? rate / gbps(bytes, fault) : 0,
		  "restore vs page-by-page faulting", Goal{false, 4, "x"});
	rep.ratio("pages.restore_vs_populate_pread", rate, "GB/s", pp > 0 ? rate / gbps(bytes, pp) : 0,
		  "restore vs populate+pread");
	rep.ratio("pages.restore_vs_memcpy", rate, "GB/s", copy > 0 ? rate / gbps(bytes, copy) : 0,
		  "restore vs memcpy");
	// What restore_time spends besides filling the pages, were it as fast as populate+pread alone.
	rep.ratio("pages.restore_overhead", std::max(0.0, rt - pp) / 1e3, "ms", rt > 0 ? std::max(0.0, rt - pp) / rt : 0,
		  "restore_time - populate+pread vs restore_time");
}

Status bench_memory(const Config& cfg, Report& rep)
{
	auto tag = [](size_t mib) { return mib % 1024 == 0 ? fmt::format("{}g", mib / 1024) : fmt::format("{}m", mib); };
	size_t bytes = cfg.big_mib << 20;
	WorkDir work = BCK_TRY(WorkDir::create());
	progress("filling our own buffers");
	Buffer src = BCK_TRY(Buffer::map(bytes));
	Buffer dst = BCK_TRY(Buffer::map(bytes));
	src.fill_random(0x2545f4914f6cdd1dull);
	std::memset(dst.data(), 1, dst.size());

	std::map<size_t, Image> images;
	for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
		BCK_CHECK(check_stop());
		progress(fmt::format("starting a target with {} MiB of random memory", mib));
		images[mib] = BCK_TRY(make_image(work, "mem_" + tag(mib), {BENCH_TARGET_MEM, std::to_string(mib)}, 300));
		rep.info(fmt::format("dump_{}.wall", tag(mib)), images[mib].dump_wall_us / 1e3, "ms");
	}
	const Image& big = images[cfg.big_mib];

	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress(fmt::format("memory round {}", round < 0 ? "warm-up" : std::to_string(round + 1)));
		s.recording = round >= 0;
		for (size_t mib : {cfg.small_mib, cfg.big_mib}) {
			BCK_CHECK(check_stop());
			std::string p = "restore_" + tag(mib);
			BCK_CHECK(prewarm(work, src, mib << 20));
			add_restore_samples(s, p, BCK_TRY(restore_once(images[mib])));
			s.add(p + ".load_image", BCK_TRY(time_load_image(images[mib])));
		}
		BCK_CHECK(check_stop());
		s.add("exec_only", BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "--version"}, 10)).wall_us);
		s.add("memcpy", time_memcpy(dst, src));
		BCK_CHECK(prewarm(work, src, bytes));
		s.add("fault_copy", BCK_TRY(time_fault_copy(src, bytes)));
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, bytes));
		PopulateRead pr = BCK_TRY(time_populate_pread(big.pages_blob, bytes));
		s.add("populate", pr.populate_us);
		s.add("pread", pr.pread_us);
		s.add("populate_pread", pr.populate_us + pr.pread_us);
	}
	report_memory(cfg, s, rep);
	return {};
}

// --- 3. a tree of processes ------------------------------------------------------------------------------------------

Status bench_tree(const Config& cfg, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create());
	progress(fmt::format("starting a tree of {} processes", cfg.tree_processes));
	Image tree = BCK_TRY(make_image(work, "tree", {BENCH_TARGET_TREE, std::to_string(cfg.tree_processes)}, 120));
	Image one = BCK_TRY(make_image(work, "idle", {BENCH_TARGET_IDLE}, 30));
	Buffer src = BCK_TRY(Buffer::map(128 << 20));  // for the prewarm: a few MiB per restored process at most
	src.fill_random(0x9e3779b97f4a7c15ull);

	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress(fmt::format("tree round {}", round < 0 ? "warm-up" : std::to_string(round + 1)));
		s.recording = round >= 0;
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, src.size()));
		add_restore_samples(s, "tree", BCK_TRY(restore_once(tree)));
		BCK_CHECK(check_stop());
		BCK_CHECK(prewarm(work, src, src.size()));
		add_restore_samples(s, "single", BCK_TRY(restore_once(one)));
		s.add("single.load_image", BCK_TRY(time_load_image(one)));
	}
	double n = double(tree.pids.size());
	double wall = s.med("tree.wall"), rt = s.med("tree.restore_time"), fork = s.med("tree.forking_time");
	double wall1 = s.med("single.wall"), rt1 = s.med("single.restore_time"), fork1 = s.med("single.forking_time");
	rep.info("tree.processes", n, "processes");
	rep.info("tree.dump_wall", tree.dump_wall_us / 1e3, "ms");
	rep.ratio("tree.wall", wall / 1e3, "ms", wall1 > 0 ? wall / wall1 : 0, "tree vs single-process wall");
	rep.ratio("tree.restore_time", rt / 1e3, "ms", wall > 0 ? rt / wall : 0, "restore_time vs wall");
	rep.ratio("tree.forking_time", fork / 1e3, "ms", rt > 0 ? fork / rt : 0, "forking_time vs restore_time");
	rep.ratio("tree.forking_per_process", fork / n / 1e3, "ms", fork1 > 0 ? fork / n / fork1 : 0,
		  "per process in the tree vs single-process forking_time");
	rep.ratio("tree.restore_per_process", rt / n / 1e3, "ms", rt1 > 0 ? rt / n / rt1 : 0,
		  "per process in the tree vs single-process restore_time");
	rep.info("tree.pages_restored", s.med("tree.pages_restored"), "pages");
	rep.info("single.wall", wall1 / 1e3, "ms");
	rep.ratio("single.restore_time", rt1 / 1e3, "ms", wall1 > 0 ? rt1 / wall1 : 0, "restore_time vs wall");
	rep.ratio("single.forking_time", fork1 / 1e3, "ms", rt1 > 0 ? fork1 / rt1 : 0, "forking_time vs restore_time");
	rep.info("single.pages_restored", s.med("single.pages_restored"), "pages");
	double load1 = s.med("single.load_image");
	rep.ratio("single.load_image", load1 / 1e3, "ms", wall1 > rt1 ? load1 / (wall1 - rt1) : 0,
		  "in-process load_image vs wall - restore_time");
	return {};
}

// --- main ------------------------------------------------------------------------------------------------------------

Status run_all(const Config& cfg, Report& rep)
{
	double load[3];
	if (::getloadavg(load, 3) > 0)  // other work on the machine skews every figure: say how much there was
		rep.info("env.loadavg_1min_start", load[0], "");
	BCK_CHECK(bench_memory(cfg, rep));
	BCK_CHECK(bench_tree(cfg, rep));
	if (::getloadavg(load, 3) > 0)
		rep.info("env.loadavg_1min_end", load[0], "");
	return {};
}

constexpr const char* usage = R"(usage: bench_restore [--quick] [--json]
Benchmarks `bpfckpt restore` (run as root). Prints `name: value unit (ratio ..., target ...: ok/MISSED)` lines.
  --quick   smaller sizes for a smoke run: 16 MiB and 256 MiB, a tree of 20
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
			cfg.small_mib = 16;
			cfg.big_mib = 256;
			cfg.tree_processes = 20;
		} else if (a == "--json") {
			cfg.json = true;
		} else {
			fmt::print(a == "-h" || a == "--help" ? stdout : stderr, "{}", usage);
			return a == "-h" || a == "--help" ? 0 : 2;
		}
	}
	if (::geteuid() != 0) {
		fmt::print(stderr, "bench_restore: must run as root (BPF iterators, ptrace, clone3 set_tid)\n");
		return 1;
	}
	// Orphans of the trees we start, and restored processes once their restorer has exited, are reparented to us,
	// so that we can reap them and free their PIDs.
	::prctl(PR_SET_CHILD_SUBREAPER, 1);
	install_signal_handlers();

	Report rep;
	Status st = run_all(cfg, rep);
	rep.print_table(cfg.json ? stderr : stdout);
	if (cfg.json)
		fmt::print("{}\n", rep.to_json(cfg).dump(2));
	if (!st) {
		fmt::print(stderr, "bench_restore: {}\n", st.error().describe());
		return 1;
	}
	return 0;
}
