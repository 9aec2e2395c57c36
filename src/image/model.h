// The image index (index.json) as C++ values. schema/image.schema.json describes the same shape; json.cpp maps one
// onto the other. Binary payloads (pages, xstate, pipe bytes) live in blobs and are referenced by BlobRef.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bpfckpt::image {

inline constexpr int kFormatVersion = 2;
inline constexpr uint64_t kPageSize = 4096;

// A byte range inside one of the image's blobs.
struct BlobRef {
	std::string blob;
	uint64_t offset = 0;
	uint64_t size = 0;
};

// A run of consecutive pages of one VMA, stored consecutively in the process's page blob.
struct PageRun {
	uint64_t start = 0;        // virtual address of the first page
	uint64_t npages = 0;
	uint64_t blob_offset = 0;  // page-aligned
};

// Incremental images: consecutive pages that are zero / not present now, whatever the parent image holds for them.
struct ZeroRun {
	uint64_t start = 0;        // virtual address of the first page
	uint64_t npages = 0;
};

struct Vma {
	uint64_t start = 0;
	uint64_t end = 0;
	uint32_t prot = 0;         // PROT_READ | PROT_WRITE | PROT_EXEC
	bool shared = false;       // MAP_SHARED
	uint64_t vm_flags = 0;     // the kernel's VM_* bits, for what prot/shared cannot say (growsdown, locked, ...)
	uint64_t offset = 0;       // file offset in bytes, as /proc/PID/maps shows it
	std::string kind;          // anon, file, shmem, heap, stack, vdso, vvar, vvar_vclock
	std::string path;          // backing file, or the special name; empty for plain anonymous memory
	uint64_t dev = 0;          // backing file's st_dev (kernel encoding: major << 20 | minor)
	uint64_t ino = 0;
	uint64_t file_size = 0;
	int64_t mtime_sec = 0;
	uint32_t mtime_nsec = 0;
	// The backing file's content digest (common/file_digest.h): how restore --root recognises it elsewhere.
	std::optional<std::string> digest;
	std::optional<uint32_t> shmem;  // shared memory object id (MAP_SHARED anonymous, memfd, /dev/shm)
	std::vector<PageRun> pages;     // private pages, in the process's page blob
	// Incremental images (/work/notes/incremental.md): a page in neither `pages` nor `zero` has the content the
	// parent image gives for its address in the same pid (resolved recursively, see image/chain.h).
	bool inherit = false;
	std::vector<ZeroRun> zero;      // sorted, disjoint, inside the vma, disjoint from `pages`
};

struct Regs {
	std::map<std::string, uint64_t> gpr;  // user_regs_struct by field name: rip, rsp, fs_base, orig_rax, ...
	BlobRef xstate;                       // NT_X86_XSTATE bytes
	BlobRef fpregs;                       // NT_PRFPREG (FXSAVE) bytes
};

struct SyscallState {
	bool in_syscall = false;
	int64_t nr = -1;           // orig_rax
	int64_t ret = 0;           // rax as the kernel left it (-ERESTART* when interrupted)
};

struct Thread {
	uint32_t tid = 0;
	std::string comm;
	std::string state;         // running, sleeping, stopped, ...
	Regs regs;
	SyscallState syscall;
	uint64_t sigmask = 0;
	uint64_t pending = 0;
	BlobRef siginfo;           // its queued signals: siginfo_t (128 bytes each), oldest first
	uint64_t sas_ss_sp = 0, sas_ss_size = 0;
	uint32_t sas_ss_flags = 0;
	uint64_t rseq = 0;
	uint32_t rseq_len = 0, rseq_sig = 0;
	uint64_t clear_child_tid = 0;
	uint64_t robust_list = 0;
	std::vector<uint32_t> cpus;  // CPU affinity
	uint32_t policy = 0;
	int32_t nice = 0;
	uint32_t rt_priority = 0;
};

struct Creds {
	uint32_t uid = 0, euid = 0, suid = 0, fsuid = 0;
	uint32_t gid = 0, egid = 0, sgid = 0, fsgid = 0;
	uint64_t cap_inheritable = 0, cap_permitted = 0, cap_effective = 0, cap_bset = 0, cap_ambient = 0;
	uint32_t securebits = 0;
	std::vector<uint32_t> groups;  // supplementary groups, as getgroups() lists them
};

struct Rlimit {
	std::string name;
	uint64_t cur = 0, max = 0;  // RLIM_INFINITY as 2^64-1
};

struct Sigaction {
	int signo = 0;
	uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;
};

struct Itimer {
	uint64_t value_ns = 0;     // until next expiry; 0 when disarmed
	uint64_t interval_ns = 0;
};

// A timer_create() timer, re-created with its id. value_ns is what timer_gettime() said at the dump: the time
// left until the next expiry (0: disarmed), measured on `clock` (process CPU time for CLOCK_PROCESS_CPUTIME_ID).
struct PosixTimer {
	int32_t id = 0;
	int32_t clock = 0;
	int32_t notify = 0;        // SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID
	int32_t signo = 0;
	uint32_t tid = 0;          // SIGEV_THREAD_ID: the thread it signals; 0 otherwise
	uint64_t sigval = 0;
	uint64_t value_ns = 0;
	uint64_t interval_ns = 0;
};

struct Mm {
	uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
	uint64_t start_brk = 0, brk = 0, start_stack = 0;
	uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
	std::vector<uint64_t> auxv;  // (type, value) pairs up to and including AT_NULL
};

struct Fd {
	uint32_t fd = 0;
	bool cloexec = false;
	uint32_t file = 0;  // index into Image::files
};

struct Process {
	uint32_t pid = 0, ppid = 0, pgid = 0, sid = 0;
	std::string comm;
	std::string state;    // alive, stopped, zombie
	int32_t exit_code = 0;  // zombies: what wait() will return
	std::string exe, cwd, root;
	uint32_t personality = 0;
	uint32_t umask = 0;
	uint64_t cgroup_id = 0;
	uint64_t start_time = 0;  // task->start_boottime (ns): with pid, the process's identity across images
	uint64_t mm_key = 0;      // an opaque identity of the address space; changes on exec
	std::string cgroup;   // cgroup images: the cgroup path relative to Target::cgroup ("" = that cgroup itself)
	Creds creds;
	std::vector<Rlimit> rlimits;
	std::vector<Sigaction> sigactions;  // only those not SIG_DFL with no flags
	uint64_t shared_pending = 0;
	BlobRef shared_siginfo;             // the process's queued signals, as Thread::siginfo
	Itimer it_real, it_prof, it_virt;
	std::vector<PosixTimer> posix_timers;
	Mm mm;
	std::vector<Thread> threads;        // the leader first
	std::vector<Vma> vmas;              // sorted, disjoint
	std::vector<Fd> fds;                // sorted by fd
	std::string pages_blob;             // empty when the process has no private pages
};

// An open file description: what several fds (in one or more processes) may share.
struct File {
	uint32_t id = 0;
	std::string kind;        // regular, directory, pipe, chardev, socket, ...
	std::string path;
	uint32_t flags = 0;      // O_* as open(2) takes them
	uint64_t pos = 0;
	uint64_t dev = 0, ino = 0, rdev = 0;
	uint32_t mode = 0;       // i_mode
	uint64_t size = 0;
	int64_t mtime_sec = 0;
	uint32_t mtime_nsec = 0;
	std::optional<std::string> digest;  // regular files: content digest (common/file_digest.h)
	std::optional<uint64_t> pipe;  // pipes: Image::pipes[].ino
	bool external = false;   // the other side is outside the dumped set (restore connects it to something given)
	std::string external_key;  // pipe:[ino], socket:[ino], tty path: the identity --inherit-fd names
};

struct Pipe {
	uint64_t ino = 0;
	uint64_t capacity = 0;   // bytes (F_GETPIPE_SZ)
	BlobRef data;            // bytes buffered at dump time
};

struct Shmem {
	uint32_t id = 0;
	std::string kind;        // anon_shared, memfd, file
	std::string path;
	uint64_t dev = 0, ino = 0;
	uint64_t size = 0;
	std::vector<PageRun> pages;  // start is the offset in the object here, not an address
	std::string blob;
};

struct Blob {
	std::string name;
	uint64_t size = 0;
	std::string xxh3;        // 16 hex digits, XXH3_64bits of the whole blob
};

struct Host {
	std::string kernel;
	std::string arch;
	std::string hostname;
	uint64_t page_size = kPageSize;
	uint64_t xcr0 = 0;            // xstate features the saved registers may use
	uint64_t xstate_size = 0;
	std::vector<std::string> cpu_flags;
};

struct Target {
	std::string kind;        // pid_tree, cgroup
	uint32_t pid = 0;
	std::string cgroup;      // cgroup images: the snapped cgroup's path under the cgroup2 mount ("/ci/job1")
	bool leave_running = false;
};

struct Image {
	int format_version = kFormatVersion;
	std::string tool_version;
	std::string created;     // RFC 3339, UTC
	Host host;
	Target target;
	std::string id;                     // 32 lower-case hex digits, random, set by every dump
	std::optional<std::string> parent;  // incremental images: the parent's path relative to this one
	std::string parent_id;              // the parent's id; empty when there is no parent
	std::vector<std::string> cgroups;   // cgroup images: every cgroup of the snapped tree, relative, parents first
	std::vector<Process> processes;     // parents before children
	std::vector<File> files;
	std::vector<Pipe> pipes;
	std::vector<Shmem> shmem;
	std::vector<Blob> blobs;
};

}  // namespace bpfckpt::image
