// Freezing a cgroup for a snap, and the promise to undo it. While bpfckpt holds a cgroup frozen, a marker in
// /run/bpfckpt/frozen/<cgroup id> names it and the bpfckpt holding it: if that bpfckpt is killed, `bpfckpt thaw`
// and the next snap of the cgroup see the marker and undo the freeze. A cgroup frozen by someone else (no marker)
// is never thawed behind their back by a snap.
#pragma once

#include <memory>

#include "common/cgroup.h"
#include "common/result.h"

namespace bpfckpt::dump {

class CgroupFreeze {
public:
	// Undoes a freeze left by a dead bpfckpt, refuses a cgroup frozen by someone else (or by a live bpfckpt),
	// then freezes and waits for the kernel's `frozen 1`.
	static Result<std::unique_ptr<CgroupFreeze>> freeze(const cgroup::Cgroup& cg, int timeout_ms);
	~CgroupFreeze();  // thaws, if not done yet

	Status thaw();

private:
	explicit CgroupFreeze(const cgroup::Cgroup& cg) : cg_(cg) {}
	cgroup::Cgroup cg_;
	bool frozen_ = false;
};

struct ThawResult {
	bool was_frozen = false;
	int left_by = 0;  // the pid of the bpfckpt that left it frozen, 0 when no marker named one
};

// `bpfckpt thaw CGROUP`: resets cgroup.freeze to 0 and removes bpfckpt's marker.
Result<ThawResult> thaw_cgroup(const cgroup::Cgroup& cg);

}  // namespace bpfckpt::dump
