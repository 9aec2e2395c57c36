// bpfckpt dump -t PID -D DIR [-R] [--stats] [--json]
#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "dump/dump.h"

namespace bpfckpt::cli {

namespace {

void print_stats(const dump::DumpStats& s, bool json)
{
	auto us = [](double sec) { return uint64_t(sec * 1e6); };
	if (json) {
		nlohmann::json j{{"freezing_time", us(s.freezing_time)}, {"frozen_time", us(s.frozen_time)},
				 {"memdump_time", us(s.memdump_time)},   {"memwrite_time", us(s.memwrite_time)},
				 {"total_time", us(s.total_time)},       {"pages_scanned", s.pages_scanned},
				 {"pages_written", s.pages_written},     {"processes", s.processes},
				 {"threads", s.threads},                 {"image_bytes", s.image_bytes}};
		fmt::print("{}\n", j.dump());
		return;
	}
	fmt::print("freezing_time: {} us\nfrozen_time: {} us\nmemdump_time: {} us\nmemwrite_time: {} us\n"
		   "total_time: {} us\npages_scanned: {}\npages_written: {}\n",
		   us(s.freezing_time), us(s.frozen_time), us(s.memdump_time), us(s.memwrite_time), us(s.total_time),
		   s.pages_scanned, s.pages_written);
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
	cmd->add_flag("--stats", *stats, "print timings and page counts (CRIU's names, microseconds)");
	cmd->add_flag("--json", *json, "print the summary (and --stats) as JSON");
	cmd->add_flag("--no-fsync", *no_fsync, "do not fsync the image (faster; not crash-safe)");
	set_examples(*cmd, "  bpfckpt dump -t 1234 -D /var/tmp/img       dump the tree under 1234, then kill it\n"
			   "  bpfckpt dump -t 1234 -D img -R --stats     dump it and let it run on, print timings\n");
	return [opt, stats, json, no_fsync]() -> Status {
		opt->fsync = !*no_fsync;
		opt->progress = !*json;
		auto st = BCK_TRY(dump::dump_tree(*opt));
		if (*json) {
			print_stats(st, true);
			return {};
		}
		fmt::print("dumped {} process(es), {} thread(s), {} MiB into {}{}\n", st.processes, st.threads,
			   st.image_bytes >> 20, opt->dir, opt->leave_running ? " (left running)" : "");
		if (*stats)
			print_stats(st, false);
		return {};
	};
}

}  // namespace bpfckpt::cli
