#include "bench_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "common/huge_heap.h"

namespace bench {

using namespace bpfckpt;

// --- interruption ----------------------------------------------------------------------------------------------------

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

}  // namespace

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

std::string Samples::all(const std::string& name, double scale) const
{
	auto it = by_name.find(name);
	std::string out;
	for (double v : it == by_name.end() ? std::vector<double>{} : it->second)
		out += fmt::format("{}{:.0f}", out.empty() ? "" : " ", v * scale);
	return out;
}

double gbps(double bytes, double us) { return us > 0 ? bytes / (us * 1e3) : 0; }

// --- the report ------------------------------------------------------------------------------------------------------

std::string Goal::describe() const { return fmt::format("{} {:g}{}", at_most ? "<=" : ">=", limit, unit); }

void Report::print_table(FILE* out) const
{
	for (const Figure& f : figures_)
		fmt::print(out, "{}\n", line(f));
}

Json Report::to_json(Json config) const
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
	return Json{{"config", std::move(config)}, {"figures", std::move(figs)}};
}

// Whole numbers (counts, sizes) without decimals, the rest with two.
std::string Report::line(const Figure& f)
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

void progress(std::string_view what) { fmt::print(stderr, "# {}\n", what); }

void progress_round(std::string_view what, int round)
{
	progress(fmt::format("{} round {}", what, round < 0 ? "warm-up" : std::to_string(round + 1)));
}

// --- child processes -------------------------------------------------------------------------------------------------

void kill_and_reap(pid_t pgid)
{
	::kill(-pgid, SIGKILL);
	int st;
	while (::waitpid(pgid, &st, 0) < 0 && errno == EINTR) {
	}
	while (::waitpid(-pgid, &st, 0) > 0 || errno == EINTR) {
	}
}

Child& Child::operator=(Child&& o) noexcept
{
	if (this != &o) {
		stop();
		pid_ = std::exchange(o.pid_, -1);
		out_ = std::move(o.out_);
	}
	return *this;
}

void Child::stop()
{
	if (pid_ > 0)
		kill_and_reap(std::exchange(pid_, -1));
	out_.reset();
}

Result<Child> spawn(const std::vector<std::string>& argv, Stderr err_to, const std::string& out_file)
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
		int err = err_to == Stderr::null ? ::open("/dev/null", O_WRONLY) : wr.get();
		if (in < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(wr.get(), 1) < 0 ||
		    (err_to != Stderr::inherit && ::dup2(err, 2) < 0))
			::_exit(127);
		::close_range(3, ~0U, 0);  // nothing of ours leaks into the targets' fd tables
		::execv(args[0], args.data());
		::_exit(127);
	}
	::setpgid(pid, pid);  // from both sides: no window in which kill(-pid) misses it
	return Child(pid, std::move(rd));
}

Result<std::string> read_output(int fd, bool want_line, int timeout_s, std::string_view what, const Awaited& awaited)
{
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	std::string out;
	char buf[65536];
	for (;;) {
		BCK_CHECK(check_stop());
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
		if (left <= 0)
			return fail(ExitCode::failure, "{}: no {} after {} s{}", what, awaited.missing, timeout_s,
				    awaited.hint);
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

Result<Json> parse_ready(const std::string& line, std::string_view what)
{
	if (!line.starts_with("READY "))
		return fail(ExitCode::failure, "{}: expected READY, got '{}'", what, line);
	Json ready = Json::parse(line.substr(6), nullptr, false);
	if (ready.is_discarded())
		return fail(ExitCode::failure, "{}: bad READY line '{}'", what, line);
	return ready;
}

Result<Target> start_target(const std::vector<std::string>& argv, int timeout_s)
{
	Target t{BCK_TRY(spawn(argv, Stderr::inherit)), {}};
	std::string line = BCK_TRY(read_output(t.child.out_fd(), true, timeout_s, argv[0]));
	t.ready = BCK_TRY(parse_ready(line, argv[0]));
	return t;
}

namespace {

std::string read_whole(const std::string& path)
{
	std::string text;
	if (FILE* f = std::fopen(path.c_str(), "re")) {
		char buf[65536];
		size_t n;
		while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
			text.append(buf, n);
		std::fclose(f);
	}
	return text;
}

}  // namespace

// Polls: a file gives no wakeup when a line is written. Fails early when the target exits before its READY.
Result<Target> start_target(const std::vector<std::string>& argv, const std::string& out_file, int timeout_s)
{
	Target t{BCK_TRY(spawn(argv, Stderr::null, out_file)), {}};
	auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
	for (;;) {
		BCK_CHECK(check_stop());
		std::string text = read_whole(out_file);
		if (size_t nl = text.find('\n'); nl != std::string::npos) {
			t.ready = BCK_TRY(parse_ready(text.substr(0, nl), argv[0]));
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

bool CommandResult::succeeded() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

Result<CommandResult> run_command(const std::vector<std::string>& argv, int timeout_s, const Awaited& awaited)
{
	auto t0 = Clock::now();
	Child child = BCK_TRY(spawn(argv, Stderr::with_stdout));
	CommandResult res;
	res.output = BCK_TRY(read_output(child.out_fd(), false, timeout_s, argv[0], awaited));
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

Result<Buffer> Buffer::fresh(size_t bytes)
{
	void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return fail_sys(errno, "mmap {} MiB", bytes >> 20);
	return Buffer(static_cast<char*>(p), bytes);
}

Result<Buffer> Buffer::map(size_t bytes)
{
	Buffer b = BCK_TRY(fresh(bytes));
	if (::madvise(b.data(), bytes, MADV_DONTFORK) != 0)
		return fail_sys(errno, "madvise(MADV_DONTFORK)");
	::madvise(b.data(), bytes, MADV_POPULATE_WRITE);  // faults in bulk; best effort, fill_random() touches every page
	return b;
}

Buffer::~Buffer()
{
	if (p_)
		::munmap(p_, n_);
}

void Buffer::fill_random(uint64_t seed)
{
	auto* w = reinterpret_cast<uint64_t*>(p_);
	for (size_t i = 0; i < n_ / sizeof(uint64_t); i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		w[i] = seed;
	}
}

Result<Buffers> fill_buffers(size_t bytes)
{
	progress("filling our own buffers");
	Buffer src = BCK_TRY(Buffer::map(bytes));
	Buffer dst = BCK_TRY(Buffer::map(bytes));
	src.fill_random(0x2545f4914f6cdd1dull);
	std::memset(dst.data(), 1, dst.size());  // its first-touch faults must not be timed either
	return Buffers{std::move(src), std::move(dst)};
}

Result<WorkDir> WorkDir::create(std::string_view tag)
{
	std::string tmpl = fmt::format("/var/tmp/bpfckpt-{}-XXXXXX", tag);
	if (!::mkdtemp(tmpl.data()))
		return fail_sys(errno, "mkdtemp {}", tmpl);
	return WorkDir(tmpl);
}

WorkDir::~WorkDir()
{
	std::error_code ec;
	if (!path_.empty())
		std::filesystem::remove_all(path_, ec);
}

std::string WorkDir::path(std::string_view name) const { return fmt::format("{}/{}", path_, name); }

void WorkDir::discard(const std::string& p)
{
	std::error_code ec;
	std::filesystem::remove_all(p, ec);
	::sync();
}

Status write_file(const char* data, size_t bytes, const std::string& path, WriteMode mode)
{
	constexpr size_t chunk = 8 << 20;
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (mode == WriteMode::direct ? O_DIRECT : 0);
	UniqueFd fd(::open(path.c_str(), flags, 0600));
	if (!fd)
		return fail_sys(errno, "create {}", path);
	for (size_t off = 0; off < bytes;) {
		ssize_t n = ::write(fd.get(), data + off, std::min(chunk, bytes - off));
		if (n < 0 && errno != EINTR)
			return fail_sys(errno, "write {}", path);
		off += size_t(std::max<ssize_t>(n, 0));
	}
	if (mode != WriteMode::cached && ::fsync(fd.get()) != 0)
		return fail_sys(errno, "fsync {}", path);
	return {};
}

Status prewarm(const WorkDir& work, const Buffer& src, size_t bytes)
{
	std::string scratch = work.path("prewarm.bin");
	BCK_CHECK(write_file(src.data(), std::min(bytes, src.size()), scratch, WriteMode::cached));
	WorkDir::discard(scratch);
	return {};
}

// --- the host taking memory back ------------------------------------------------------------------------------------

std::optional<uint64_t> host_reporting_passes()
{
	std::string text = read_whole("/sys/module/page_reporting/parameters/passes");
	if (text.empty())
		return std::nullopt;
	return std::strtoull(text.c_str(), nullptr, 10);
}

void await_host_reporting_pass()
{
	std::optional<uint64_t> before = host_reporting_passes();
	if (!before)
		return;
	auto t0 = Clock::now();
	// Polled: the counter changes once a pass has ended, and a pass lasts ~10 ms, so 2 ms steps see it at once.
	while (!g_stop && host_reporting_passes() == before && Clock::now() - t0 < std::chrono::milliseconds(2500))
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

double time_memcpy(const Buffer& dst, const Buffer& src)
{
	auto t0 = Clock::now();
	std::memcpy(dst.data(), src.data(), std::min(dst.size(), src.size()));
	asm volatile("" ::"r"(dst.data()) : "memory");  // the copy must happen
	return us_since(t0);
}

// --- main ------------------------------------------------------------------------------------------------------------

namespace {

// Returns the exit code when main should return at once.
std::optional<int> parse_args(int argc, char** argv, const Benchmark& b, Options& opt)
{
	for (int i = 1; i < argc; i++) {
		std::string_view a = argv[i];
		if (a == "--quick") {
			opt.quick = true;
		} else if (a == "--json") {
			opt.json = true;
		} else {
			bool help = a == "-h" || a == "--help";
			fmt::print(help ? stdout : stderr,
				   "usage: {} [--quick] [--json]\n"
				   "Benchmarks `bpfckpt {}` (run as root). Prints `name: value unit (ratio ..., target ...: "
				   "ok/MISSED)` lines.\n"
				   "  --quick   smaller sizes for a smoke run: {}\n"
				   "  --json    print a JSON object of all figures to stdout (the table then goes to stderr)\n",
				   b.name, b.command, b.quick_sizes);
			return help ? 0 : 2;
		}
	}
	return std::nullopt;
}

// env.loadavg_1min_<when>: other work on the machine skews every figure, so say how much there was.
void report_loadavg(Report& rep, std::string_view when)
{
	double load[3];
	if (::getloadavg(load, 3) > 0)
		rep.info(fmt::format("env.loadavg_1min_{}", when), load[0], "");
}

}  // namespace

int detail::run_benchmark(int argc, char** argv, const Benchmark& b, const std::function<void(const Options&)>& configure,
			  const std::function<Status(Report&)>& run, const std::function<Json()>& config_json)
{
	Options opt;
	if (std::optional<int> exit = parse_args(argc, argv, b, opt))
		return *exit;
	configure(opt);
	// The heap bpfckpt's main gives itself, so that what a bench does in-process (both sides of a comparison)
	// runs as it does in the CLI.
	back_heap_with_huge_pages(size_t(256) << 20);
	if (::geteuid() != 0) {
		fmt::print(stderr, "{}: must run as root ({})\n", b.name, b.why_root);
		return 1;
	}
	// Orphans of the trees we start, and restored processes once their restorer has exited, are reparented to us,
	// so that we can reap them and free their PIDs.
	::prctl(PR_SET_CHILD_SUBREAPER, 1);
	install_signal_handlers();

	Report rep;
	report_loadavg(rep, "start");
	Status st = run(rep);
	if (st)
		report_loadavg(rep, "end");
	rep.print_table(opt.json ? stderr : stdout);
	if (opt.json)
		fmt::print("{}\n", rep.to_json(config_json()).dump(2));
	if (!st) {
		fmt::print(stderr, "{}: {}\n", b.name, st.error().describe());
		return 1;
	}
	return 0;
}

}  // namespace bench
