/*
 * The restore plan: what the restorer (C++) hands the shim (freestanding C) for one process. Fixed-width fields,
 * no pointers: arrays are addressed by byte offsets from the start of the plan, so the plan can be copied
 * anywhere in the shim's mapping. This header is the only layout the two sides share.
 */
#ifndef BPFCKPT_SHIM_PLAN_H
#define BPFCKPT_SHIM_PLAN_H

#include <linux/types.h>

#define SHIM_PLAN_MAGIC 0x6270666b706c616eull /* "bpfkplan" */

struct shim_range {
	__u64 start;
	__u64 len;
};

/* vdso/vvar pieces: moved from where this kernel put them to where the image has them */
struct shim_move {
	__u64 from;
	__u64 to;
	__u64 len;
};

struct shim_vma {
	__u64 start;
	__u64 len;
	__u32 prot;       /* final PROT_* */
	__u32 flags;      /* MAP_PRIVATE or MAP_SHARED, MAP_ANONYMOUS when fd < 0 */
	__s32 fd;         /* backing file, opened by the restorer; -1 for anonymous memory */
	__u32 nr_runs;
	__u64 offset;     /* file offset in bytes */
	__u64 first_run;  /* index into the runs array */
	__u32 advice;     /* SHIM_ADVICE_*: madvise() calls that bring back VM_* flags mmap cannot set */
	__u32 pad;
};

#define SHIM_ADVICE_HUGEPAGE (1u << 0)
#define SHIM_ADVICE_NOHUGEPAGE (1u << 1)
#define SHIM_ADVICE_DONTDUMP (1u << 2)
#define SHIM_ADVICE_DONTFORK (1u << 3)
#define SHIM_ADVICE_WIPEONFORK (1u << 4)

/* Pages to copy into memory from a page blob: the process's own, or (incremental images) an older image's. */
struct shim_run {
	__u64 addr;
	__u64 len;
	__u64 blob_offset;
	__s32 fd;         /* one of page_fds[] */
	__u32 pad;
};

struct shim_thread {
	char comm[16];    /* the thread's name (PR_SET_NAME) */
	__u32 tid;
	__u32 rseq_len;
	__u64 stack_top;  /* a stack inside the shim's mapping */
	__u64 rseq;
	__u32 rseq_sig;
	__u32 ss_flags;
	__u64 clear_child_tid;
	__u64 robust_list;
	__u64 ss_sp;
	__u64 ss_size;
};

struct shim_sigaction {
	__u64 signo;
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

/* struct prctl_mm_map without its pointer */
struct shim_mm {
	__u64 start_code, end_code, start_data, end_data;
	__u64 start_brk, brk, start_stack;
	__u64 arg_start, arg_end, env_start, env_end;
	__s32 exe_fd;
	__u32 auxv_words;
	__u64 auxv[64];
};

struct shim_itimer {
	__u64 interval_ns;
	__u64 value_ns;  /* 0: disarmed */
};

/* A POSIX timer, created with its saved id once every thread exists, armed after the itimers */
struct shim_posix_timer {
	__s32 id;
	__s32 clock;
	__s32 notify;     /* SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID */
	__s32 signo;
	__u32 tid;        /* SIGEV_THREAD_ID's thread */
	__u32 pad;
	__u64 sigval;
	__u64 value_ns;   /* 0: created disarmed */
	__u64 interval_ns;
};

/* A signal to queue again with its saved siginfo, from inside the process: rt_sigqueueinfo for the process's
 * queue, rt_tgsigqueueinfo for a thread's */
struct shim_siginfo {
	__u32 tid;        /* 0: the process's queue */
	__u32 pad;
	__u8 info[128];   /* siginfo_t, si_signo first */
};

/* Credentials, applied by every thread for itself (they are per-thread in the kernel), last. */
struct shim_creds {
	__u32 apply;
	__u32 uid, euid, suid;
	__u32 gid, egid, sgid;
	__u32 ngroups;
	__u64 cap_effective, cap_permitted, cap_inheritable;
	__u64 cap_bset;     /* every capability outside it is dropped from the bounding set */
	__u64 cap_ambient;  /* raised once the other sets are in place */
	__u32 groups[64];   /* supplementary groups (BCK_MAX_GROUPS) */
};

struct shim_plan {
	__u64 magic;
	__u64 self_start;  /* the shim's own mapping: left alone, removed from outside at the end */
	__u64 self_len;
	__s32 nr_close;    /* fds to close once mapped: close_fds[] */
	__s32 close_fds[64];
	__s32 pad;
	__u64 nr_page_fds, page_fds_off;  /* __s32[]: the page blobs runs read from, closed once memory is filled */
	__u64 nr_unmap, unmap_off;      /* struct shim_range[]: the restorer's own mappings */
	__u64 nr_moves, moves_off;      /* struct shim_move[] */
	__u64 nr_vmas, vmas_off;        /* struct shim_vma[] */
	__u64 nr_runs, runs_off;        /* struct shim_run[] */
	__u64 nr_threads, threads_off;  /* struct shim_thread[], the main thread first */
	__u64 nr_sigactions, sigactions_off;
	__u64 nr_timers, timers_off;    /* struct shim_posix_timer[] */
	__u64 nr_siginfos, siginfos_off; /* struct shim_siginfo[], each queue oldest first */
	struct shim_mm mm;
	struct shim_itimer itimers[3];  /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF: armed last */
	struct shim_creds creds;
	__s64 error;       /* set by the shim before it stops when a step failed: -errno */
	__u64 error_step;  /* which step: SHIM_STEP_* */
	__u64 error_arg;   /* e.g. the address */
};

enum shim_step {
	SHIM_STEP_NONE = 0,
	SHIM_STEP_UNMAP = 1,
	SHIM_STEP_MOVE = 2,
	SHIM_STEP_MAP = 3,
	SHIM_STEP_FILL = 4,
	SHIM_STEP_PROTECT = 5,
	SHIM_STEP_MM = 6,
	SHIM_STEP_SIGACTION = 7,
	SHIM_STEP_THREAD = 8,
	SHIM_STEP_RSEQ = 9,
	SHIM_STEP_ITIMER = 10,
	SHIM_STEP_CREDS = 11,
	SHIM_STEP_TIMER = 12,
	SHIM_STEP_SIGQUEUE = 13,
	SHIM_STEP_GROUPS = 14,
	SHIM_STEP_CAPBSET = 15,
	SHIM_STEP_AMBIENT = 16,
};

/* The shim's entry point is at offset 0 of its image: void shim_main(struct shim_plan *plan), called on a stack
 * inside the shim's mapping. Every thread ends on an int3 loop, where the restorer (its ptracer) takes over. */

#endif
