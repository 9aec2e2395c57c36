// bpfckpt watch (-t PID | CGROUP) -D DIR --interval SECONDS [--keep N] [--full-every K] [--json]
#include "cli/commands.h"
#include "dump/watch.h"

namespace bpfckpt::cli {

Run add_watch(CLI::App& root)
{
	auto opt = std::make_shared<dump::WatchOptions>();
	auto no_fsync = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("watch", "Snapshot a process tree or a cgroup every interval, as a chain of "
						     "incremental images, until SIGINT/SIGTERM");
	cmd->add_option("-t,--tree", opt->pid, "PID of the root of the tree to watch");
	cmd->add_option("cgroup", opt->cgroup, "or a cgroup v2 path (absolute, or relative to the cgroup2 mount)");
	cmd->add_option("-D,--images-dir", opt->dir, "directory for the snapshots, one subdirectory each (UTC time)")
		->required();
	cmd->add_option("--interval", opt->interval, "seconds between snapshots")->required();
	cmd->add_option("--keep", opt->keep, "keep the newest N snapshots; older ones are merged away (default: all)");
	cmd->add_option("--full-every", opt->full_every, "every Kth snapshot is a full image (default: only the first)");
	cmd->add_flag("--json", opt->json, "one JSON object per snapshot");
	cmd->add_flag("--no-fsync", *no_fsync, "do not fsync the images (faster; not crash-safe)");
	set_examples(*cmd, "  bpfckpt watch -t 1234 -D snaps --interval 1 --keep 3     one a second, the last 3 kept\n"
			   "  bpfckpt watch ci/job1 -D snaps --interval 10 --full-every 6 --json\n"
			   "  bpfckpt restore -D snaps/20261125T102820.123Z -d           any kept snapshot restores\n");
	return [opt, no_fsync]() -> Status {
		if ((opt->pid > 0) == !opt->cgroup.empty())
			return fail(ExitCode::usage, "watch: give either -t PID or a cgroup, not {}",
				    opt->pid > 0 ? "both" : "neither");
		opt->fsync = !*no_fsync;
		return dump::watch(*opt);
	};
}

}  // namespace bpfckpt::cli
