#include "dump/timers.h"

#include <signal.h>
#include <time.h>

#include "common/clock.h"

namespace bpfckpt::dump {

namespace {

// The kernel keeps a CPU-time timer's clock encoded (include/linux/posix-timers_types.h): a CLOCK_PROCESS_CPUTIME_ID
// timer has it_clock make_process_cpuclock(0, CPUCLOCK_SCHED) = -6, a thread's -2, another process's its pid.
// The process's own CPU clock is kept: the CPU time left is saved, and re-armed relative on the restored process's
// clock it comes due after that much more CPU time, as before. A thread's CPU clock would need each timer created
// by its thread, another process's names a process that may not come back: both are refused.
constexpr int32_t kOwnProcessCpuClock = -6;

// The clocks restore re-creates timers on: the hrtimer clocks, and the process's own CPU clock.
bool supported_clock(int32_t clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC || clock == kOwnProcessCpuClock ||
	       clock == CLOCK_BOOTTIME || clock == CLOCK_TAI;
}

// As timer_create() takes it.
int32_t user_clock(int32_t clock) { return clock == kOwnProcessCpuClock ? CLOCK_PROCESS_CPUTIME_ID : clock; }

// SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID: what k_itimer.it_sigev_notify holds (glibc's SIGEV_THREAD arrives
// as SIGEV_THREAD_ID to its helper thread).
bool supported_notify(int32_t notify)
{
	return notify == SIGEV_SIGNAL || notify == SIGEV_NONE || notify == SIGEV_THREAD_ID;
}

// Now on the clock the record's expiry is on. The target is stopped: its CPU clock stands still while we read it.
int64_t now_for(const bck_posix_timer& pt)
{
	if (pt.expires_clock != kOwnProcessCpuClock)
		return clock_now_ns(pt.expires_clock);
	clockid_t cpu;
	return clock_getcpuclockid(pid_t(pt.tgid), &cpu) == 0 ? clock_now_ns(cpu) : 0;
}

// Time left until the next expiry, with the kernel's timer_gettime() rules (common_timer_get). Restore re-arms it
// relative to now, so the time the process spent dumped does not count (as for the itimers), and a CLOCK_REALTIME
// timer set for an absolute time comes back relative: a later change of the clock no longer moves it. A periodic
// timer whose expiry passed (while its signal waits to be delivered, the kernel leaves it unarmed until then) is due
// at its next period, as the kernel's forwarding would make it; a one-shot signalling timer that is due but not yet
// fired reports 1 ns, so it fires at once after the restore; an expired one-shot SIGEV_NONE timer is disarmed.
// Overrun counts cannot be set by any syscall: a restored timer starts with none.
uint64_t time_left(const bck_posix_timer& pt)
{
	bool none = pt.sigev_notify == SIGEV_NONE;
	if (pt.status == BCK_TIMER_DISARMED && !none)
		return 0;
	if (none && pt.expires == 0)
		return 0;  // never armed
	int64_t left = pt.expires - now_for(pt);
	if (left > 0)
		return uint64_t(left);
	if (pt.interval_ns)
		return pt.interval_ns - uint64_t(-left) % pt.interval_ns;
	return none ? 0 : 1;
}

}  // namespace

Status check_posix_timers(const RawTask& t)
{
	const bck_task& r = t.rec;
	if (r.posix_timers_total > r.nr_posix_timers)
		return fail(ExitCode::unsupported, "pid {}: more than {} POSIX timers: not supported", r.tgid,
			    BCK_MAX_POSIX_TIMERS);
	for (const bck_posix_timer& pt : t.timers) {
		if (!supported_clock(pt.clock))
			return fail(ExitCode::unsupported,
				    "pid {}: POSIX timer {} on clock {} (an alarm clock, or a thread's or another "
				    "process's CPU clock): not supported", r.tgid, pt.id, pt.clock);
		if (!supported_notify(pt.sigev_notify))
			return fail(ExitCode::unsupported, "pid {}: POSIX timer {} with sigev_notify {}: not supported",
				    r.tgid, pt.id, pt.sigev_notify);
	}
	return {};
}

std::vector<image::PosixTimer> build_posix_timers(const RawTask& t)
{
	std::vector<image::PosixTimer> out;
	for (const bck_posix_timer& pt : t.timers) {
		uint32_t tid = pt.sigev_notify == SIGEV_THREAD_ID ? pt.target_tid : 0;
		out.push_back({pt.id, user_clock(pt.clock), pt.sigev_notify, pt.signo, tid, pt.sigval, time_left(pt),
			       pt.interval_ns});
	}
	return out;
}

}  // namespace bpfckpt::dump
