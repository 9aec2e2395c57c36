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

void report_dump(const dump::DumpStats& s, const std::string& what, const dump::DumpOptions& opt, bool stats,
		 bool json)
{
	if (json) {
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
	if (stats)
		print_stats(s);
}

}  // namespace bpfckpt::cli
