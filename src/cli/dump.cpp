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
	auto flags = std::make_shared<ReportFlags>();
	auto no_children = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand("dump", "Dump a process and all its descendants into an image directory");
	cmd->add_option("-t,--tree", opt->pid, "PID of the root of the tree to dump")->required();
	cmd->add_option("-D,--images-dir", opt->dir, "image directory to create (must not exist, or be empty)")
		->required();
	cmd->add_flag("-R,--leave-running", opt->leave_running, "let the tree run on after the dump (default: kill it)");
	cmd->add_flag("--no-children", *no_children, "dump the process alone, not its descendants");
	add_dump_options(*cmd, *opt, *flags);
	auto self_token = std::make_shared<std::string>();
	cmd->add_option("--self-token", *self_token, "R:W, the target's pipe fds (libbpfckpt's bpfckpt_checkpoint_self)")
		->group("");
	set_examples(*cmd, "  bpfckpt dump -t 1234 -D /var/tmp/img       dump the tree under 1234, then kill it\n"
			   "  bpfckpt dump -t 1234 -D img -R --stats     dump it and let it run on, print timings\n"
			   "  bpfckpt dump -t 1234 -D img --no-children  dump 1234 alone (its children run on)\n"
			   "  bpfckpt dump -t 1234 -D full -R --track-mem                       a full image; tracking armed\n"
			   "  bpfckpt dump -t 1234 -D inc1 -R --track-mem --prev-images-dir full   only what changed since\n");
	return [opt, flags, no_children, self_token]() -> Status {
		finish_dump_options(*opt, *flags);
		opt->children = !*no_children;
		if (!self_token->empty())
			opt->self_token = BCK_TRY(parse_self_token(*self_token));
		auto st = dump::dump_tree(*opt);
		if (!st && opt->self_token)
			dump::report_self_failure(opt->pid, *opt->self_token, st.error());
		report_dump(BCK_TRY(std::move(st)), "dumped", *opt, *flags);
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
