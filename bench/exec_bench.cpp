// bench_exec: how long `bpfckpt exec --snap-on-timeout` takes from its timeout to the image on disk, for a job of 20
// processes, against the same snap run as a separate `bpfckpt snap` command from outside (what a CI runner would do
// without exec: notice the timeout, then start bpfckpt). Measured in one run, after a warm-up round, interleaved.
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "common/cgroup.h"
#include "common/result.h"

namespace {

using namespace bpfckpt;
using namespace bench;

struct Config {
	bool quick = false;
	int processes = 20;
	int rounds = 5;
	double timeout_s = 1.5;  // long enough for target_tree to fork its processes on a busy machine

	explicit Config(const Options& opt) : quick(opt.quick)
	{
		if (quick)
			rounds = 2;
	}

	Json to_json() const
	{
		return {{"quick", quick}, {"processes", processes}, {"rounds", rounds}, {"timeout_s", timeout_s}};
	}
};

constexpr std::string_view kWorkTag = "bench-exec";
constexpr Awaited kEof{"the end of its output"};

std::string job_tree_arg(const Config& cfg) { return std::to_string(cfg.processes); }

// The cgroup `bpfckpt exec` (pid exec_pid) puts its job in: below ours.
Result<std::string> job_cgroup(pid_t exec_pid)
{
	std::string mount = BCK_TRY(cgroup::v2_mount());
	Result<std::string> self = cgroup::path_of(getpid());
	if (!self)
		return std::unexpected(self.error());
	return fmt::format("{}{}/bpfckpt-exec-{}", mount, *self == "/" ? std::string() : *self, exec_pid);
}

struct ExecRun {
	double wall_us = 0;
	Json stats;  // exec's --stats line
};

// exec with the timeout: the job is snapped, killed, and exec exits 124 with its --stats line.
Result<ExecRun> exec_once(const Config& cfg, const std::string& dir)
{
	CommandResult r = BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "exec", "--snap-on-timeout", fmt::format("{}", cfg.timeout_s),
					       "--stats", "-D", dir, "--", BENCH_TARGET_TREE, job_tree_arg(cfg)},
					      120, kEof));
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 124)
		return fail(ExitCode::failure, "bpfckpt exec did not time out and snap (status {:#x}):\n{}", r.status,
			    r.output);
	ExecRun run{r.wall_us, BCK_TRY(last_json(r, "bpfckpt exec --stats"))};
	if (run.stats.value("processes", 0) != cfg.processes)
		return fail(ExitCode::failure, "bpfckpt exec snapped {} processes, not {}:\n{}",
			    run.stats.value("processes", 0), cfg.processes, r.output);
	return run;
}

// The same job under exec without a timeout, snapped from outside by `bpfckpt snap`: its wall time.
Result<double> snap_once(const Config& cfg, const std::string& dir)
{
	Child job = BCK_TRY(spawn({BENCH_BPFCKPT_BIN, "exec", "-D", dir + ".unused", "--", BENCH_TARGET_TREE,
				   job_tree_arg(cfg)},
				  Stderr::inherit));
	BCK_TRY(read_output(job.out_fd(), true, 60, "target_tree under bpfckpt exec", {"its READY line"}));
	std::string cg = BCK_TRY(job_cgroup(job.pid()));
	CommandResult r = BCK_TRY(run_command({BENCH_BPFCKPT_BIN, "snap", cg, "-D", dir}, 120, kEof));
	if (!r.succeeded())
		return fail(ExitCode::failure, "bpfckpt snap {} failed:\n{}", cg, r.output);
	// The snap killed the job: exec ends by itself once it has removed the cgroup (killing it would leave that).
	int st;
	while (::waitpid(job.pid(), &st, 0) < 0 && errno == EINTR) {
	}
	job.forget();
	return r.wall_us;
}

Status run_all(const Config& cfg, Report& rep)
{
	WorkDir work = BCK_TRY(WorkDir::create(kWorkTag));
	Samples s;
	for (int round = -1; round < cfg.rounds; round++) {  // -1: warm-up
		progress_round("exec vs snap", round);
		s.recording = round >= 0;
		BCK_CHECK(check_stop());
		std::string img = work.path(fmt::format("exec-{}", round + 1));
		ExecRun e = BCK_TRY(exec_once(cfg, img));
		WorkDir::discard(img);
		s.add("exec.timeout_to_image", e.stats.value("trigger_to_image_time", 0.0));
		s.add("exec.frozen_time", e.stats.value("frozen_time", 0.0));
		s.add("exec.after_timeout", e.wall_us - cfg.timeout_s * 1e6);
		BCK_CHECK(check_stop());
		img = work.path(fmt::format("snap-{}", round + 1));
		s.add("snap.wall", BCK_TRY(snap_once(cfg, img)));
		WorkDir::discard(img);
	}
	double ex = s.med("exec.timeout_to_image"), snap = s.med("snap.wall");
	rep.info("job.processes", cfg.processes, "processes");
	rep.ratio("exec.timeout_to_image", ex / 1e3, "ms", snap > 0 ? ex / snap : 0,
		  "exec's timeout to image on disk vs a separate `bpfckpt snap` command's wall", Goal{true, 1.0, "x"});
	rep.info("snap.wall", snap / 1e3, "ms");
	rep.info("exec.frozen_time", s.med("exec.frozen_time") / 1e3, "ms");
	rep.info("exec.after_timeout", s.med("exec.after_timeout") / 1e3, "ms");
	return {};
}

constexpr bench::Benchmark kBenchmark{.name = "bench_exec",
				      .command = "exec",
				      .quick_sizes = "2 rounds instead of 5",
				      .why_root = "cgroups, BPF iterators, ptrace"};

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmark<Config>(argc, argv, kBenchmark, run_all); }
