// What dump and snap share on the command line: the options beyond the target (tracking, the parent image, fsync)
// and what they print when they are done: a summary line, or --stats in CRIU's names, or --json.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "dump/dump.h"

namespace bpfckpt::cli {

struct ReportFlags {
	bool stats = false;
	bool json = false;
	bool no_fsync = false;
	bool frozen_copy = false;
};

// Adds --track-mem, --prev-images-dir, --frozen-copy, --stats, --json and --no-fsync; finish_dump_options applies the last ones
// to opt once the command line is parsed.
void add_dump_options(CLI::App& cmd, dump::DumpOptions& opt, ReportFlags& flags);
void finish_dump_options(dump::DumpOptions& opt, const ReportFlags& flags);

void report_dump(const dump::DumpStats& st, const std::string& what, const dump::DumpOptions& opt,
		 const ReportFlags& flags);

}  // namespace bpfckpt::cli
