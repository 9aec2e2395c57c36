// bench_dump: how `bpfckpt dump` compares with the obvious alternatives, measured in one run.
//   1. metadata of ~1000 processes: the BPF iterators (with and without loading them) against reading /proc
//   2. a dump of 1 GiB of random memory against writing the same bytes from a buffer (page cache; and fsync'd), and
//      against memcpy and an O_DIRECT write (the disk's own speed) as the physical limits; and, for scale, against
//      a plain write of as many bytes by a fresh process, which a dump always is
//   3. bpfckpt's peak RSS during that dump
//   4. the fixed cost of dumping a tiny process
// A benchmark, not a test: it prints figures and ratios; targets that are missed are reported, not failed.
// On the PVM guests first-touch faults are slow and free memory goes back to the host (KERNEL.md, costs), so each
// comparison has a warm-up and runs its alternatives interleaved, each right after the host took memory back
// (bench_util.h), reporting medians.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "common/fd.h"
#include "common/result.h"
#include "dump/collector.h"

namespace {

using namespace bpfckpt;
using namespace bench;

constexpr std::chrono::milliseconds kColdPause{1500};

struct Config {
	bool quick = false;
	int processes = 1000;
	size_t mem_mib = 1024;
	int meta_reps = 5;
	int dump_rounds = 7;  // a median of 7 holds with 3 samples that the VM slowed 3-10x (1 in 6 on either side)
	int cold_rounds = 4;
	int fixed_reps = 10;

	explicit Config(const Options& opt) : quick(opt.quick)
	{
		if (quick) {
			processes = 100;
			mem_mib = 256;
		}
	}

	// What --json says the run was.
	Json to_json() const
	{
		return {{"quick", quick},
			{"processes", processes},
			{"mem_mib", mem_mib},
			{"meta_reps", meta_reps},
			{"dump_rounds", dump_rounds},
			{"cold_rounds", cold_rounds},
			{"fixed_reps", fixed_reps}};
	}
};

// A scratch directory /var/tmp/bpfckpt-bench-XXXXXX.
constexpr std::string_view kWorkTag = "bench";

// --- 1. metadata of many processes -----------------------------------------------------------------------------------

struct MetaCounts {
	size_t tasks = 0, files = 0, vmas = 0;
};

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
		progress_round("metadata", rep_i);
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

// The alternative to a dump: the same bytes written from a buffer, open to close.
Result<double> time_write_file(const Buffer& buf, const std::string& path, WriteMode mode)
{
	auto t0 = Clock::now();
	BCK_CHECK(write_file(buf.data(), buf.size(), path, mode));
	return us_since(t0);
}

struct DumpRun {
	double wall_us = 0;
	long maxrss_kib = 0;
	Json stats;             // the CLI's --stats --json: microseconds and counts
	double bpf_load_us = -1;  // from its -v log, when it prints one
};

// -v for the "BPF iterators loaded in X ms" line: the load happens before total_time starts. -R keeps the target
// for the next run. Without fsync, --frozen-copy makes it copy the way a dump without -R does: while frozen, into
// the page cache. With fsync, -R's own way: the copy after the thaw, around the page cache, as a dump without -R
// writes too when it fsyncs (nobody waits on a thaw there either).
Result<DumpRun> run_dump(pid_t pid, const std::string& dir, bool do_fsync)
{
	std::vector<std::string> argv{BENCH_BPFCKPT_BIN, "-v", "dump", "-t", std::to_string(pid), "-D", dir, "-R",
				      "--stats", "--json"};
	if (!do_fsync) {
		argv.push_back("--frozen-copy");
		argv.push_back("--no-fsync");
	}
	CommandResult r = BCK_TRY(run_command(argv, 600));
	if (!r.succeeded())
		return fail(ExitCode::failure, "bpfckpt dump -t {} failed (status {:#x}):\n{}", pid, r.status, r.output);
	DumpRun run{r.wall_us, r.maxrss_kib, BCK_TRY(last_json(r, "bpfckpt dump"))};
	for (const std::string& line : split_lines(r.output))
		if (size_t at = line.find("BPF iterators loaded in "); at != std::string::npos)
			run.bpf_load_us = std::strtod(line.c_str() + at + 24, nullptr) * 1e3;
	return run;
}

// The plain write again, by a fresh process (bench/plain_writer.c) from a 2 MiB buffer, as a dump writes: a dump is
// always a new process, which starts writing some 30 ms after the last one's memory was freed.
Result<double> time_fresh_write(size_t mib, const std::string& path)
{
	CommandResult r = BCK_TRY(run_command({BENCH_PLAIN_WRITER, std::to_string(mib), path}, 300));
	if (!r.succeeded())
		return fail(ExitCode::failure, "plain_writer failed (status {:#x}):\n{}", r.status, r.output);
	return BCK_TRY(last_json(r, "plain_writer")).value("write_us", 0.0);
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

// How many measured runs were run again because a pass of the host taking memory back overlapped them, and how many
// kept one after three attempts: a figure far from 0 says that the ratios above carry the host's noise.
void report_host_passes(const Samples& s, Report& rep)
{
	if (!host_reporting_passes())
		return;
	double overlapped = 0, runs = 0;
	for (const auto& [name, values] : s.by_name)
		if (name.ends_with(".host_pass"))
			for (double v : values)
				overlapped += v, runs++;
	auto reruns = s.by_name.find("host_pass_reruns");
	rep.info("dump.host_pass_reruns", reruns == s.by_name.end() ? 0 : double(reruns->second.size()), "runs");
	rep.info("dump.host_pass_overlaps", overlapped, fmt::format("of {:.0f} measured runs (after 3 attempts)", runs));
}

void report_dump(const Samples& s, size_t bytes, Report& rep)
{
	double plain = s.med("plain_write"), synced = s.med("write_fsync"), copy = s.med("memcpy");
	double direct = s.med("write_direct"), fresh = s.med("fresh_write");
	double nf = s.med("dump_nofsync.total_time"), fs = s.med("dump_fsync.total_time");
	Goal ratio15{true, 1.5, "x"};
	rep.info("dump.bytes", double(bytes >> 20), "MiB");
	rep.info("dump.memcpy", copy / 1e3, "ms");
	rep.info("dump.memcpy_rate", gbps(bytes, copy), "GB/s");
	rep.info("dump.plain_write", plain / 1e3, "ms");
	rep.info("dump.plain_write_rate", gbps(bytes, plain), "GB/s");
	rep.info("dump.write_fsync", synced / 1e3, "ms");
	rep.info("dump.write_fsync_rate", gbps(bytes, synced), "GB/s");
	rep.info("dump.write_direct", direct / 1e3, "ms");
	rep.info("dump.fresh_write", fresh / 1e3, "ms");
	rep.info("dump.write_direct_rate", gbps(bytes, direct), "GB/s");

	rep.ratio("dump.nofsync.total_time", nf / 1e3, "ms", nf / plain, "dump --no-fsync vs plain write", ratio15);
	// The page-cache writes on both sides swing 1-10x with the host (KERNEL.md, costs): the best of each, and every
	// sample, show how much of a ratio is the code and how much the VM.
	double best_nf = s.best("dump_nofsync.total_time"), best_plain = s.best("plain_write");
	rep.ratio("dump.nofsync.best", best_nf / 1e3, "ms", best_nf / best_plain,
		  "best dump --no-fsync vs best plain write");
	rep.ratio("dump.nofsync.vs_fresh_write", nf / 1e3, "ms", nf / fresh,
		  "dump --no-fsync vs a plain write by a fresh process");
	progress(fmt::format("samples (ms): plain_write {} | by a fresh process {} | dump --no-fsync {} | write+fsync {} | "
			     "dump {}",
			     s.all("plain_write", 1e-3), s.all("fresh_write", 1e-3), s.all("dump_nofsync.total_time", 1e-3),
			     s.all("write_fsync", 1e-3), s.all("dump_fsync.total_time", 1e-3)));
	report_host_passes(s, rep);
	double cold_plain = s.med("cold.plain_write"), cold_nf = s.med("cold.dump_nofsync.total_time");
	rep.info("dump.cold.plain_write", cold_plain / 1e3, "ms");
	rep.ratio("dump.cold.nofsync.total_time", cold_nf / 1e3, "ms", cold_nf / cold_plain,
		  "dump --no-fsync vs plain write, both after a pause (memory back with the host)", ratio15);
	rep.ratio("dump.nofsync.wall", s.med("dump_nofsync.wall") / 1e3, "ms", s.med("dump_nofsync.wall") / plain,
		  "dump --no-fsync wall vs plain write");
	rep.ratio("dump.nofsync.vs_memcpy", nf / 1e3, "ms", nf / copy, "dump --no-fsync vs memcpy");
	rep.info("dump.nofsync.rate", gbps(bytes, nf), "GB/s");
	rep.info("dump.fsync.rate", gbps(bytes, fs), "GB/s");
	rep.ratio("dump.fsync.total_time", fs / 1e3, "ms", fs / synced, "dump vs write+fsync", ratio15);
	rep.ratio("dump.fsync.wall", s.med("dump_fsync.wall") / 1e3, "ms", s.med("dump_fsync.wall") / synced,
		  "dump wall vs write+fsync");
	rep.ratio("dump.fsync.vs_direct", fs / 1e3, "ms", fs / direct, "dump vs O_DIRECT write+fsync (the disk)");
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
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
	progress(fmt::format("starting a target with {} MiB of random memory", cfg.mem_mib));
	Target target = BCK_TRY(start_target({BENCH_TARGET_MEM, std::to_string(cfg.mem_mib)}, 300));
	auto [src, dst] = BCK_TRY(fill_buffers(bytes));

	pid_t pid = target.child.pid();
	std::string file = work.path("plain.bin"), img = work.path("img");
	// Each alternative runs once unrecorded right before it is measured, so that each finds the memory it writes
	// into just freed by itself. Passes of the host taking memory back (bench_util.h) decide how fast a run is,
	// whatever the run, so the unrecorded run's output is deleted only right after a pass, which cannot give back
	// memory still in use, and the measured run then has the ~2 s until the next one. A measured run that a pass
	// overlapped all the same is run again, twice at most.
	// Without that the passes fell on the dump's runs more than on the shorter plain write's, run after run (a dump
	// 680-1250 ms in 3 of 6 rounds, the plain write never). Waiting for a pass before the unrecorded run instead left
	// it to write into what the pass gave back, and a slow unrecorded run pushed the measured one into the next pass.
	// Odd rounds run the alternatives in reverse order, so that none always comes right after the same neighbour.
	using Step = std::function<Status(Samples&)>;
	auto write = [&](const char* name, WriteMode mode) -> Step {
		return [&, name, mode](Samples& into) -> Status {
			into.add(name, BCK_TRY(time_write_file(src, file, mode)));
			return {};
		};
	};
	Step fresh_write = [&](Samples& into) -> Status {
		into.add("fresh_write", BCK_TRY(time_fresh_write(cfg.mem_mib, file)));
		return {};
	};
	auto dump = [&](const char* prefix, bool do_fsync) -> Step {
		return [&, prefix, do_fsync](Samples& into) -> Status {
			add_dump_samples(into, prefix, BCK_TRY(run_dump(pid, img, do_fsync)));
			return {};
		};
	};
	Samples s;
	auto after_itself = [&](const char* name, Step step, const std::string& output) -> Step {
		return [&, name, step, output](Samples& into) -> Status {
			constexpr int kAttempts = 3;
			for (int attempt = 1;; attempt++) {
				Samples unrecorded, measured{.recording = into.recording};
				BCK_CHECK(step(unrecorded));
				await_host_reporting_pass();
				WorkDir::discard(output);
				std::optional<uint64_t> passes = host_reporting_passes();
				BCK_CHECK(step(measured));
				bool overlapped = host_reporting_passes() != passes;
				WorkDir::discard(output);
				if (!overlapped || attempt == kAttempts) {
					into.merge(measured);
					into.add(fmt::format("{}.host_pass", name), double(overlapped));
					return {};
				}
				into.add("host_pass_reruns", 1);
			}
		};
	};
	std::vector<Step> steps = {
		after_itself("plain_write", write("plain_write", WriteMode::cached), file),
		after_itself("fresh_write", fresh_write, file),
		after_itself("dump_nofsync", dump("dump_nofsync", false), img),
		after_itself("write_fsync", write("write_fsync", WriteMode::fsync), file),
		after_itself("write_direct", write("write_direct", WriteMode::direct), file),
		after_itself("dump_fsync", dump("dump_fsync", true), img),
		[&](Samples& into) -> Status {
			into.add("memcpy", time_memcpy(dst, src));
			return {};
		},
	};
	for (int round = -1; round < cfg.dump_rounds; round++) {  // -1: warm-up
		progress_round("dump", round);
		s.recording = round >= 0;
		for (size_t i = 0; i < steps.size(); i++) {
			BCK_CHECK(check_stop());
			BCK_CHECK(steps[round % 2 ? steps.size() - 1 - i : i](s));
		}
	}
	// The same pair with cold memory on both sides: after a pause in which passes gave what the last run freed
	// back to the host. Each starts right after a pass too, so that both find as many passes behind them; how much
	// each pass gave back still varies, so the two take turns going first.
	for (int round = 0; round < cfg.cold_rounds; round++) {
		progress_round("cold dump", round);
		BCK_CHECK(check_stop());
		for (int turn = 0; turn < 2; turn++) {
			std::this_thread::sleep_for(kColdPause);
			await_host_reporting_pass();
			bool plain = (turn + round) % 2 == 0;
			BCK_CHECK(plain ? write("cold.plain_write", WriteMode::cached)(s) : dump("cold.dump_nofsync", false)(s));
			WorkDir::discard(plain ? file : img);
		}
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
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
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
	BCK_CHECK(bench_metadata(cfg, rep));
	::malloc_trim(0);  // what phase 1 freed must not inflate the RSS floor of the dumps below
	BCK_CHECK(bench_big_dump(cfg, rep));
	BCK_CHECK(bench_fixed_cost(cfg, rep));
	return {};
}

constexpr bench::Benchmark kBenchmark{.name = "bench_dump",
				      .command = "dump",
				      .quick_sizes = "100 processes, 256 MiB",
				      .why_root = "BPF iterators, ptrace"};

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmark<Config>(argc, argv, kBenchmark, run_all); }
