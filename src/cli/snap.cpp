// bpfckpt snap CGROUP -D DIR [-R] [--track-mem] [--prev-images-dir DIR] [--stats] [--json], and bpfckpt thaw CGROUP
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
	auto flags = std::make_shared<ReportFlags>();
	CLI::App* cmd = root.add_subcommand("snap", "Snapshot every process of a cgroup v2 subtree into an image "
						    "directory (frozen by the kernel's cgroup freezer)");
	cmd->add_option("cgroup", opt->cgroup, "the cgroup: a path under the cgroup2 mount, absolute or relative to it")
		->required();
	cmd->add_option("-D,--images-dir", opt->dir, "image directory to create (must not exist, or be empty)")
		->required();
	cmd->add_flag("-R,--leave-running", opt->leave_running,
		      "thaw the cgroup after the snap (default: kill everything in it with cgroup.kill)");
	add_dump_options(*cmd, *opt, *flags);
	set_examples(*cmd, "  bpfckpt snap /sys/fs/cgroup/unified/ci/job1 -D img     snap the job, then kill it\n"
			   "  bpfckpt snap ci/job1 -D img -R --stats                 snap it, let it run on, timings\n"
			   "  bpfckpt restore -D img -d                              bring it back into ci/job1\n");
	return [opt, flags]() -> Status {
		finish_dump_options(*opt, *flags);
		auto st = BCK_TRY(dump::snap_cgroup(*opt));
		report_dump(st, "snapped", *opt, *flags);
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
