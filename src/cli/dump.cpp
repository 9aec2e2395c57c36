// bpfckpt dump -t PID -D DIR [-R] [--no-children] [--track-mem] [--prev-images-dir DIR] [--stats] [--json],
// and bpfckpt untrack -t PID
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/dump_report.h"
#include "dump/dump.h"
#include "dump/self_token.h"
#include "dump/track.h"

namespace bpfckpt::cli {

namespace {

// --self-token R:W, two fd numbers of the target's.
Result<std::pair<int, int>> parse_self_token(const std::string& s)
{
	int r = -1, w = -1;
	char end = 0;
	if (std::sscanf(s.c_str(), "%d:%d%c", &r, &w, &end) != 2 || r < 0 || w < 0)
		return fail(ExitCode::usage, "--self-token {}: expected R:W, two fd numbers", s);
	return std::make_pair(r, w);
}

}  // namespace

Run add_dump(CLI::App& root)
{
	auto opt = std::make_shared<dump::DumpOptions>();
	auto stats = std::make_shared<bool>(false);
	auto json = std::make_shared<bool>(false);
	auto no_fsync = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("dump", "Dump a process and all its descendants into an image directory");
	cmd->add_option("-t,--tree", opt->pid, "PID of the root of the tree to dump")->required();
	cmd->add_option("-D,--images-dir", opt->dir, "image directory to create (must not exist, or be empty)")
		->required();
	cmd->add_flag("-R,--leave-running", opt->leave_running, "let the tree run on after the dump (default: kill it)");
	cmd->add_flag("--track-mem", opt->track_mem,
		      "arm write tracking (userfaultfd WP_ASYNC), so that a later --prev-images-dir dump saves only "
		      "the pages written since this one (use with -R)");
	cmd->add_option("--prev-images-dir", opt->prev_dir,
			"an earlier image of the same processes taken with --track-mem: save only what was written "
			"since (an incremental image; restore follows the chain)");
	cmd->add_flag("!--no-children", opt->children, "dump the process alone, not its descendants");
	cmd->add_flag("--stats", *stats, "print timings and page counts (CRIU's names, microseconds)");
	cmd->add_flag("--json", *json, "print the summary (and --stats) as JSON");
	cmd->add_flag("--no-fsync", *no_fsync, "do not fsync the image (faster; not crash-safe)");
	auto self_token = std::make_shared<std::string>();
	cmd->add_option("--self-token", *self_token, "R:W, the target's pipe fds (libbpfckpt's bpfckpt_checkpoint_self)")
		->group("");
	set_examples(*cmd, "  bpfckpt dump -t 1234 -D /var/tmp/img       dump the tree under 1234, then kill it\n"
			   "  bpfckpt dump -t 1234 -D img -R --stats     dump it and let it run on, print timings\n"
			   "  bpfckpt dump -t 1234 -D img --no-children  dump 1234 alone (its children run on)\n"
			   "  bpfckpt dump -t 1234 -D full -R --track-mem                       a full image; tracking armed\n"
			   "  bpfckpt dump -t 1234 -D inc1 -R --track-mem --prev-images-dir full   only what changed since\n");
	return [opt, stats, json, no_fsync, self_token]() -> Status {
		opt->fsync = !*no_fsync;
		opt->progress = !*json;
		if (!self_token->empty())
			opt->self_token = BCK_TRY(parse_self_token(*self_token));
		auto st = dump::dump_tree(*opt);
		if (!st && opt->self_token)
			dump::report_self_failure(opt->pid, *opt->self_token, st.error());
		report_dump(BCK_TRY(std::move(st)), "dumped", *opt, *stats, *json);
		return {};
	};
}

Run add_untrack(CLI::App& root)
{
	auto pid = std::make_shared<pid_t>(0);
	CLI::App* cmd = root.add_subcommand("untrack", "End the write tracking that dump --track-mem armed in a process");
	cmd->add_option("-t,--tree", *pid, "PID of the tracked process")->required();
	set_examples(*cmd, "  bpfckpt untrack -t 1234     its keeper exits; the process runs untracked\n");
	return [pid]() -> Status {
		bool was = BCK_TRY(dump::untrack(*pid));
		fmt::print("pid {}: {}\n", *pid, was ? "tracking ended" : "was not tracked");
		return {};
	};
}

}  // namespace bpfckpt::cli
