#include "dump/watch.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <cmath>
#include <deque>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "dump/collector.h"
#include "dump/dump.h"
#include "dump/track.h"
#include "image/flatten.h"

namespace bpfckpt::dump {

namespace {

// A full disk or a passing error costs one snapshot; this many in a row end the watch.
constexpr int kMaxFailuresInARow = 3;

// UTC with milliseconds, sortable: 20261125T102820.123Z.
std::string snapshot_name()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	tm t;
	gmtime_r(&ts.tv_sec, &t);
	char buf[32];
	strftime(buf, sizeof(buf), "%Y%m%dT%H%M%S", &t);
	return fmt::format("{}.{:03}Z", buf, ts.tv_nsec / 1000000);
}

void report(const WatchOptions& opt, const std::string& name, const DumpStats& st, size_t kept)
{
	if (opt.json) {
		nlohmann::json j{{"snapshot", name},
				 {"kind", st.incremental ? "incremental" : "full"},
				 {"frozen_time", uint64_t(st.frozen_time * 1e6)},
				 {"pages_written", st.pages_written},
				 {"bytes", st.image_bytes},
				 {"processes", st.processes},
				 {"kept", kept}};
		fmt::print("{}\n", j.dump());
	} else {
		fmt::print("{}  {:<11}  frozen {:7.1f} ms  {:8} pages  {:8.1f} MiB  ({} kept)\n", name,
			   st.incremental ? "incremental" : "full", st.frozen_time * 1e3, st.pages_written,
			   double(st.image_bytes) / (1 << 20), kept);
	}
	fflush(stdout);
}

class Watcher {
public:
	explicit Watcher(const WatchOptions& opt) : opt_(opt) {}
	Status run();

private:
	Result<DumpStats> take(const std::string& name);
	void prune();
	void untrack_all();

	const WatchOptions& opt_;
	std::unique_ptr<Collector> collector_;  // loaded once: reloading took ~20 ms of CPU per snapshot
	std::deque<std::string> kept_;  // snapshot names, oldest first
	unsigned since_full_ = 0;
	std::vector<pid_t> pids_;       // the processes of the last snapshot
};

Result<DumpStats> Watcher::take(const std::string& name)
{
	DumpOptions o;
	o.pid = opt_.pid;
	o.cgroup = opt_.cgroup;
	o.dir = opt_.dir + "/" + name;
	o.leave_running = true;
	o.track_mem = true;
	o.fsync = opt_.fsync;
	o.progress = false;
	o.collector = collector_.get();
	bool want_full = opt_.full_every && since_full_ + 1 >= opt_.full_every;
	if (!kept_.empty() && !want_full)
		o.prev_dir = opt_.dir + "/" + kept_.back();
	return opt_.cgroup.empty() ? dump_tree(o) : snap_cgroup(o);
}

// The oldest snapshot goes; its child, if it inherits from it, is flattened first so that it stands alone.
void Watcher::prune()
{
	while (opt_.keep && kept_.size() > opt_.keep) {
		std::string oldest = opt_.dir + "/" + kept_[0];
		if (Status st = image::flatten_image(opt_.dir + "/" + kept_[1]); !st) {
			log::warn("watch: cannot prune {}: {} (kept)", oldest, st.error().describe());
			return;
		}
		std::error_code ec;
		std::filesystem::remove_all(oldest, ec);
		kept_.pop_front();
	}
}

void Watcher::untrack_all()
{
	for (pid_t pid : pids_)
		(void)untrack(pid);
}

Status Watcher::run()
{
	sigset_t stop;
	sigemptyset(&stop);
	for (int sig : {SIGINT, SIGTERM, SIGHUP})
		sigaddset(&stop, sig);
	collector_ = BCK_TRY(load_collector());
	sigset_t old;
	sigprocmask(SIG_BLOCK, &stop, &old);
	int failures = 0;
	Status result;
	for (double next = now_s();; ) {
		std::string name = snapshot_name();
		auto st = take(name);
		if (!st && st.error().exit == ExitCode::interrupted)
			break;
		if (!st) {
			// The target is gone, or nothing can be done about it: the watch ends with that error.
			if (st.error().exit == ExitCode::no_target || ++failures >= kMaxFailuresInARow) {
				result = std::unexpected(st.error());
				break;
			}
			log::warn("watch: snapshot {} failed: {}", name, st.error().describe());
		} else {
			failures = 0;
			kept_.push_back(name);
			since_full_ = st->incremental ? since_full_ + 1 : 0;
			pids_ = st->pids;
			prune();
			report(opt_, name, *st, kept_.size());
		}
		next += opt_.interval;
		double wait = std::max(0.0, next - now_s());
		timespec ts{time_t(wait), long(std::fmod(wait, 1.0) * 1e9)};
		if (sigtimedwait(&stop, nullptr, &ts) > 0)
			break;
		next = std::max(next, now_s() - opt_.interval);  // a slow snapshot shifts the schedule, never bunches it
	}
	untrack_all();
	sigprocmask(SIG_SETMASK, &old, nullptr);
	return result;
}

}  // namespace

Status watch(const WatchOptions& opt)
{
	if (opt.interval <= 0)
		return fail(ExitCode::usage, "--interval {}: must be more than 0 seconds", opt.interval);
	if (::mkdir(opt.dir.c_str(), 0700) != 0 && errno != EEXIST)
		return fail_sys(errno, "create {}", opt.dir);
	Watcher w(opt);
	return w.run();
}

}  // namespace bpfckpt::dump
