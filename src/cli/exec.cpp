// bpfckpt exec [--snap-on-timeout SECONDS] [--snap-on-signal SIG] -D DIR [--cgroup-parent PATH] [--stats] -- CMD...
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "exec/signals.h"
#include "exec/supervise.h"

namespace bpfckpt::cli {

namespace {

// --stats: one JSON line on stderr (stdout is the command's).
void print_snap_stats(const exec::SnapTiming& t)
{
	auto us = [](double s) { return uint64_t(s * 1e6); };
	nlohmann::json j{{"trigger", t.trigger},
			 {"trigger_to_image_time", us(t.trigger_to_image_s)},
			 {"freezing_time", us(t.dump.freezing_time)},
			 {"frozen_time", us(t.dump.frozen_time)},
			 {"memdump_time", us(t.dump.memdump_time)},
			 {"total_time", us(t.dump.total_time)},
			 {"processes", t.dump.processes},
			 {"threads", t.dump.threads},
			 {"image_bytes", t.dump.image_bytes}};
	fmt::print(stderr, "{}\n", j.dump());
}

}  // namespace

Run add_exec(CLI::App& root, int* exit_status)
{
	auto opt = std::make_shared<exec::ExecOptions>();
	auto signal = std::make_shared<std::string>();
	auto stats = std::make_shared<bool>(false);
	CLI::App* cmd = root.add_subcommand(
		"exec", "Run a command in a cgroup of its own; on a timeout or a signal, snap the whole job into an image, "
			"then kill it. Otherwise exit with the command's status");
	cmd->add_option("--snap-on-timeout", opt->timeout_s, "snap the job after SECONDS (a decimal number), exit 124")
		->check(CLI::PositiveNumber);
	cmd->add_option("--snap-on-signal", *signal,
			"snap the job when bpfckpt receives SIG (USR1, SIGUSR2, 10, ...), exit 123; SIGINT/SIGTERM/SIGHUP "
			"are otherwise passed on to the command");
	cmd->add_option("-D,--images-dir", opt->dir,
			"where a snap writes the image (must not exist, or be empty; created only by a snap)")
		->required();
	cmd->add_option("--cgroup-parent", opt->cgroup_parent,
			"create the job's cgroup (bpfckpt-exec-PID) below this cgroup v2 path instead of below the one "
			"bpfckpt is in");
	cmd->add_flag("--stats", *stats, "after a snap, print its timings as one JSON line on stderr (microseconds)");
	cmd->add_option("command", opt->argv, "CMD ARGS...: the job; put it after --")->required();
	cmd->positionals_at_end();
	set_examples(*cmd,
		     "  bpfckpt exec --snap-on-timeout 600 -D /tmp/hang -- make test    snap a hung CI job after 10 min\n"
		     "  bpfckpt exec --snap-on-signal USR1 -D img -- ctest -j4    snap on `kill -USR1 <bpfckpt>`\n"
		     "  bpfckpt restore -D /tmp/hang --pidns                       bring the hang back, live\n"
		     "  bpfckpt core -D /tmp/hang -o cores                          or as core files for gdb\n"
		     "Exit status: the command's (128+N if signal N killed it); 124 timed out and snapped; 123 snapped on\n"
		     "--snap-on-signal; 125 timed out or signalled but no image was written; 126 the command cannot be\n"
		     "executed; 127 not found. When the command exits, whatever it left in its cgroup is killed.\n");
	return [opt, signal, stats, exit_status]() -> Status {
		if (!signal->empty())
			opt->snap_signal = BCK_TRY(context(exec::parse_signal(*signal), "--snap-on-signal"));
		exec::ExecOutcome out = BCK_TRY(exec::run_exec(*opt));
		if (!out.message.empty())
			fmt::print(stderr, "bpfckpt exec: {}{}\n", out.is_error ? "error: " : "", out.message);
		if (*stats && out.snap)
			print_snap_stats(*out.snap);
		*exit_status = out.exit_status;
		return {};
	};
}

}  // namespace bpfckpt::cli
