#include "cli/dump_report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace bpfckpt::cli {

namespace {

uint64_t us(double sec) { return uint64_t(sec * 1e6); }

void print_stats(const dump::DumpStats& s)
{
	fmt::print("freezing_time: {} us\nfrozen_time: {} us\nmemdump_time: {} us\nmemwrite_time: {} us\n"
		   "total_time: {} us\npages_scanned: {}\npages_written: {}\n",
		   us(s.freezing_time), us(s.frozen_time), us(s.memdump_time), us(s.memwrite_time), us(s.total_time),
		   s.pages_scanned, s.pages_written);
}

}  // namespace

void add_dump_options(CLI::App& cmd, dump::DumpOptions& opt, ReportFlags& flags)
{
	cmd.add_flag("--track-mem", opt.track_mem,
		     "arm write tracking (userfaultfd WP_ASYNC), so that a later --prev-images-dir dump saves only "
		     "the pages written since this one (use with -R)");
	cmd.add_option("--prev-images-dir", opt.prev_dir,
		       "an earlier image of the same processes taken with --track-mem: save only what was written "
		       "since (an incremental image; restore follows the chain)");
	cmd.add_flag("--frozen-copy", flags.frozen_copy,
		     "with -R: copy all memory while the processes are stopped (default: write-protect it, let them "
		     "run, and copy it while they run, each page before its first write; with --track-mem: copy it "
		     "before stopping them, then read again only what they wrote meanwhile)");
	cmd.add_flag("--stats", flags.stats, "print timings and page counts (CRIU's names, microseconds)");
	cmd.add_flag("--json", flags.json, "print the summary (and --stats) as JSON");
	cmd.add_flag("--no-fsync", flags.no_fsync, "do not fsync the image (faster; not crash-safe)");
}

void finish_dump_options(dump::DumpOptions& opt, const ReportFlags& flags)
{
	opt.fsync = !flags.no_fsync;
	opt.live_copy = !flags.frozen_copy;
	opt.progress = !flags.json;  // a progress line would mix with the JSON a script reads
}

void report_dump(const dump::DumpStats& s, const std::string& what, const dump::DumpOptions& opt,
		 const ReportFlags& flags)
{
	if (flags.json) {
		nlohmann::json j{{"freezing_time", us(s.freezing_time)}, {"frozen_time", us(s.frozen_time)},
				 {"memdump_time", us(s.memdump_time)},   {"memwrite_time", us(s.memwrite_time)},
				 {"total_time", us(s.total_time)},       {"pages_scanned", s.pages_scanned},
				 {"pages_written", s.pages_written},     {"processes", s.processes},
				 {"threads", s.threads},                 {"image_bytes", s.image_bytes},
				 {"images_dir", opt.dir},                {"left_running", opt.leave_running},
				 {"incremental", s.incremental}};
		fmt::print("{}\n", j.dump());
		return;
	}
	fmt::print("{} {} process(es), {} thread(s), {} MiB into {}{}{}\n", what, s.processes, s.threads,
		   s.image_bytes >> 20, opt.dir, s.incremental ? " (incremental)" : "",
		   opt.leave_running ? " (left running)" : "");
	if (flags.stats)
		print_stats(s);
}

}  // namespace bpfckpt::cli
