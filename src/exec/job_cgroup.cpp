#include "exec/job_cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/log.h"

namespace bpfckpt::exec {

namespace {

Result<cgroup::Cgroup> parent_cgroup(const std::string& parent)
{
	if (!parent.empty())
		return context(cgroup::resolve(parent), "--cgroup-parent");
	std::string mount = BCK_TRY(cgroup::v2_mount());
	std::string self = BCK_TRY(cgroup::path_of(getpid()));
	return cgroup::resolve(self == "/" ? mount : mount + self);
}

// mkdir of the job's cgroup. A directory of that name is left by an earlier bpfckpt exec that had our PID and was
// killed with SIGKILL: taken over when it is empty (rmdir succeeds only then), refused otherwise.
Status make_dir(const std::string& dir)
{
	if (::mkdir(dir.c_str(), 0755) == 0)
		return {};
	if (errno == EEXIST && ::rmdir(dir.c_str()) == 0 && ::mkdir(dir.c_str(), 0755) == 0)
		return {};
	if (errno == EEXIST || errno == EBUSY || errno == ENOTEMPTY)
		return fail(ExitCode::target_busy, "cgroup {}: exists and is in use (left by an earlier bpfckpt exec "
			    "that had this PID?)", dir);
	return fail_sys(errno, "create cgroup {}", dir);
}

}  // namespace

Result<std::unique_ptr<JobCgroup>> JobCgroup::create(const std::string& parent)
{
	cgroup::Cgroup up = BCK_TRY(parent_cgroup(parent));
	std::string dir = fmt::format("{}/bpfckpt-exec-{}", up.dir(), getpid());
	BCK_CHECK(make_dir(dir));
	auto cg = cgroup::resolve(dir);
	if (!cg) {
		::rmdir(dir.c_str());
		return std::unexpected(cg.error());
	}
	return std::unique_ptr<JobCgroup>(new JobCgroup(std::move(*cg)));
}

JobCgroup::~JobCgroup()
{
	if (removed_)
		return;
	if (Status st = kill_and_wait(10000); !st)
		log::warn("{}", st.error().describe());
	if (Status st = remove(); !st)
		log::warn("{}", st.error().describe());
}

Status JobCgroup::kill_and_wait(int timeout_ms)
{
	// cgroup.events signals every change of `populated` with POLLPRI; each wake-up re-reads it.
	UniqueFd events(::open(cg_.file("cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
	if (!events)
		return fail_sys(errno, "open {}", cg_.file("cgroup.events"));
	if (!BCK_TRY(cgroup::populated(cg_)))
		return {};
	BCK_CHECK(cgroup::kill_all(cg_));
	double deadline = now_s() + timeout_ms / 1000.0;
	while (BCK_TRY(cgroup::populated(cg_))) {
		double left = deadline - now_s();
		if (left <= 0)
			return fail(ExitCode::target_busy, "cgroup {}: still populated {} ms after cgroup.kill (a task stuck "
				    "in the kernel?)", cg_.path, timeout_ms);
		pollfd p{events.get(), POLLPRI, 0};
		::poll(&p, 1, int(left * 1000) + 1);
	}
	return {};
}

Status JobCgroup::remove()
{
	removed_ = true;  // once: the destructor does not try again
	std::vector<cgroup::Member> members = BCK_TRY(cgroup::subtree(cg_));
	for (auto it = members.rbegin(); it != members.rend(); ++it) {
		std::string dir = it->rel.empty() ? cg_.dir() : cg_.dir() + "/" + it->rel;
		// The last tasks leave `populated` a moment before the kernel lets the directory go: a few retries.
		int tries = 0;
		while (::rmdir(dir.c_str()) != 0) {
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || ++tries == 100)
				return fail_sys(errno, "remove cgroup {}", dir);
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
	}
	return {};
}

Result<std::vector<pid_t>> JobCgroup::processes() const
{
	std::vector<pid_t> pids;
	for (const cgroup::Member& m : BCK_TRY(cgroup::subtree(cg_))) {
		std::string procs = (m.rel.empty() ? cg_.dir() : cg_.dir() + "/" + m.rel) + "/cgroup.procs";
		auto text = read_file(procs);
		if (!text && text.error().err == ENOENT)
			continue;  // removed since the walk
		std::istringstream in(BCK_TRY(std::move(text)));
		for (pid_t pid; in >> pid;)
			pids.push_back(pid);
	}
	return pids;
}

}  // namespace bpfckpt::exec
