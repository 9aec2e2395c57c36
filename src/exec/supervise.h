// `bpfckpt exec`: runs a command in a cgroup of its own and, on a timeout or a signal, snaps that whole cgroup into
// an image directory before killing it. Otherwise it only passes the command's exit status through.
//
// Exit statuses (README.md, "bpfckpt exec"), beside the command's own (128+N when a signal N killed it):
//   124  timed out; the image is in DIR, the job was killed
//   123  --snap-on-signal came; the image is in DIR, the job was killed
//   125  timed out or signalled, but no image was written (the snap failed, or the job holds a nested bpfckpt);
//        the job was killed
//   126  the command was found but could not be executed
//   127  the command was not found
// Refusals before the command runs (DIR not empty, no cgroup v2, bad options) use bpfckpt's exit codes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "dump/dump.h"

namespace bpfckpt::exec {

inline constexpr int kExitSnappedOnSignal = 123;
inline constexpr int kExitTimedOut = 124;
inline constexpr int kExitNoImage = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

struct ExecOptions {
	std::vector<std::string> argv;  // CMD ARGS...
	std::string dir;                // -D: where a snap goes; created only by a snap
	std::string cgroup_parent;      // "" for the cgroup bpfckpt is in
	double timeout_s = 0;           // --snap-on-timeout; 0 for none
	int snap_signal = 0;            // --snap-on-signal; 0 for none
};

// What a snap took: from the trigger (the deadline, or the signal read) until the image was on disk and the job
// killed.
struct SnapTiming {
	std::string trigger;  // "timeout" or the signal's name
	double trigger_to_image_s = 0;
	dump::DumpStats dump;
};

struct ExecOutcome {
	int exit_status = 0;
	std::string message;  // one line for stderr; empty when the command simply finished
	bool is_error = false;
	std::optional<SnapTiming> snap;
};

// Runs the job to its end. Errors are what was refused before the command ran; anything after is an outcome.
Result<ExecOutcome> run_exec(const ExecOptions& opt);

}  // namespace bpfckpt::exec
