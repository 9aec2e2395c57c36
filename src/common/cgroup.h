// cgroup v2 through its filesystem: finding the mount, naming a cgroup, the freezer, cgroup.kill, creating a path
// and moving a process into it. Used by snap (freeze/kill) and restore (put processes back).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace bpfckpt::cgroup {

struct Cgroup {
	std::string mount;  // where cgroup2 is mounted, e.g. /sys/fs/cgroup/unified
	std::string path;   // below the mount, starting with '/': "/ci/job1"; "/" is the root cgroup
	uint64_t id = 0;    // the directory's inode number: what BPF's bpf_cgroup_from_id takes

	std::string dir() const { return path == "/" ? mount : mount + path; }
	std::string file(const char* name) const { return dir() + "/" + name; }
};

// The cgroup2 mount, from /proc/self/mountinfo (never assumed).
Result<std::string> v2_mount();

// ARG is a path under the cgroup2 mount, absolute ("/sys/fs/cgroup/unified/ci/job1") or relative to the mount
// ("ci/job1", "/ci/job1"). Refuses what is not a cgroup v2 directory (a v1 hierarchy included) with a reason.
Result<Cgroup> resolve(const std::string& arg);

// The cgroup v2 path a process is in ("0::/path" in /proc/PID/cgroup).
Result<std::string> path_of(pid_t pid);

// True when `inner` is `outer` or below it.
bool is_within(const std::string& inner, const std::string& outer);

// The cgroup and all its descendants, parents first, as paths relative to it ("" for itself) with their ids.
struct Member {
	std::string rel;
	uint64_t id = 0;
};
Result<std::vector<Member>> subtree(const Cgroup& cg);

// cgroup.freeze and the `frozen` key of cgroup.events.
Status set_freeze(const Cgroup& cg, bool frozen);
Result<bool> freeze_requested(const Cgroup& cg);
Result<bool> is_frozen(const Cgroup& cg);
// Whether pid's cgroup or an ancestor asks for a freeze (cgroup.events keeps saying `frozen 1` for a while after a
// thaw, so this asks cgroup.freeze). False when it cannot be told (no cgroup v2).
bool process_held_frozen(pid_t pid);
// Waits (poll on cgroup.events) until the kernel reports `frozen 1`.
Status wait_frozen(const Cgroup& cg, int timeout_ms);
// cgroup.kill: SIGKILL to every process in the subtree, including ones that joined after a freeze.
Status kill_all(const Cgroup& cg);
// Whether any process is in the subtree (cgroup.events `populated`).
Result<bool> populated(const Cgroup& cg);

// mkdir -p of `path` below the mount; returns the directories it created, outermost first.
Result<std::vector<std::string>> create(const std::string& mount, const std::string& path);
// Moves the calling process into the cgroup at mount + path.
Status enter(const std::string& mount, const std::string& path);

}  // namespace bpfckpt::cgroup
