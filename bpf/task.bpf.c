// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* iter/task: one bck_task per target thread; the leader's is followed by its sigactions, posix timers and paths. */
#include "path_walk.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bck_task);
} task_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bck_sigactions);
} sigaction_scratch SEC(".maps");

#define HRTIMER_STATE_ENQUEUED 0x01

static const struct bck_task empty_task;

#define BCK_MAX_ANCESTRY 64

/*
 * The discovery filters walk up to BCK_MAX_ANCESTRY levels. Each walk is a bpf_loop callback, so the verifier
 * checks one step, not 64 unrolled ones: as loops, the two walks were most of the instructions it processed for
 * this program, and load time is a dump's largest fixed cost.
 */
struct ancestry_walk {
	struct task_struct *task;
	struct cgroup *cgroup;
	bool found;
};

/* One step up the real_parent tree: stops at root (found), at init, or at a task with no parent. */
static long descendant_step(__u64 i, void *ctx)
{
	struct ancestry_walk *w = ctx;
	struct task_struct *task = w->task;
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (tgid == filter_tgid) {
		w->found = true;
		return 1;
	}
	if (tgid <= 1)
		return 1;
	w->task = BPF_CORE_READ(task, real_parent);
	return w->task ? 0 : 1;
}

/*
 * One step up the cgroup v2 tree: in the subtree whose root has id filter_cgroup_id when the task's cgroup or
 * an ancestor is that cgroup. A walk up self.parent, not the bpf_cgroup_from_id/bpf_task_under_cgroup kfuncs: a
 * light skeleton's loader leaves __weak kfuncs unresolved.
 */
static long cgroup_step(__u64 i, void *ctx)
{
	struct ancestry_walk *w = ctx;
	struct cgroup *cg = w->cgroup;

	if (!cg)
		return 1;
	if (BPF_CORE_READ(cg, kn, id) == filter_cgroup_id) {
		w->found = true;
		return 1;
	}
	/* self is a cgroup's first member: its parent css is the parent cgroup */
	w->cgroup = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	return 0;
}

static __always_inline bool is_target(struct task_struct *task)
{
	struct ancestry_walk w = {.task = task};

	switch (filter_mode) {
	case BCK_FILTER_TGID_SET:
		return is_frozen_target(task);
	case BCK_FILTER_DESCENDANTS:
		bpf_loop(BCK_MAX_ANCESTRY, descendant_step, &w, 0);
		return w.found;
	case BCK_FILTER_CGROUP:
		w.cgroup = BPF_CORE_READ(task, cgroups, dfl_cgrp);
		bpf_loop(BCK_MAX_ANCESTRY, cgroup_step, &w, 0);
		return w.found;
	}
	return false;
}

static __always_inline __u32 pid_nr(struct pid *pid)
{
	return pid ? BPF_CORE_READ(pid, numbers[0].nr) : 0;
}

/* group_info ends in a flexible array of ngroups gids: read no more of it than it has. */
static __always_inline void fill_groups(struct bck_task *r, const struct cred *c)
{
	struct group_info *gi = BPF_CORE_READ(c, group_info);
	__u32 n;

	if (!gi)
		return;
	n = BPF_CORE_READ(gi, ngroups);
	r->ngroups = n;
	if (n > BCK_MAX_GROUPS)
		n = BCK_MAX_GROUPS;
	bpf_probe_read_kernel(r->groups, n * sizeof(__u32), (void *)gi + bpf_core_field_offset(struct group_info, gid));
}

static __always_inline void fill_creds(struct bck_task *r, struct task_struct *task)
{
	const struct cred *c = task->cred;

	r->uid = c->uid.val;
	r->euid = c->euid.val;
	r->suid = c->suid.val;
	r->fsuid = c->fsuid.val;
	r->gid = c->gid.val;
	r->egid = c->egid.val;
	r->sgid = c->sgid.val;
	r->fsgid = c->fsgid.val;
	r->securebits = c->securebits;
	r->cap_inheritable = c->cap_inheritable.val;
	r->cap_permitted = c->cap_permitted.val;
	r->cap_effective = c->cap_effective.val;
	r->cap_bset = c->cap_bset.val;
	r->cap_ambient = c->cap_ambient.val;
	fill_groups(r, c);
}

static __always_inline void fill_signals(struct bck_task *r, struct task_struct *task)
{
	struct signal_struct *sig = task->signal;

	r->blocked = task->blocked.sig[0];
	r->pending = task->pending.signal.sig[0];
	r->shared_pending = sig->shared_pending.signal.sig[0];
	r->sas_ss_sp = task->sas_ss_sp;
	r->sas_ss_size = task->sas_ss_size;
	r->sas_ss_flags = task->sas_ss_flags;
	r->pgid = pid_nr(sig->pids[PIDTYPE_PGID]);
	r->sid = pid_nr(sig->pids[PIDTYPE_SID]);
	r->nr_threads = sig->nr_threads;
	bpf_probe_read_kernel(r->rlim, sizeof(r->rlim), &sig->rlim);

	r->it_real_incr = sig->it_real_incr;
	r->it_real_expires = sig->real_timer.node.expires;
	r->it_real_armed = sig->real_timer.state & HRTIMER_STATE_ENQUEUED;
	r->it_prof_expires = sig->it[0].expires;
	r->it_prof_incr = sig->it[0].incr;
	r->it_virt_expires = sig->it[1].expires;
	r->it_virt_incr = sig->it[1].incr;
}

static __always_inline void fill_mm(struct bck_task *r, struct task_struct *task)
{
	struct mm_struct *mm = task->mm;

	r->mm_id = (__u64)mm;
	if (!mm)
		return;
	r->flags |= BCK_TASK_F_HAS_MM;
	r->start_code = mm->start_code;
	r->end_code = mm->end_code;
	r->start_data = mm->start_data;
	r->end_data = mm->end_data;
	r->start_brk = mm->start_brk;
	r->brk = mm->brk;
	r->start_stack = mm->start_stack;
	r->arg_start = mm->arg_start;
	r->arg_end = mm->arg_end;
	r->env_start = mm->env_start;
	r->env_end = mm->env_end;
	r->vdso = (__u64)mm->context.vdso;
	r->map_count = mm->map_count;
	bpf_probe_read_kernel(r->auxv, sizeof(r->auxv), &mm->saved_auxv);
}

static __always_inline void emit_sigactions(struct seq_file *seq, struct task_struct *task)
{
	__u32 zero = 0;
	struct bck_sigactions *r = bpf_map_lookup_elem(&sigaction_scratch, &zero);
	struct sighand_struct *sh = BPF_CORE_READ(task, sighand);

	if (!r || !sh)
		return;
	r->hdr.kind = BCK_REC_SIGACTIONS;
	r->hdr.tag = 0;
	r->hdr.size = sizeof(*r);
	r->tgid = task->tgid;
	/* struct k_sigaction is {handler, flags, restorer, mask} on x86_64, exactly bck_sigaction: one read of the
	 * whole table instead of 256 small ones (a quarter of the iterator's time per process). */
	if (bpf_core_type_size(struct k_sigaction) == sizeof(struct bck_sigaction)) {
		bpf_probe_read_kernel(r->act, sizeof(r->act), &sh->action);
	} else {
		for (int i = 0; i < BCK_NSIG; i++) {
			struct k_sigaction *ka = &sh->action[i];

			r->act[i].handler = (__u64)BPF_CORE_READ(ka, sa.sa_handler);
			r->act[i].flags = BPF_CORE_READ(ka, sa.sa_flags);
			r->act[i].restorer = (__u64)BPF_CORE_READ(ka, sa.sa_restorer);
			r->act[i].mask = BPF_CORE_READ(ka, sa.sa_mask.sig[0]);
		}
	}
	bpf_seq_write(seq, r, sizeof(*r));
}

static __always_inline struct hlist_node *first_posix_timer(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, posix_timers.first);
}

/* CPU-time clocks: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, and another task's (negative ids) */
static __always_inline bool cpu_clock(__s32 clock)
{
	return clock < 0 || clock == 2 || clock == 3;
}

/* A timer on a CPU-time clock lives in it.cpu, the others in an hrtimer (it.real); it_status says whether it is
 * armed since 6.13, before that the hrtimer's or cpu_timer's queue does. */
static __always_inline void fill_timer_expiry(struct bck_posix_timer *r, struct k_itimer *t)
{
	bool queued;

	if (cpu_clock(r->clock)) {
		r->expires = BPF_CORE_READ(t, it.cpu.node.expires);
		r->expires_clock = r->clock;
		queued = BPF_CORE_READ(t, it.cpu.head) != 0;
	} else {
		r->expires = BPF_CORE_READ(t, it.real.timer.node.expires);
		r->expires_clock = BPF_CORE_READ(t, it.real.timer.base, clockid);
		queued = BPF_CORE_READ(t, it.real.timer.state) & HRTIMER_STATE_ENQUEUED;
	}
	if (bpf_core_field_exists(t->it_status))
		r->status = BPF_CORE_READ(t, it_status);
	else
		r->status = queued ? BCK_TIMER_ARMED : BCK_TIMER_DISARMED;
}

struct timer_walk {
	struct seq_file *seq;
	struct hlist_node *node;
	__u32 tgid;
	__u32 count;
};

/* One timer per call, through bpf_loop: the verifier then checks this body once, not once for each of the
 * BCK_MAX_POSIX_TIMERS copies an unrolled loop makes (that cost 8 ms of every dump's load time). */
static long emit_one_timer(__u64 i, void *ctx)
{
	struct timer_walk *w = ctx;
	struct hlist_node *node = w->node;  /* a plain read: timer_walk is ours, not the kernel's */
	struct k_itimer *t;
	struct bck_posix_timer r = {};

	if (!node)
		return 1;
	t = (void *)node - bpf_core_field_offset(struct k_itimer, list);
	r.hdr.kind = BCK_REC_POSIX_TIMER;
	r.hdr.size = sizeof(r);
	r.tgid = w->tgid;
	r.id = BPF_CORE_READ(t, it_id);
	r.clock = BPF_CORE_READ(t, it_clock);
	r.sigev_notify = BPF_CORE_READ(t, it_sigev_notify);
	r.signo = BPF_CORE_READ(t, sigq.info.si_signo);
	r.sigval = (__u64)BPF_CORE_READ(t, sigq.info._sifields._timer._sigval.sival_ptr);
	r.target_tid = pid_nr(BPF_CORE_READ(t, it_pid));
	r.interval_ns = BPF_CORE_READ(t, it_interval);
	fill_timer_expiry(&r, t);
	bpf_seq_write(w->seq, &r, sizeof(r));
	w->node = BPF_CORE_READ(node, next);
	return 0;
}

/* signal->posix_timers is an hlist of k_itimer.list; at most BCK_MAX_POSIX_TIMERS are emitted. */
static __always_inline void emit_posix_timers(struct seq_file *seq, struct task_struct *task)
{
	struct timer_walk w = {.seq = seq, .node = first_posix_timer(task), .tgid = task->tgid};

	bpf_loop(BCK_MAX_POSIX_TIMERS, emit_one_timer, &w, 0);
}

static long count_one_timer(__u64 i, void *ctx)
{
	struct timer_walk *w = ctx;
	struct hlist_node *node = w->node;

	if (!node)
		return 1;
	w->count++;
	w->node = BPF_CORE_READ(node, next);
	return 0;
}

/* Up to one more than are emitted, so that the reader can tell a table that was cut short. */
static __always_inline __u32 count_posix_timers(struct task_struct *task)
{
	struct timer_walk w = {.node = first_posix_timer(task)};

	bpf_loop(BCK_MAX_POSIX_TIMERS + 1, count_one_timer, &w, 0);
	return w.count;
}

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	__u32 zero = 0;
	struct bck_task *r;
	bool leader;

	if (!task || !is_target(task))
		return 0;
	r = bpf_map_lookup_elem(&task_scratch, &zero);
	if (!r)
		return 0;
	/* clang cannot emit a 1.5 KiB memset for BPF; the per-CPU slot still holds the previous task */
	bpf_probe_read_kernel(r, sizeof(*r), &empty_task);

	leader = task->pid == task->tgid;
	r->hdr.kind = BCK_REC_TASK;
	r->hdr.size = sizeof(*r);
	r->tid = task->pid;
	r->tgid = task->tgid;
	r->ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->flags = leader ? BCK_TASK_F_LEADER : 0;
	if (task->flags & 0x00200000 /* PF_KTHREAD */)
		r->flags |= BCK_TASK_F_KTHREAD;
	if (task->ptrace)
		r->flags |= BCK_TASK_F_PTRACED;
	r->state = task->__state;
	r->exit_state = task->exit_state;
	r->exit_code = task->exit_code;
	r->personality = task->personality;
	r->seccomp_mode = task->seccomp.mode;
	r->policy = task->policy;
	r->static_prio = task->static_prio;
	r->rt_priority = task->rt_priority;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), task->comm);
	r->start_time = task->start_time;
	r->files_id = (__u64)BPF_CORE_READ(task, files);
	r->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	r->clear_child_tid = (__u64)BPF_CORE_READ(task, clear_child_tid);
	r->robust_list = (__u64)BPF_CORE_READ(task, robust_list);
	r->rseq = (__u64)BPF_CORE_READ(task, rseq);
	r->rseq_len = task->rseq_len;
	r->rseq_sig = task->rseq_sig;
	struct fs_struct *fs = BPF_CORE_READ(task, fs);  /* read once: the leader's paths below use it too */

	r->umask = BPF_CORE_READ(fs, umask);
	{
		/* cpumask_t is NR_CPUS bits here, possibly fewer than the record holds: never read past it */
		__u32 sz = bpf_core_type_size(cpumask_t);

		if (sz > sizeof(r->cpus_mask))
			sz = sizeof(r->cpus_mask);
		bpf_probe_read_kernel(r->cpus_mask, sz, &task->cpus_mask);
	}
	fill_creds(r, task);
	fill_signals(r, task);
	fill_mm(r, task);

	if (!leader || r->exit_state) {
		bpf_seq_write(seq, r, sizeof(*r));
		return 0;
	}

	/* The leader carries what the thread group shares; the counts tell the reader what follows. */
	struct mm_struct *mm = (struct mm_struct *)r->mm_id;  /* what fill_mm read */
	struct file *exe = BPF_CORE_READ(mm, exe_file);

	if (exe) {
		r->exe_path.mnt = (__u64)BPF_CORE_READ(exe, f_path.mnt);
		r->exe_path.dentry = (__u64)BPF_CORE_READ(exe, f_path.dentry);
	}
	if (fs) {
		r->cwd_path.mnt = (__u64)BPF_CORE_READ(fs, pwd.mnt);
		r->cwd_path.dentry = (__u64)BPF_CORE_READ(fs, pwd.dentry);
		r->root_path.mnt = (__u64)BPF_CORE_READ(fs, root.mnt);
		r->root_path.dentry = (__u64)BPF_CORE_READ(fs, root.dentry);
	}
	r->posix_timers_total = count_posix_timers(task);
	r->nr_posix_timers = r->posix_timers_total < BCK_MAX_POSIX_TIMERS ? r->posix_timers_total
									   : BCK_MAX_POSIX_TIMERS;
	bpf_seq_write(seq, r, sizeof(*r));
	emit_sigactions(seq, task);
	emit_posix_timers(seq, task);
	emit_task_path(seq, &r->exe_path, r->tid, BCK_PATH_EXE);
	emit_task_path(seq, &r->cwd_path, r->tid, BCK_PATH_CWD);
	emit_task_path(seq, &r->root_path, r->tid, BCK_PATH_ROOT);
	return 0;
}
