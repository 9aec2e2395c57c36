#include "dump/process.h"

#include <sys/sysinfo.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "common/clock.h"
#include "common/xxhash.h"
#include "dump/timers.h"

namespace bpfckpt::dump {

namespace {

const char* const kRlimitNames[BCK_RLIM_NLIMITS] = {
	"cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
	"memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime"};

// __state bits (include/linux/sched.h)
constexpr uint32_t kTaskInterruptible = 0x1, kTaskUninterruptible = 0x2, kTaskStopped = 0x4, kTaskTraced = 0x8;
constexpr uint32_t kExitZombie = 0x20;
constexpr int kMaxRtPrio = 100;  // static_prio = MAX_RT_PRIO + 20 + nice

// Remaining time of an armed hrtimer whose expiry is on `clock`; a timer already due reports 1 ns so that it stays
// armed (and fires at once) after restore.
uint64_t remaining(int64_t expires, clockid_t clock)
{
	int64_t left = expires - clock_now_ns(clock);
	return left > 0 ? uint64_t(left) : 1;
}

// Bits past the CPUs this machine can have (nr_cpu_ids) are not part of the mask.
std::vector<uint32_t> cpu_list(const __u64 (&mask)[BCK_CPUMASK_WORDS])
{
	uint32_t ncpus = uint32_t(std::max(1, get_nprocs_conf()));
	std::vector<uint32_t> cpus;
	for (uint32_t c = 0; c < ncpus && c < BCK_CPUMASK_WORDS * 64; c++)
		if (mask[c / 64] & (1ull << (c % 64)))
			cpus.push_back(c);
	return cpus;
}

image::Thread build_thread(const RawTask& t, uint32_t state_before)
{
	const bck_task& r = t.rec;
	image::Thread th;
	th.tid = r.tid;
	th.comm = std::string(r.comm, strnlen(r.comm, sizeof(r.comm)));
	th.state = task_state_name(state_before, r.exit_state);
	th.sigmask = r.blocked;
	th.pending = r.pending;
	th.sas_ss_sp = r.sas_ss_sp;
	th.sas_ss_size = r.sas_ss_size;
	th.sas_ss_flags = r.sas_ss_flags;
	th.rseq = r.rseq;
	th.rseq_len = r.rseq_len;
	th.rseq_sig = r.rseq_sig;
	th.clear_child_tid = r.clear_child_tid;
	th.robust_list = r.robust_list;
	th.cpus = cpu_list(r.cpus_mask);
	th.policy = r.policy;
	th.nice = r.static_prio - kMaxRtPrio - 20;
	th.rt_priority = r.rt_priority;
	return th;
}

void fill_signals(image::Process& p, const RawTask& t)
{
	const bck_task& r = t.rec;
	p.shared_pending = r.shared_pending;
	if (t.sigactions)
		for (int i = 0; i < BCK_NSIG; i++) {
			const bck_sigaction& a = t.sigactions->act[i];
			if (a.handler || a.flags || a.mask)
				p.sigactions.push_back({i + 1, a.handler, a.flags, a.restorer, a.mask});
		}
	if (r.it_real_armed)
		p.it_real = {remaining(r.it_real_expires, CLOCK_MONOTONIC), r.it_real_incr};
	else
		p.it_real = {0, r.it_real_incr};
	// PROF/VIRT expiries are absolute process CPU time; the target is stopped, so its clock stands still.
	clockid_t cpu_clock;
	int64_t cpu_now = 0;
	if (clock_getcpuclockid(pid_t(r.tgid), &cpu_clock) == 0)
		cpu_now = clock_now_ns(cpu_clock);
	auto cpu_timer = [&](uint64_t expires, uint64_t incr) {
		return image::Itimer{expires ? uint64_t(std::max<int64_t>(int64_t(expires) - cpu_now, 1)) : 0, incr};
	};
	p.it_prof = cpu_timer(r.it_prof_expires, r.it_prof_incr);
	p.it_virt = cpu_timer(r.it_virt_expires, r.it_virt_incr);
	p.posix_timers = build_posix_timers(t);
}

}  // namespace

std::string task_state_name(uint32_t state, uint32_t exit_state)
{
	if (exit_state & kExitZombie)
		return "zombie";
	if (exit_state)
		return "dead";
	if (state & kTaskStopped)
		return "stopped";
	if (state & kTaskTraced)
		return "traced";
	if (state & kTaskUninterruptible)
		return "disk-sleep";
	if (state & kTaskInterruptible)
		return "sleeping";
	return "running";
}

Status check_supported(const RawTask& t)
{
	const bck_task& r = t.rec;
	if (r.seccomp_mode)
		return fail(ExitCode::unsupported, "pid {}: seccomp filter (mode {}): not supported", r.tgid,
			    r.seccomp_mode);
	BCK_CHECK(check_posix_timers(t));
	if (r.ngroups > BCK_MAX_GROUPS)
		return fail(ExitCode::unsupported, "pid {}: {} supplementary groups, more than {}: not supported", r.tgid,
			    r.ngroups, BCK_MAX_GROUPS);
	if (r.exit_state)
		return {};
	if ((r.flags & BCK_TASK_F_HAS_MM) && (!t.exe_seen || t.exe.empty()))
		return fail(ExitCode::unsupported, "pid {}: executable path unresolvable", r.tgid);
	if (!t.cwd_seen || t.cwd.empty() || !t.root_seen || t.root.empty())
		return fail(ExitCode::unsupported, "pid {}: cwd or root path unresolvable", r.tgid);
	return {};
}

uint64_t mm_key_of(const bck_task& r)
{
	return r.mm_id ? XXH3_64bits(&r.mm_id, sizeof(r.mm_id)) : 0;
}

Result<image::Process> build_process(const RawTask& leader, const std::vector<const RawTask*>& threads,
				     const std::map<pid_t, uint32_t>& state_before)
{
	BCK_CHECK(check_supported(leader));
	const bck_task& r = leader.rec;
	image::Process p;
	p.pid = r.tgid;
	p.ppid = r.ppid;
	p.pgid = r.pgid;
	p.sid = r.sid;
	p.start_time = r.start_time;
	p.mm_key = mm_key_of(r);
	p.comm = std::string(r.comm, strnlen(r.comm, sizeof(r.comm)));
	auto before = [&](uint32_t tid) {
		auto it = state_before.find(pid_t(tid));
		return it == state_before.end() ? 0u : it->second;
	};
	std::string st = task_state_name(before(r.tid), r.exit_state);
	p.state = st == "zombie" || st == "dead" ? "zombie" : st == "stopped" ? "stopped" : "alive";
	p.exit_code = r.exit_code;
	p.exe = leader.exe;
	p.cwd = leader.cwd;
	p.root = leader.root;
	p.personality = r.personality;
	p.umask = r.umask;
	p.cgroup_id = r.cgroup_id;
	p.creds = {r.uid, r.euid, r.suid, r.fsuid, r.gid, r.egid, r.sgid, r.fsgid, r.cap_inheritable,
		   r.cap_permitted, r.cap_effective, r.cap_bset, r.cap_ambient, r.securebits,
		   std::vector<uint32_t>(r.groups, r.groups + std::min<uint32_t>(r.ngroups, BCK_MAX_GROUPS))};
	for (int i = 0; i < BCK_RLIM_NLIMITS; i++)
		p.rlimits.push_back({kRlimitNames[i], r.rlim[i].cur, r.rlim[i].max});
	fill_signals(p, leader);
	p.mm = {r.start_code, r.end_code, r.start_data, r.end_data, r.start_brk, r.brk, r.start_stack,
		r.arg_start, r.arg_end, r.env_start, r.env_end, {}};
	for (int i = 0; i + 1 < BCK_AUXV_WORDS; i += 2) {
		p.mm.auxv.push_back(r.auxv[i]);
		p.mm.auxv.push_back(r.auxv[i + 1]);
		if (r.auxv[i] == 0)  // AT_NULL ends the vector
			break;
	}
	if (!(r.flags & BCK_TASK_F_HAS_MM))
		p.mm.auxv.clear();
	for (const RawTask* t : threads)
		p.threads.push_back(build_thread(*t, before(t->rec.tid)));
	return p;
}

}  // namespace bpfckpt::dump
