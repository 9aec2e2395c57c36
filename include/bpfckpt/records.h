/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The only record layouts shared by the BPF iterators (bpf/) and the C++ collector (src/dump/).
 *
 * An iterator's output is a stream of records, each starting with a bck_hdr. Fixed-width types only, explicit
 * padding, no pointers: the BPF side is compiled by clang -target bpf, the reader by g++, and both must agree on
 * every offset. Kernel pointers never leave the collector: they are only used as identities (which fds share an
 * open file, which tasks share an mm) and are replaced by small ids before anything is written.
 */
#ifndef BPFCKPT_RECORDS_H
#define BPFCKPT_RECORDS_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define BCK_COMM_LEN 16
#define BCK_NSIG 64
#define BCK_RLIM_NLIMITS 16
#define BCK_AUXV_WORDS 56      /* mm->saved_auxv[] on x86_64 (AT_VECTOR_SIZE) */
#define BCK_CPUMASK_WORDS 16   /* 1024 CPUs */
#define BCK_PATH_MAX 4096
#define BCK_SPECIAL_NAME_LEN 16
#define BCK_MAX_POSIX_TIMERS 32
#define BCK_MAX_GROUPS 64      /* supplementary groups a record carries; a task with more is refused */

/* Which records a stream holds. The numbers are part of nothing persistent: images never contain them. */
enum bck_kind {
	BCK_REC_TASK = 1,       /* struct bck_task */
	BCK_REC_SIGACTIONS = 2, /* struct bck_sigactions, after the leader's bck_task */
	BCK_REC_PATH = 3,       /* NUL-terminated path; hdr.tag says which (enum bck_path_tag) */
	BCK_REC_FILE = 4,       /* struct bck_file */
	BCK_REC_VMA = 5,        /* struct bck_vma */
	BCK_REC_POSIX_TIMER = 6,/* struct bck_posix_timer, after the leader's bck_task */
};

enum bck_path_tag {
	BCK_PATH_EXE = 1,
	BCK_PATH_CWD = 2,
	BCK_PATH_ROOT = 3,
	BCK_PATH_FILE = 4, /* the path of the bck_file just before */
	BCK_PATH_VMA = 5,  /* the backing file of the bck_vma just before */
};

/* Every record starts with this. size covers the header and the payload, rounded up to 8. */
struct bck_hdr {
	__u16 kind;
	__u16 tag;
	__u32 size;
};

/* Filter modes for the iterators, set in .bss before each run. */
enum bck_filter_mode {
	BCK_FILTER_TGID_SET = 0,    /* tasks whose tgid is a key of the `targets` map */
	BCK_FILTER_DESCENDANTS = 1, /* filter_tgid and every task below it in the real_parent tree */
	BCK_FILTER_CGROUP = 2,      /* tasks in cgroup v2 filter_cgroup_id or below it */
};

#define BCK_TASK_F_KTHREAD    (1u << 0)
#define BCK_TASK_F_LEADER     (1u << 1)
#define BCK_TASK_F_HAS_MM     (1u << 2)
#define BCK_TASK_F_PTRACED    (1u << 3)

/*
 * Where a path is: the kernel addresses of its {vfsmount, dentry}, an identity only. Leaders that share one (the
 * same cwd, root or executable) get its BCK_REC_PATH once per run; the reader copies it to the others.
 */
struct bck_path_id {
	__u64 mnt;
	__u64 dentry;
};

struct bck_task {
	struct bck_hdr hdr;
	__u32 tid;
	__u32 tgid;
	__u32 ppid;      /* real_parent's tgid */
	__u32 pgid;
	__u32 sid;
	__u32 flags;     /* BCK_TASK_F_* */
	__u32 state;     /* task->__state */
	__u32 exit_state;
	__s32 exit_code;
	__u32 personality;
	__u32 nr_threads;
	__u32 seccomp_mode;
	__u32 umask;
	__u32 policy;
	__s32 static_prio;
	__u32 rt_priority;
	char comm[BCK_COMM_LEN];
	__u64 start_time;  /* ns since boot; with tid it names a task across pid reuse */
	__u64 mm_id;       /* kernel address of task->mm, an identity only */
	__u64 files_id;    /* kernel address of task->files */
	__u64 cgroup_id;   /* cgroup v2 id (inode number of its directory) */

	/* credentials */
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
	__u64 cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
	__u32 securebits;
	__u32 ngroups;   /* cred->group_info's count; the first BCK_MAX_GROUPS are in groups[] */
	__u32 groups[BCK_MAX_GROUPS];

	/* signals */
	__u64 blocked;
	__u64 pending;        /* this thread's private pending set */
	__u64 shared_pending; /* the thread group's */
	__u64 sas_ss_sp;
	__u64 sas_ss_size;
	__u32 sas_ss_flags;
	__u32 pad1;

	/* thread-library state the kernel keeps */
	__u64 clear_child_tid;
	__u64 robust_list;
	__u64 rseq;
	__u32 rseq_len;
	__u32 rseq_sig;

	/* mm fields (zero for kernel threads and zombies) */
	__u64 start_code, end_code, start_data, end_data;
	__u64 start_brk, brk, start_stack;
	__u64 arg_start, arg_end, env_start, env_end;
	__u64 vdso;
	__u64 map_count;
	__u64 auxv[BCK_AUXV_WORDS];

	/* itimers: ITIMER_REAL from the hrtimer (CLOCK_MONOTONIC ns), PROF/VIRT from signal->it[] (ns of CPU time) */
	__u64 it_real_incr;
	__s64 it_real_expires;
	__u32 it_real_armed;
	__u32 pad2;
	__u64 it_prof_expires, it_prof_incr;
	__u64 it_virt_expires, it_virt_incr;
	__u32 nr_posix_timers;    /* how many follow as BCK_REC_POSIX_TIMER (capped) */
	__u32 posix_timers_total; /* how many the process has */

	/* leaders: a zero id means no such path (no mm, no fs) */
	struct bck_path_id exe_path, cwd_path, root_path;

	__u64 cpus_mask[BCK_CPUMASK_WORDS];
	struct {
		__u64 cur;
		__u64 max;
	} rlim[BCK_RLIM_NLIMITS];
};

struct bck_sigaction {
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

struct bck_sigactions {
	struct bck_hdr hdr;
	__u32 tgid;
	__u32 pad;
	struct bck_sigaction act[BCK_NSIG];
};

/* k_itimer.it_status (kernel/time/posix-timers.h, Linux 6.13); older kernels report ARMED from the hrtimer state */
#define BCK_TIMER_DISARMED 0
#define BCK_TIMER_ARMED 1
#define BCK_TIMER_REQUEUE_PENDING 2 /* expired, signal queued: the kernel re-arms it when the signal is delivered */

struct bck_posix_timer {
	struct bck_hdr hdr;
	__u32 tgid;
	__s32 id;
	__s32 clock;
	__s32 sigev_notify;  /* SIGEV_SIGNAL, SIGEV_NONE, or SIGEV_THREAD_ID (glibc's SIGEV_THREAD is one too) */
	__s32 signo;
	__u32 target_tid;    /* it_pid: the thread SIGEV_THREAD_ID signals, the process otherwise */
	__u64 sigval;
	__s64 expires;       /* ns on expires_clock; meaningful unless disarmed */
	__u64 interval_ns;
	__u32 status;        /* BCK_TIMER_* */
	__s32 expires_clock; /* the clock expires is on: the hrtimer base's (CLOCK_MONOTONIC for a relative
			      * CLOCK_REALTIME timer), or the CPU clock */
};

/* i_mode's S_IFMT kinds, as the kernel stores them */
#define BCK_S_IFMT   0170000
#define BCK_S_IFSOCK 0140000
#define BCK_S_IFLNK  0120000
#define BCK_S_IFREG  0100000
#define BCK_S_IFBLK  0060000
#define BCK_S_IFDIR  0040000
#define BCK_S_IFCHR  0020000
#define BCK_S_IFIFO  0010000

#define BCK_FILE_F_CLOEXEC   (1u << 0)

struct bck_file {
	struct bck_hdr hdr;
	__u32 tgid;
	__u32 fd;
	__u64 file_id;  /* kernel address of struct file: equal ids are one open file */
	__u64 pos;
	__u32 f_flags;  /* O_* open flags */
	__u32 f_mode;   /* FMODE_* */
	__u64 ino;
	__u64 size;
	__u32 dev;      /* superblock's s_dev */
	__u32 rdev;
	__u32 i_mode;
	__u32 flags;    /* BCK_FILE_F_* */
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 pipe_ring_size;  /* pipes: slots in the ring (capacity = slots * page size) */
	__u32 pipe_readers;
	__u32 pipe_writers;
	__u16 sock_family;
	__u16 sock_type;
	__u32 pad;
	__u64 sock_peer_ino; /* AF_UNIX: the inode of the connected peer's socket, 0 when unconnected */
};

#define BCK_VMA_F_PATH_CACHED (1u << 0) /* its file's path came with an earlier VMA of this run (same dev+ino) */

struct bck_vma {
	struct bck_hdr hdr;
	__u32 tgid;
	__u32 flags;     /* BCK_VMA_F_* */
	__u64 start;
	__u64 end;
	__u64 vm_flags;  /* VM_* */
	__u64 pgoff;     /* in pages */
	__u64 file_id;   /* kernel address of vm_file, 0 for anonymous */
	__u64 ino;
	__u64 file_size;
	__u32 dev;
	__u32 i_mode;
	__s64 mtime_sec;
	__u32 mtime_nsec;
	__u32 pad;
	char special[BCK_SPECIAL_NAME_LEN]; /* "[vdso]", "[vvar]", ... for special mappings */
};

/* VM_* bits that an image records (include/linux/mm.h, stable since 2.6) */
#define BCK_VM_READ     0x00000001ull
#define BCK_VM_WRITE    0x00000002ull
#define BCK_VM_EXEC     0x00000004ull
#define BCK_VM_SHARED   0x00000008ull
#define BCK_VM_MAYSHARE 0x00000080ull
#define BCK_VM_GROWSDOWN 0x00000100ull
#define BCK_VM_IO       0x00004000ull
#define BCK_VM_DONTEXPAND 0x00040000ull
#define BCK_VM_LOCKED   0x00002000ull
#define BCK_VM_PFNMAP   0x00000400ull
#define BCK_VM_HUGETLB  0x00400000ull
#define BCK_VM_HUGEPAGE 0x20000000ull
#define BCK_VM_NOHUGEPAGE 0x40000000ull
#define BCK_VM_DONTCOPY 0x00020000ull
#define BCK_VM_WIPEONFORK 0x02000000ull
#define BCK_VM_DONTDUMP 0x04000000ull

#ifndef __bpf__
#ifdef __cplusplus
#define BCK_STATIC_ASSERT static_assert
#else
#define BCK_STATIC_ASSERT _Static_assert
#endif
/* The reader casts stream bytes to these structs: a size change must be deliberate on both sides. */
BCK_STATIC_ASSERT(sizeof(struct bck_hdr) == 8, "record header layout");
BCK_STATIC_ASSERT(sizeof(struct bck_task) % 8 == 0, "records keep 8-byte alignment in the stream");
BCK_STATIC_ASSERT(sizeof(struct bck_sigactions) == 16 + 64 * 32, "sigaction table layout");
BCK_STATIC_ASSERT(sizeof(struct bck_posix_timer) == 64, "posix timer layout");
BCK_STATIC_ASSERT(sizeof(struct bck_file) == 112, "file record layout");
BCK_STATIC_ASSERT(sizeof(struct bck_vma) == 112, "vma record layout");
#endif

#endif
