// bench_snap: what a snap of a whole cgroup costs the processes in it, measured in one run.
//   `bpfckpt snap CGROUP -R` (the kernel's cgroup freezer first, then every task seized) against `bpfckpt dump -t ROOT
//   -R` (ptrace alone, re-listing the tree until no fork slips through) on the very same processes, for a tree of 1,
//   10 and 100 processes (target_tree) and for one process holding 1 GiB (target_mem).
// Figures, from each command's --stats --json: downtime = freezing_time + frozen_time (the processes stop at the
// start of freezing_time and run again at the end of frozen_time, in both modes), frozen_time alone (CRIU's name:
// from all stopped until running again), freezing_time, total_time, and the wall time of the command. Ratios are
// ptrace / cgroup: above 1, the snap stops the processes for less time than the ptrace freeze.
// A benchmark, not a test: it prints figures and ratios and fails only when a command fails. A warm-up round first,
// the two modes interleaved (alternating which goes first), medians reported.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "common/cgroup.h"
#include "common/fd.h"
#include "common/result.h"

namespace {

using namespace bpfckpt;
using namespace bench;

struct Config {
	bool quick = false;
	std::vector<int> trees{1, 10, 100};
	size_t mem_mib = 1024;
	int rounds = 5;
	int mem_rounds = 3;

	explicit Config(const Options& opt) : quick(opt.quick)
	{
		if (quick) {
			trees = {1, 10, 30};
			mem_mib = 256;
			rounds = 3;
			mem_rounds = 2;
		}
	}

	Json to_json() const
	{
		return {{"quick", quick}, {"trees", trees}, {"mem_mib", mem_mib}, {"rounds", rounds},
			{"mem_rounds", mem_rounds}};
	}
};

// --- a cgroup of the benchmark's own ---------------------------------------------------------------------------------

// /<cgroup2 mount>/bpfckpt-bench-<tag>-<pid>: the targets are moved in once they are ready. Removed on every path:
// thawed, emptied with cgroup.kill (the targets die with their Child guards anyway), rmdir'd.
class BenchCgroup {
public:
	static Result<BenchCgroup> create(std::string_view tag)
	{
		std::string mount = BCK_TRY(cgroup::v2_mount());
		std::string path = fmt::format("/bpfckpt-bench-{}-{}", tag, ::getpid());
		BCK_TRY(cgroup::create(mount, path));
		return BenchCgroup(BCK_TRY(cgroup::resolve(mount + path)));
	}
	BenchCgroup(BenchCgroup&& o) noexcept : cg_(std::exchange(o.cg_, {})) {}
	BenchCgroup& operator=(BenchCgroup&&) = delete;
	~BenchCgroup()
	{
		if (cg_.path.empty())
			return;
		(void)cgroup::set_freeze(cg_, false);
		(void)cgroup::kill_all(cg_);
		for (int i = 0; i < 1000 && cgroup::populated(cg_).value_or(false); i++)  // 5 s at most
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		::rmdir(cg_.dir().c_str());
	}

	std::string dir() const { return cg_.dir(); }

	// Moves a process (all its threads) in: one write of its pid to cgroup.procs.
	Status adopt(pid_t pid) const
	{
		std::string procs = cg_.file("cgroup.procs"), value = std::to_string(pid);
		UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
		if (!fd || ::write(fd.get(), value.data(), value.size()) != ssize_t(value.size()))
			return fail_sys(errno, "move pid {} into {}", pid, procs);
		return {};
	}

private:
	explicit BenchCgroup(cgroup::Cgroup cg) : cg_(std::move(cg)) {}
	cgroup::Cgroup cg_;
};

// --- one measurement ------------------------------------------------------------------------------------------------

// The CLI's --stats --json figures (microseconds) and the wall time of one command, recorded as prefix.<name>.
Status measure(Samples& s, const std::string& prefix, std::vector<std::string> argv)
{
	argv.insert(argv.end(), {"-R", "--stats", "--json"});
	CommandResult r = BCK_TRY(run_command(argv, 600));
	if (!r.succeeded())
		return fail(ExitCode::failure, "{} failed (status {:#x}):\n{}", fmt::join(argv, " "), r.status, r.output);
	Json stats = BCK_TRY(last_json(r, argv[1]));
	double freezing = stats.value("freezing_time", 0.0), frozen = stats.value("frozen_time", 0.0);
	s.add(prefix + ".downtime", freezing + frozen);
	s.add(prefix + ".frozen_time", frozen);
	s.add(prefix + ".freezing_time", freezing);
	s.add(prefix + ".total_time", stats.value("total_time", 0.0));
	s.add(prefix + ".wall", r.wall_us);
	return {};
}

// snap of the cgroup and dump of the tree, one after the other, the order alternating between rounds; `before`
// runs before each of them, outside the timing.
Status measure_both(Samples& s, const BenchCgroup& cg, pid_t root, const WorkDir& work, int round,
		    const std::function<Status()>& before = [] { return Status{}; })
{
	std::string img = work.path("img");
	auto snap = [&]() -> Status {
		BCK_CHECK(before());
		BCK_CHECK(measure(s, "cgroup", {BENCH_BPFCKPT_BIN, "snap", cg.dir(), "-D", img}));
		WorkDir::discard(img);
		return {};
	};
	auto dump = [&]() -> Status {
		BCK_CHECK(before());
		BCK_CHECK(measure(s, "ptrace", {BENCH_BPFCKPT_BIN, "dump", "-t", std::to_string(root), "-D", img}));
		WorkDir::discard(img);
		return {};
	};
	BCK_CHECK(check_stop());
	if (round % 2) {
		BCK_CHECK(dump());
		return snap();
	}
	BCK_CHECK(snap());
	return dump();
}

void report(const Samples& s, const std::string& name, Report& rep)
{
	for (const char* k : {"downtime", "frozen_time", "freezing_time", "total_time", "wall"}) {
		double cg = s.med(std::string("cgroup.") + k), pt = s.med(std::string("ptrace.") + k);
		rep.ratio(fmt::format("snap.{}.{}", name, k), cg / 1e3, "ms", cg > 0 ? pt / cg : 0,
			  fmt::format("ptrace {} vs cgroup (dump -t -R {:.1f} ms)", k, pt / 1e3));
	}
}

// --- the cases -------------------------------------------------------------------------------------------------------

// A tree of n processes (one root, n-1 children) moved into a cgroup of its own.
Status bench_tree(const Config& cfg, int n, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create("snap"));
	BenchCgroup cg = BCK_TRY(BenchCgroup::create(fmt::format("tree{}", n)));
	progress(fmt::format("{} process(es) in {}", n, cg.dir()));
	Target tree = BCK_TRY(start_target({BENCH_TARGET_TREE, std::to_string(n)}, 120));
	for (pid_t pid : tree.ready.at("pids").get<std::vector<pid_t>>())
		BCK_CHECK(cg.adopt(pid));
	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress_round(fmt::format("{} process(es)", n), round);
		s.recording = round >= 0;
		BCK_CHECK(measure_both(s, cg, tree.child.pid(), work, round));
	}
	report(s, fmt::format("n{}", n), rep);
	return {};
}

// One process with mem_mib of random memory: the downtime then is mostly the memory dump.
Status bench_memory(const Config& cfg, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create("snap"));
	BenchCgroup cg = BCK_TRY(BenchCgroup::create("mem"));
	progress(fmt::format("one process with {} MiB in {}", cfg.mem_mib, cg.dir()));
	Target target = BCK_TRY(start_target({BENCH_TARGET_MEM, std::to_string(cfg.mem_mib)}, 300));
	BCK_CHECK(cg.adopt(target.child.pid()));
	// Memory freed seconds ago goes back to the host and costs a first touch to take back (KERNEL.md): before each
	// command, the same amount is taken back outside the timing.
	Buffer src = BCK_TRY(Buffer::map(cfg.mem_mib << 20));
	src.fill_random(1);
	Samples s;
	for (int round = -1; round < cfg.mem_rounds; round++) {
		progress_round(fmt::format("{} MiB", cfg.mem_mib), round);
		s.recording = round >= 0;
		BCK_CHECK(measure_both(s, cg, target.child.pid(), work, round,
				       [&] { return prewarm(work, src, src.size()); }));
	}
	report(s, fmt::format("mem{}", cfg.mem_mib), rep);
	return {};
}

Status run_all(const Config& cfg, Report& rep)
{
	for (int n : cfg.trees)
		BCK_CHECK(bench_tree(cfg, n, rep));
	return bench_memory(cfg, rep);
}

constexpr bench::Benchmark kBenchmark{.name = "bench_snap",
				      .command = "snap",
				      .quick_sizes = "1, 10 and 30 processes, 256 MiB",
				      .why_root = "cgroup v2, BPF iterators, ptrace"};

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmark<Config>(argc, argv, kBenchmark, run_all); }
