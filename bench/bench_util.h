// What bench_dump and bench_restore share: interruption, timing and samples, the report they print, child processes
// (targets and commands), big buffers and scratch space, and the frame of their main(). One copy, so that both
// benchmarks measure, clean up and print the same way.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"

namespace bench {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;  // figures in the order they were measured

// --- interruption ----------------------------------------------------------------------------------------------------

// SIGINT, SIGTERM and SIGHUP set a flag instead of killing us, so that the cleanup (killing targets, removing scratch
// directories) still runs.
void install_signal_handlers();

// Fails with "interrupted" once a signal has come: called in every loop that can last.
bpfckpt::Status check_stop();

// --- timing ----------------------------------------------------------------------------------------------------------

double us_since(Clock::time_point t0);

double median(std::vector<double> v);

// GB/s (10^9 bytes per second) from bytes moved in us microseconds; 0 when nothing was timed.
double gbps(double bytes, double us);

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
	// The fastest sample: what it costs when nothing else (here: the host) got in the way.
	double best(const std::string& name) const
	{
		auto it = by_name.find(name);
		return it == by_name.end() || it->second.empty() ? 0 : *std::min_element(it->second.begin(), it->second.end());
	}
	// Every sample, in the order taken, for a figure whose spread matters.
	std::string all(const std::string& name, double scale) const;
	// Appends the other's samples, name by name, after ours.
	void merge(const Samples& other)
	{
		for (const auto& [name, values] : other.by_name)
			by_name[name].insert(by_name[name].end(), values.begin(), values.end());
	}
};

// --- the report ------------------------------------------------------------------------------------------------------

struct Goal {
	bool at_most = true;  // value <= limit, else value >= limit
	double limit = 0;
	std::string unit;

	bool met(double v) const { return at_most ? v <= limit : v >= limit; }
	std::string describe() const;
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

	// One `name: value unit (ratio ..., target ...: ok/MISSED)` line per figure.
	void print_table(FILE* out) const;
	// {"config": config, "figures": {name: {value, unit, ratio, ratio_of, target, ok}}}: each benchmark says what
	// its config was, the figures are alike.
	Json to_json(Json config) const;

private:
	static std::string line(const Figure& f);

	std::vector<Figure> figures_;
};

// A progress line on stderr, so that it never mixes with the table or the JSON on stdout.
void progress(std::string_view what);

// "<what> round warm-up", then "<what> round 1", ...: rounds count from -1, the warm-up.
void progress_round(std::string_view what, int round);

// --- child processes -------------------------------------------------------------------------------------------------

// Kills a process group and reaps its leader and, since we are a child subreaper, every member orphaned to us.
void kill_and_reap(pid_t pgid);

// A spawned process, leader of its own process group: killed with the group and reaped on every path.
class Child {
public:
	Child() = default;
	Child(pid_t pid, bpfckpt::UniqueFd out) : pid_(pid), out_(std::move(out)) {}
	Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)) {}
	Child& operator=(Child&& o) noexcept;
	~Child() { stop(); }

	pid_t pid() const { return pid_; }
	int out_fd() const { return out_.get(); }
	// It has exited, or someone else kills it now; the caller reaps it.
	void forget() { pid_ = -1; }
	void stop();

private:
	pid_t pid_ = -1;
	bpfckpt::UniqueFd out_;
};

// Where a spawned process's stderr goes.
enum class Stderr {
	inherit,      // ours: a target's complaints reach the terminal
	with_stdout,  // into the same pipe: a command's errors are part of its output
	null,         // /dev/null: a target that is restored later must not hold anything of ours
};

// fork + exec, stdin from /dev/null. stdout goes to out_file if given (targets that are restored: a file that still
// exists when they are, not a pipe whose other end is ours), else into a pipe (Child::out_fd). The child leads its
// own process group, so that one kill reaches everything it forks, and dies with us (PDEATHSIG) if we die without
// cleaning up.
bpfckpt::Result<Child> spawn(const std::vector<std::string>& argv, Stderr err, const std::string& out_file = {});

// What a timeout error says was missing, and the likely cause where the caller knows one.
struct Awaited {
	std::string_view missing = "output";
	std::string_view hint = "";  // appended to the message, e.g. " (did ...?)"
};

// Reads until a line is complete (want_line) or until EOF, whichever comes first, within timeout_s.
bpfckpt::Result<std::string> read_output(int fd, bool want_line, int timeout_s, std::string_view what,
					 const Awaited& awaited = {});

// A target started and past its `READY {json}` line.
struct Target {
	Child child;
	Json ready;
};

// The JSON of a target's `READY {json}` line; what names the target in errors.
bpfckpt::Result<Json> parse_ready(const std::string& line, std::string_view what);

// A target whose stdout is a pipe and whose stderr is ours.
bpfckpt::Result<Target> start_target(const std::vector<std::string>& argv, int timeout_s);

// A target whose stdout is out_file and whose stderr is /dev/null, so that it can be dumped and restored without
// a pipe to us; out_file is polled for the READY line.
bpfckpt::Result<Target> start_target(const std::vector<std::string>& argv, const std::string& out_file, int timeout_s);

struct CommandResult {
	int status = 0;
	double wall_us = 0;
	long maxrss_kib = 0;  // ru_maxrss of the command (and of any children it reaped)
	std::string output;   // stdout and stderr

	bool succeeded() const;
};

// Runs a command to completion: wall time from before fork to after wait4, its peak RSS from wait4.
bpfckpt::Result<CommandResult> run_command(const std::vector<std::string>& argv, int timeout_s,
					   const Awaited& awaited = {});

std::vector<std::string> split_lines(std::string_view s);

// The last line of a command's output that parses as a JSON object (the CLI's --json summary); anything else is a
// warning on stderr.
bpfckpt::Result<Json> last_json(const CommandResult& r, std::string_view what);

// --- big buffers and scratch space -----------------------------------------------------------------------------------

// An anonymous mapping for our own GiB-sized buffers.
class Buffer {
public:
	// Populated in bulk, and with MADV_DONTFORK, which keeps it out of every child we fork: fork would copy its page
	// tables, and exec records the forked mm's peak RSS as the child's ru_maxrss, so a dump's measured peak would
	// include our buffers.
	static bpfckpt::Result<Buffer> map(size_t bytes);
	// Nothing populated: the first touch of each page faults, which is what some measurements are about.
	static bpfckpt::Result<Buffer> fresh(size_t bytes);

	Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
	Buffer& operator=(Buffer&&) = delete;
	~Buffer();

	char* data() const { return p_; }
	size_t size() const { return n_; }

	// xorshift64, as in target_mem.c: incompressible, no zero pages.
	void fill_random(uint64_t seed);

private:
	Buffer(char* p, size_t n) : p_(p), n_(n) {}
	char* p_;
	size_t n_;
};

// Our own source and destination for the baselines: src random, dst touched, both of the same size.
struct Buffers {
	Buffer src;
	Buffer dst;
};
bpfckpt::Result<Buffers> fill_buffers(size_t bytes);

// A scratch directory /var/tmp/bpfckpt-<tag>-XXXXXX (the filesystem images go to), removed with everything in it.
class WorkDir {
public:
	static bpfckpt::Result<WorkDir> create(std::string_view tag);
	WorkDir(WorkDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
	WorkDir& operator=(WorkDir&&) = delete;
	~WorkDir();

	std::string path(std::string_view name) const;

	// Removes a file or an image directory and writes back what is left dirty, so that the next measurement starts
	// from a quiet disk.
	static void discard(const std::string& p);

private:
	explicit WorkDir(std::string p) : path_(std::move(p)) {}
	std::string path_;
};

// Writes bytes to a new file in 8 MiB chunks; closed on return. Into the page cache, the same then fsync'd, or
// around the page cache (O_DIRECT, from a page-aligned buffer, then fsync'd for the file's metadata).
enum class WriteMode { cached, fsync, direct };
bpfckpt::Status write_file(const char* data, size_t bytes, const std::string& path, WriteMode mode);

// Memory freed seconds ago has gone back to the host, and taking it back costs like a first touch: writing and
// deleting a scratch file of the size about to be allocated (at most src's) takes it back first, outside the timing.
bpfckpt::Status prewarm(const WorkDir& work, const Buffer& src, size_t bytes);

// --- the host taking memory back ------------------------------------------------------------------------------------

// On the PVM guests the kernel hands free memory back to the host in passes of free page reporting about 2 s apart,
// each over in ~10 ms and counted in /sys/module/page_reporting/parameters/passes. A page-cache write that a pass
// overlaps finds the pages just freed for it gone to the host, and runs at ~18 us a page over what it then takes
// back: 1 GiB took 470-1290 ms instead of 190-230. The passes keep their period while a benchmark repeats its steps,
// so they land on the same steps run after run and favour whichever side is shorter.

// Passes so far; nullopt where the kernel counts none (no such VM): then nothing waits for them.
std::optional<uint64_t> host_reporting_passes();

// Returns right after the next pass has ended, or after 2.5 s without one, so that what runs next has about 2 s
// before another: time enough for a step of a 1 GiB comparison, its unrecorded run included.
void await_host_reporting_pass();

// memcpy of src into dst: the physical limit every copy is compared with.
double time_memcpy(const Buffer& dst, const Buffer& src);

// --- main ------------------------------------------------------------------------------------------------------------

// --quick and --json, the same for every benchmark.
struct Options {
	bool quick = false;
	bool json = false;
};

// What a benchmark says about itself, for its usage and its messages.
struct Benchmark {
	std::string_view name;         // "bench_dump"
	std::string_view command;      // "dump": the bpfckpt command it measures
	std::string_view quick_sizes;  // what --quick makes the sizes
	std::string_view why_root;     // what needs root, said when we are not
};

namespace detail {

int run_benchmark(int argc, char** argv, const Benchmark& b, const std::function<void(const Options&)>& configure,
		  const std::function<bpfckpt::Status(Report&)>& run, const std::function<Json()>& config_json);

}  // namespace detail

// The whole of a benchmark's main(): parses the options, checks that we are root, becomes a child subreaper with the
// signal handlers installed, runs it between two loadavg figures, prints the report (the table on stderr when the
// JSON goes to stdout) and the error if any. Returns main's exit code.
// Config is built from the options (--quick makes the sizes smaller) and says what it was with to_json(), for --json;
// run measures into the report, and what it measured is printed even when it fails.
template <typename Config>
int run_benchmark(int argc, char** argv, const Benchmark& b, bpfckpt::Status (*run)(const Config&, Report&))
{
	std::optional<Config> cfg;
	return detail::run_benchmark(
		argc, argv, b, [&](const Options& opt) { cfg.emplace(opt); }, [&](Report& rep) { return run(*cfg, rep); },
		[&] { return cfg->to_json(); });
}

}  // namespace bench
