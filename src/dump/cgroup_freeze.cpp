#include "dump/cgroup_freeze.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

namespace bpfckpt::dump {

namespace {

constexpr const char* kMarkerDir = "/run/bpfckpt/frozen";

std::string marker_path(const cgroup::Cgroup& cg) { return fmt::format("{}/{}", kMarkerDir, cg.id); }

Status write_marker(const cgroup::Cgroup& cg)
{
	::mkdir("/run/bpfckpt", 0700);
	if (::mkdir(kMarkerDir, 0700) != 0 && errno != EEXIST)
		return fail_sys(errno, "create {}", kMarkerDir);
	return write_file(marker_path(cg), fmt::format("{} {}\n", getpid(), cg.path), 0600);
}

// The pid a marker names, 0 when there is no marker (or it is for a cgroup that reused the id).
int marker_owner(const cgroup::Cgroup& cg)
{
	auto text = read_file(marker_path(cg));
	if (!text)
		return 0;
	int pid = 0;
	char path[4096] = "";
	if (sscanf(text->c_str(), "%d %4095s", &pid, path) != 2 || cg.path != path)
		return 0;
	return pid;
}

bool is_live_bpfckpt(int pid)
{
	if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
		return false;
	auto comm = read_file(fmt::format("/proc/{}/comm", pid));
	return comm && comm->rfind("bpfckpt", 0) == 0;
}

// Before freezing: the cgroup must be thawed, or frozen by a bpfckpt that died holding it.
Status take_over(const cgroup::Cgroup& cg)
{
	bool requested = BCK_TRY(cgroup::freeze_requested(cg));
	if (!requested) {
		if (BCK_TRY(cgroup::is_frozen(cg)))
			return fail(ExitCode::target_busy, "cgroup {}: frozen by an ancestor cgroup; thaw that first", cg.path);
		return {};
	}
	int owner = marker_owner(cg);
	if (owner == 0)
		return fail(ExitCode::target_busy, "cgroup {}: already frozen by someone else (cgroup.freeze is 1); "
			    "thaw it first (bpfckpt thaw {})", cg.path, cg.path);
	if (is_live_bpfckpt(owner))
		return fail(ExitCode::target_busy, "cgroup {}: being snapped by bpfckpt pid {}", cg.path, owner);
	log::warn("cgroup {}: thawing the freeze left by bpfckpt pid {}, which is gone", cg.path, owner);
	BCK_CHECK(cgroup::set_freeze(cg, false));
	::unlink(marker_path(cg).c_str());
	return {};
}

}  // namespace

Result<std::unique_ptr<CgroupFreeze>> CgroupFreeze::freeze(const cgroup::Cgroup& cg, int timeout_ms)
{
	BCK_CHECK(take_over(cg));
	std::unique_ptr<CgroupFreeze> f(new CgroupFreeze(cg));
	BCK_CHECK(write_marker(cg));  // first: a kill between the two writes still leaves the freeze undoable
	f->frozen_ = true;
	BCK_CHECK(cgroup::set_freeze(cg, true));
	BCK_CHECK(cgroup::wait_frozen(cg, timeout_ms));
	return f;
}

Status CgroupFreeze::thaw()
{
	if (!frozen_)
		return {};
	frozen_ = false;
	Status st = cgroup::set_freeze(cg_, false);
	::unlink(marker_path(cg_).c_str());
	return st;
}

CgroupFreeze::~CgroupFreeze()
{
	if (Status st = thaw(); !st)
		log::warn("cgroup {}: could not thaw: {}", cg_.path, st.error().describe());
}

Result<ThawResult> thaw_cgroup(const cgroup::Cgroup& cg)
{
	ThawResult r;
	r.was_frozen = BCK_TRY(cgroup::freeze_requested(cg));
	r.left_by = marker_owner(cg);
	if (is_live_bpfckpt(r.left_by) && r.left_by != getpid())
		return fail(ExitCode::target_busy, "cgroup {}: being snapped by bpfckpt pid {} right now", cg.path,
			    r.left_by);
	BCK_CHECK(cgroup::set_freeze(cg, false));
	::unlink(marker_path(cg).c_str());
	return r;
}

}  // namespace bpfckpt::dump
