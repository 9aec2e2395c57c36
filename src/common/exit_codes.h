// Distinct exit codes, so scripts can tell why bpfckpt failed. Documented in README.md ("Exit codes").
#pragma once

namespace bpfckpt {

enum class ExitCode : int {
	ok = 0,
	failure = 1,         // an error with no better class
	usage = 2,           // bad command line
	no_target = 3,       // the target does not exist, or may not be dumped (pid 1, kernel thread, ourselves)
	permission = 4,      // missing privilege or capability
	target_busy = 5,     // traced by someone else, changed or exited while being dumped
	unsupported = 6,     // the target holds state bpfckpt cannot save yet
	io = 7,              // the image could not be written or read (disk full, exists, permissions)
	bad_image = 8,       // the image is corrupt, hostile or of another format version
	kernel = 9,          // the kernel lacks a feature bpfckpt needs
	interrupted = 10,    // SIGINT/SIGTERM/SIGHUP stopped it; whatever it froze runs on, nothing half-written stays
};

}  // namespace bpfckpt
