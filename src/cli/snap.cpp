// bpfckpt snap CGROUP -D DIR [-R] [--stats] [--json], and bpfckpt thaw CGROUP
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/dump_report.h"
#include "common/cgroup.h"
#include "dump/cgroup_freeze.h"
#include "dump/dump.h"

namespace bpfckpt::cli {

Run add_snap(CLI::App& root)
{
	auto opt = std::make_shared<dump::DumpOptions>();
	auto stats = std::make_shared<bool>(false);
	auto json = std::make_shared<bool>(false);
	auto no_fsync = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("snap", "Snapshot every process of a cgroup v2 subtree into an image "
						    "directory (frozen by the kernel's cgroup freezer)");
	cmd->add_option("cgroup", opt->cgroup, "the cgroup: a path under the cgroup2 mount, absolute or relative to it")
		->required();
	cmd->add_option("-D,--images-dir", opt->dir, "image directory to create (must not exist, or be empty)")
		->required();
	cmd->add_flag("-R,--leave-running", opt->leave_running,
		      "thaw the cgroup after the snap (default: kill everything in it with cgroup.kill)");
	cmd->add_flag("--track-mem", opt->track_mem,
		      "arm write tracking (userfaultfd WP_ASYNC), so that a later --prev-images-dir dump saves only "
		      "the pages written since this one (use with -R)");
	cmd->add_option("--prev-images-dir", opt->prev_dir,
			"an earlier image of the same processes taken with --track-mem: save only what was written "
			"since (an incremental image; restore follows the chain)");
	cmd->add_flag("--stats", *stats, "print timings and page counts (CRIU's names, microseconds)");
	cmd->add_flag("--json", *json, "print the summary (and --stats) as JSON");
	cmd->add_flag("--no-fsync", *no_fsync, "do not fsync the image (faster; not crash-safe)");
	set_examples(*cmd, "  bpfckpt snap /sys/fs/cgroup/unified/ci/job1 -D img     snap the job, then kill it\n"
			   "  bpfckpt snap ci/job1 -D img -R --stats                 snap it, let it run on, timings\n"
			   "  bpfckpt restore -D img -d                              bring it back into ci/job1\n");
	return [opt, stats, json, no_fsync]() -> Status {
		opt->fsync = !*no_fsync;
		opt->progress = !*json;
		auto st = BCK_TRY(dump::snap_cgroup(*opt));
		report_dump(st, "snapped", *opt, *stats, *json);
		return {};
	};
}

Run add_thaw(CLI::App& root)
{
	auto path = std::make_shared<std::string>();
	CLI::App* cmd = root.add_subcommand("thaw", "Undo a cgroup freeze left by a bpfckpt snap that was killed");
	cmd->add_option("cgroup", *path, "the cgroup: a path under the cgroup2 mount, absolute or relative to it")
		->required();
	set_examples(*cmd, "  bpfckpt thaw ci/job1      cgroup.freeze back to 0 (refused while a snap holds it)\n");
	return [path]() -> Status {
		cgroup::Cgroup cg = BCK_TRY(cgroup::resolve(*path));
		dump::ThawResult r = BCK_TRY(dump::thaw_cgroup(cg));
		if (!r.was_frozen)
			fmt::print("cgroup {}: was not frozen\n", cg.path);
		else if (r.left_by)
			fmt::print("cgroup {}: thawed (left frozen by bpfckpt pid {})\n", cg.path, r.left_by);
		else
			fmt::print("cgroup {}: thawed (it was frozen by someone other than bpfckpt)\n", cg.path);
		return {};
	};
}

}  // namespace bpfckpt::cli
