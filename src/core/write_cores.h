// bpfckpt core: an image's processes as ELF core files OUT/core.<pid>, one per process, for gdb.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace bpfckpt::core {

struct CoreOptions {
	std::string dir;                // the image
	std::string out;                // created 0700 when missing
	std::optional<uint32_t> pid;    // only this process; one that is not in the image is ExitCode::no_target
};

struct CoreResult {
	uint32_t pid = 0;
	std::string path;       // OUT/core.<pid>
	std::string exe;        // what to give gdb with it
	size_t threads = 0;
	size_t mappings = 0;
	uint64_t size = 0;      // of the file, holes included
	uint64_t bytes_written = 0;
};

struct CoresReport {
	std::vector<CoreResult> cores;
	std::vector<uint32_t> zombies;  // processes with no memory or registers left: no core
	double seconds = 0;             // loading the image included
};

// Loads and validates the image (checksums too), then writes each core under a temporary name in OUT and renames it
// into place (mode 0600; an older core.<pid> is replaced), so that a failure never leaves half a core.
Result<CoresReport> write_cores(const CoreOptions& opt);

}  // namespace bpfckpt::core
