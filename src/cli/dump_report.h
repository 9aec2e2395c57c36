// What dump and snap print when they are done: a summary line, or --stats in CRIU's names, or --json.
#pragma once

#include <string>

#include "dump/dump.h"

namespace bpfckpt::cli {

void report_dump(const dump::DumpStats& st, const std::string& what, const dump::DumpOptions& opt, bool stats,
		 bool json);

}  // namespace bpfckpt::cli
