/*
 * The restore shim: freestanding (no libc, no stack protector, no relocations), copied into a hole of the saved
 * address space. It replaces the restorer's memory with the saved one, recreates the threads, and stops every
 * thread on an int3 where the restorer (their ptracer) sets the saved registers and removes this mapping.
 */
#include "bpfckpt/compat.h"
#include "plan.h"

#define NR_read 0
#define NR_close 3
#define NR_mmap 9
#define NR_mprotect 10
#define NR_munmap 11
#define NR_rt_sigaction 13
#define NR_pread64 17
#define NR_mremap 25
#define NR_madvise 28
#define NR_setitimer 38
#define NR_setgroups 116
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_capset 126
#define NR_getpid 39
#define NR_rt_sigqueueinfo 129
#define NR_sigaltstack 131
#define NR_prctl 157
#define NR_set_tid_address 218
#define NR_timer_create 222
#define NR_timer_settime 223
#define NR_set_robust_list 273
#define NR_rt_tgsigqueueinfo 297
#define NR_rseq 334
#define NR_clone3 435

#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MAP_PRIVATE 2
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define MADV_POPULATE_WRITE 23
#define PR_SET_MM 35
#define PR_SET_MM_MAP 14
#define EINTR 4
#define EEXIST 17

#define CLONE_VM 0x100
#define CLONE_FS 0x200
#define CLONE_FILES 0x400
#define CLONE_SIGHAND 0x800
#define CLONE_THREAD 0x10000
#define CLONE_SYSVSEM 0x40000

typedef unsigned long u64;

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static void *at(struct shim_plan *p, u64 off)
{
	return (char *)p + off;
}

/* Records what failed and parks the thread: the restorer reads plan->error at the stop and gives up. */
static void __attribute__((noreturn)) stop(struct shim_plan *p, long err, u64 step, u64 arg)
{
	p->error = err;
	p->error_step = step;
	p->error_arg = arg;
	for (;;)
		__asm__ volatile("int3");
}

static void check(struct shim_plan *p, long err, u64 step, u64 arg)
{
	if (err < 0)
		stop(p, err, step, arg);
}

static void unmap_restorer(struct shim_plan *p)
{
	struct shim_range *r = at(p, p->unmap_off);

	for (u64 i = 0; i < p->nr_unmap; i++) {
		long e = sys(NR_munmap, r[i].start, r[i].len, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_UNMAP, r[i].start);
	}
}

/* [vvar], [vvar_vclock] and [vdso] move by one delta; moving in the right order keeps them from overlapping. */
static void move_specials(struct shim_plan *p)
{
	struct shim_move *m = at(p, p->moves_off);
	long n = (long)p->nr_moves;
	int up = n > 0 && m[0].to > m[0].from;

	for (long k = 0; k < n; k++) {
		struct shim_move *x = &m[up ? n - 1 - k : k];
		long e;

		if (x->from == x->to)
			continue;
		e = sys6(NR_mremap, (long)x->from, (long)x->len, (long)x->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			 (long)x->to, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_MOVE, x->from);
	}
}

/* Copies pages from the blobs into fresh anonymous (or private file) memory: populated in one call first, since
 * a first-touch fault costs 12-16 us on the machines this runs on, then filled with large reads. Runs that touch
 * (an incremental image's pages amid its parent's) are populated together; the holes between runs never are. */
static void fill(struct shim_plan *p, struct shim_vma *v)
{
	struct shim_run *r = (struct shim_run *)at(p, p->runs_off) + v->first_run;
	u64 populated = 0;

	for (u64 i = 0; i < v->nr_runs; i++) {
		u64 done = 0;

		if (r[i].addr >= populated) {
			u64 end = r[i].addr + r[i].len;

			for (u64 k = i + 1; k < v->nr_runs && r[k].addr == end; k++)
				end += r[k].len;
			sys(NR_madvise, r[i].addr, end - r[i].addr, MADV_POPULATE_WRITE);
			populated = end;
		}
		while (done < r[i].len) {
			long n = sys6(NR_pread64, r[i].fd, (long)(r[i].addr + done), (long)(r[i].len - done),
				      (long)(r[i].blob_offset + done), 0, 0);
			if (n == -EINTR)
				continue;
			if (n <= 0)
				stop(p, n ? n : -5, SHIM_STEP_FILL, r[i].addr + done);
			done += (u64)n;
		}
	}
}

/* Before the fill, so that memory that had huge pages gets them again as it is populated. */
static void advise(struct shim_plan *p, struct shim_vma *v)
{
	static const int advice[5] = {14 /* MADV_HUGEPAGE */, 15 /* MADV_NOHUGEPAGE */, 16 /* MADV_DONTDUMP */,
				      10 /* MADV_DONTFORK */, 18 /* MADV_WIPEONFORK */};

	for (int i = 0; i < 5; i++)
		if (v->advice & (1u << i)) {
			long e = sys(NR_madvise, v->start, v->len, advice[i]);
			if (e < 0)
				stop(p, e, SHIM_STEP_MAP, v->start);
		}
}

static void map_vmas(struct shim_plan *p)
{
	struct shim_vma *v = at(p, p->vmas_off);

	for (u64 i = 0; i < p->nr_vmas; i++) {
		u64 prot = v[i].nr_runs ? (v[i].prot | PROT_READ | PROT_WRITE) : v[i].prot;
		long flags = (long)v[i].flags | MAP_FIXED;
		long addr;

		if (v[i].fd < 0)
			flags |= MAP_ANONYMOUS;
		addr = sys6(NR_mmap, (long)v[i].start, (long)v[i].len, (long)prot, flags, v[i].fd, (long)v[i].offset);
		if (addr != (long)v[i].start)
			stop(p, addr < 0 ? addr : -17, SHIM_STEP_MAP, v[i].start);
		advise(p, &v[i]);
		if (!v[i].nr_runs)
			continue;
		fill(p, &v[i]);
		if (prot != v[i].prot) {
			long e = sys(NR_mprotect, v[i].start, v[i].len, v[i].prot);
			if (e < 0)
				stop(p, e, SHIM_STEP_PROTECT, v[i].start);
		}
	}
}

static void set_mm(struct shim_plan *p)
{
	struct {
		u64 start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
		u64 arg_start, arg_end, env_start, env_end;
		u64 *auxv;
		unsigned auxv_size;
		unsigned exe_fd;
	} map;
	struct shim_mm *m = &p->mm;
	long e;

	map.start_code = m->start_code;
	map.end_code = m->end_code;
	map.start_data = m->start_data;
	map.end_data = m->end_data;
	map.start_brk = m->start_brk;
	map.brk = m->brk;
	map.start_stack = m->start_stack;
	map.arg_start = m->arg_start;
	map.arg_end = m->arg_end;
	map.env_start = m->env_start;
	map.env_end = m->env_end;
	map.auxv = (u64 *)m->auxv;
	map.auxv_size = m->auxv_words * 8;
	map.exe_fd = (unsigned)m->exe_fd;
	e = sys6(NR_prctl, PR_SET_MM, PR_SET_MM_MAP, (long)&map, sizeof(map), 0, 0);
	if (e < 0)
		stop(p, e, SHIM_STEP_MM, 0);
}

static void set_sigactions(struct shim_plan *p)
{
	struct shim_sigaction *s = at(p, p->sigactions_off);

	for (u64 i = 0; i < p->nr_sigactions; i++) {
		u64 act[4] = {s[i].handler, s[i].flags, s[i].restorer, s[i].mask};
		long e = sys6(NR_rt_sigaction, (long)s[i].signo, (long)act, 0, 8, 0, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_SIGACTION, s[i].signo);
	}
}

/* Each capability the saved bounding set lacks; the kernel's last one is the first that gives EINVAL. */
static long drop_bounding(struct shim_creds *c)
{
	for (long cap = 0; cap < 64; cap++) {
		long e;

		if (c->cap_bset & (1ull << cap))
			continue;
		e = sys(NR_prctl, 24 /* PR_CAPBSET_DROP */, cap, 0);
		if (e == -22 /* EINVAL */)
			return 0;
		if (e < 0)
			return e;
	}
	return 0;
}

static long raise_ambient(struct shim_creds *c)
{
	for (long cap = 0; cap < 64; cap++) {
		long e;

		if (!(c->cap_ambient & (1ull << cap)))
			continue;
		e = sys(NR_prctl, 47 /* PR_CAP_AMBIENT */, 2 /* PR_CAP_AMBIENT_RAISE */, cap);
		if (e < 0)
			return e;
	}
	return 0;
}

/* Supplementary groups and group ids first; the bounding set while still root (PR_CAPBSET_DROP needs CAP_SETPCAP);
 * then user ids (with PR_SET_KEEPCAPS, so that a non-root owner's capabilities survive the switch); then the
 * capability sets; the ambient set last: a capability is raised only when permitted and inheritable, and a switch
 * away from root clears the set. */
static void set_creds(struct shim_plan *p)
{
	struct shim_creds *c = &p->creds;
	struct {
		unsigned version;
		int pid;
	} hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
	/* capset's v3 layout: {effective, permitted, inheritable} for the low words, then for the high ones */
	unsigned data[6] = {(unsigned)c->cap_effective, (unsigned)c->cap_permitted, (unsigned)c->cap_inheritable,
			    (unsigned)(c->cap_effective >> 32), (unsigned)(c->cap_permitted >> 32),
			    (unsigned)(c->cap_inheritable >> 32)};

	if (!c->apply)
		return;
	sys6(NR_prctl, 8 /* PR_SET_KEEPCAPS */, 1, 0, 0, 0, 0);
	check(p, sys(NR_setgroups, c->ngroups, c->groups, 0), SHIM_STEP_GROUPS, c->ngroups);
	check(p, sys(NR_setresgid, c->gid, c->egid, c->sgid), SHIM_STEP_CREDS, c->gid);
	check(p, drop_bounding(c), SHIM_STEP_CAPBSET, c->cap_bset);
	check(p, sys(NR_setresuid, c->uid, c->euid, c->suid), SHIM_STEP_CREDS, c->uid);
	check(p, sys(NR_capset, &hdr, data, 0), SHIM_STEP_CREDS, c->cap_permitted);
	check(p, raise_ambient(c), SHIM_STEP_AMBIENT, c->cap_ambient);
	sys6(NR_prctl, 8 /* PR_SET_KEEPCAPS */, 0, 0, 0, 0, 0);
}

static void arm_itimers(struct shim_plan *p)
{
	for (int which = 0; which < 3; which++) {
		struct shim_itimer *t = &p->itimers[which];
		long v[4] = {(long)(t->interval_ns / 1000000000), (long)(t->interval_ns % 1000000000 / 1000),
			     (long)(t->value_ns / 1000000000), (long)(t->value_ns % 1000000000 / 1000)};
		long e;

		if (!t->value_ns)
			continue;
		if (!v[2] && !v[3])
			v[3] = 1; /* less than a microsecond left: still armed, due at once */
		e = sys(NR_setitimer, which, v, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_ITIMER, (u64)which);
	}
}

/* struct sigevent as timer_create reads it: 64 bytes, sigev_notify_thread_id first in the union */
struct kernel_sigevent {
	u64 value;
	int signo;
	int notify;
	int tid;
	int pad[11];
};

/* Each timer with its saved id (PR_TIMER_CREATE_RESTORE_IDS, turned off again at once so that later timer_create
 * calls of the process pick ids as usual), disarmed; after the threads, since SIGEV_THREAD_ID names one. */
static void create_posix_timers(struct shim_plan *p)
{
	struct shim_posix_timer *t = at(p, p->timers_off);
	long e;

	if (!p->nr_timers)
		return;
	e = sys(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0);
	if (e < 0)
		stop(p, e, SHIM_STEP_TIMER, 0);
	for (u64 i = 0; i < p->nr_timers; i++) {
		struct kernel_sigevent ev = {0};
		int id = t[i].id;

		ev.value = t[i].sigval;
		ev.signo = t[i].signo;
		ev.notify = t[i].notify;
		ev.tid = (int)t[i].tid;
		e = sys(NR_timer_create, t[i].clock, &ev, &id);
		if (e >= 0 && id != t[i].id)
			e = -EEXIST;
		if (e < 0)
			stop(p, e, SHIM_STEP_TIMER, (u64)t[i].id);
	}
	sys(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0);
}

/* Every signal blocked meanwhile, they stay queued in their order until the restorer sets the saved masks. */
static void queue_signals(struct shim_plan *p)
{
	struct shim_siginfo *s = at(p, p->siginfos_off);
	long pid = sys(NR_getpid, 0, 0, 0);

	for (u64 i = 0; i < p->nr_siginfos; i++) {
		int signo = *(int *)s[i].info;
		long e;

		if (s[i].tid)
			e = sys6(NR_rt_tgsigqueueinfo, pid, s[i].tid, signo, (long)s[i].info, 0, 0);
		else
			e = sys(NR_rt_sigqueueinfo, pid, signo, s[i].info);
		if (e < 0)
			stop(p, e, SHIM_STEP_SIGQUEUE, (u64)signo);
	}
}

/* Relative to now on each timer's clock, like the itimers: the time between dump and restore does not count. */
static void arm_posix_timers(struct shim_plan *p)
{
	struct shim_posix_timer *t = at(p, p->timers_off);

	for (u64 i = 0; i < p->nr_timers; i++) {
		long v[4] = {(long)(t[i].interval_ns / 1000000000), (long)(t[i].interval_ns % 1000000000),
			     (long)(t[i].value_ns / 1000000000), (long)(t[i].value_ns % 1000000000)};
		long e;

		if (!t[i].value_ns)
			continue;
		e = sys6(NR_timer_settime, t[i].id, 0, (long)v, 0, 0, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_TIMER, (u64)t[i].id);
	}
}

/* What each thread sets for itself; then it parks for the restorer. */
/* Not static: spawn_thread calls it by name from inline assembly. */
void __attribute__((noreturn, used)) thread_finish(struct shim_plan *p, struct shim_thread *t);
void __attribute__((noreturn, used)) thread_finish(struct shim_plan *p, struct shim_thread *t)
{
	u64 ss[3] = {t->ss_sp, t->ss_flags, t->ss_size};

	sys6(NR_prctl, 15 /* PR_SET_NAME */, (long)t->comm, 0, 0, 0, 0);
	sys(NR_set_tid_address, t->clear_child_tid, 0, 0);
	sys(NR_set_robust_list, t->robust_list, 24, 0);
	if (t->ss_size)
		sys(NR_sigaltstack, ss, 0, 0);
	if (t->rseq) {
		long e = sys6(NR_rseq, (long)t->rseq, t->rseq_len, 0, t->rseq_sig, 0, 0);
		if (e < 0)
			stop(p, e, SHIM_STEP_RSEQ, t->tid);
	}
	set_creds(p);
	for (;;)
		__asm__ volatile("int3");
}

struct clone_args_v2 {
	u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* clone3 that starts the child on its own stack in thread_finish(p, t). The child never returns here: it must
 * not touch the parent's stack frame, so it jumps straight into thread_finish with its arguments in registers. */
static long spawn_thread(struct shim_plan *p, struct shim_thread *t)
{
	struct clone_args_v2 args = {0};
	long tid = t->tid;
	long ret;

	args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	args.stack = t->stack_top - 65536;
	args.stack_size = 65536;
	args.set_tid = (u64)&tid;
	args.set_tid_size = 1;
	{
		register long r12 __asm__("r12") = (long)p;
		register long r13 __asm__("r13") = (long)t;
		__asm__ volatile("syscall\n\t"
				 "test %%rax, %%rax\n\t"
				 "jnz 1f\n\t"
				 "mov %%r12, %%rdi\n\t"
				 "mov %%r13, %%rsi\n\t"
				 "and $-16, %%rsp\n\t"
				 "call thread_finish\n\t"
				 "1:"
				 : "=a"(ret)
				 : "a"(NR_clone3), "D"(&args), "S"(sizeof(args)), "r"(r12), "r"(r13)
				 : "rcx", "r11", "memory");
	}
	return ret;
}

void __attribute__((section(".text.entry"), used, noreturn)) shim_main(struct shim_plan *p)
{
	struct shim_thread *t = at(p, p->threads_off);

	if (p->magic != SHIM_PLAN_MAGIC)
		stop(p, -22, SHIM_STEP_NONE, 0);
	unmap_restorer(p);
	move_specials(p);
	map_vmas(p);
	for (int i = 0; i < p->nr_close; i++)
		sys(NR_close, p->close_fds[i], 0, 0);
	set_mm(p);
	if (p->mm.exe_fd >= 0)
		sys(NR_close, p->mm.exe_fd, 0, 0);
	for (u64 i = 0; i < p->nr_page_fds; i++)
		sys(NR_close, ((int *)at(p, p->page_fds_off))[i], 0, 0);
	set_sigactions(p);
	for (u64 i = 1; i < p->nr_threads; i++) {
		long e = spawn_thread(p, &t[i]);
		if (e < 0)
			stop(p, e, SHIM_STEP_THREAD, t[i].tid);
	}
	create_posix_timers(p);
	queue_signals(p);  /* before any timer can fire: the saved signals come first */
	arm_itimers(p);
	arm_posix_timers(p);
	thread_finish(p, &t[0]);
}
