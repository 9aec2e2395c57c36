#include "dump/track.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "bpfckpt/compat.h"
#include "common/fs.h"
#include "dump/memory.h"
#include "dump/pagemap_scan.h"
#include "dump/remote_uffd.h"

namespace bpfckpt::dump {

bool trackable(const image::Vma& v)
{
	return !v.shared && (v.kind == "anon" || v.kind == "heap" || v.kind == "stack") && has_private_pages(v);
}

namespace {

constexpr const char* kTrackDir = "/run/bpfckpt/track";
constexpr const char* kKeeperName = "bpfckpt-keeper";
constexpr int kKeeperUffd = 3;    // where the keeper holds the userfaultfd
constexpr int kKeeperTarget = 4;  // and the target's pidfd, to exit with it

std::string record_path(pid_t pid) { return fmt::format("{}/{}", kTrackDir, pid); }

// What /run/bpfckpt/track/<pid> holds: the tracked process's identity and its keeper.
struct Record {
	TrackedProcess who;
	pid_t keeper = 0;
	std::string image;  // the image the marks are relative to; "-" in the file when none
};

std::optional<Record> read_record(pid_t pid)
{
	auto text = read_file(record_path(pid));
	if (!text)
		return std::nullopt;
	Record r;
	unsigned long long start = 0, mm = 0;
	char image[64] = "";
	if (sscanf(text->c_str(), "%d %llu %llu %d %63s", &r.who.pid, &start, &mm, &r.keeper, image) != 5 ||
	    r.who.pid != pid)
		return std::nullopt;
	r.who.start_time = start;
	r.who.mm_key = mm;
	r.image = strcmp(image, "-") == 0 ? "" : image;
	return r;
}

bool is_keeper(pid_t pid)
{
	auto comm = read_file(fmt::format("/proc/{}/comm", pid));
	return pid > 0 && comm && comm->rfind(kKeeperName, 0) == 0;
}

int pidfd_open(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

// The target exited: its record goes with it, unless a newer keeper's replaced it. Forked from a process that may
// have had threads, so no allocation here.
void drop_own_record(pid_t target)
{
	char path[64], text[160] = "";
	snprintf(path, sizeof(path), "%s/%d", kTrackDir, int(target));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	int pid = 0, keeper = 0;
	unsigned long long start = 0, mm = 0;
	if (n > 0 && sscanf(text, "%d %llu %llu %d", &pid, &start, &mm, &keeper) == 4 && keeper == getpid())
		unlink(path);
}

// The keeper: holds the userfaultfd, and nothing else, until the target exits or it is told to go (SIGTERM).
[[noreturn]] void keeper_main(int uffd, int target_pidfd, pid_t target)
{
	if (dup2(uffd, kKeeperUffd) < 0 || dup2(target_pidfd, kKeeperTarget) < 0)
		_exit(1);
	close_range(kKeeperTarget + 1, ~0u, 0);
	int null = open("/dev/null", O_RDWR);
	for (int fd : {0, 1, 2})
		dup2(null, fd);
	close(null);
	prctl(PR_SET_NAME, kKeeperName);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, nullptr);
	for (;;) {
		pollfd p{kKeeperTarget, POLLIN, 0};
		if (poll(&p, 1, -1) > 0) {
			drop_own_record(target);
			_exit(0);
		}
	}
}

// Started twice removed (fork, setsid, fork): the keeper is nobody's child that anyone waits for, and in no
// process tree bpfckpt dumps.
Result<pid_t> start_keeper(int uffd, pid_t target)
{
	UniqueFd pidfd(pidfd_open(target));
	if (!pidfd)
		return fail_sys(errno, "pid {}: pidfd_open", target);
	int report[2];
	if (pipe2(report, O_CLOEXEC) != 0)
		return fail_sys(errno, "pipe2");
	pid_t mid = fork();
	if (mid < 0)
		return fail_sys(errno, "fork a keeper");
	if (mid == 0) {
		setsid();
		pid_t k = fork();
		if (k == 0)
			keeper_main(uffd, pidfd.get(), target);
		(void)!write(report[1], &k, sizeof(k));
		_exit(k > 0 ? 0 : 1);
	}
	close(report[1]);
	pid_t keeper = -1;
	ssize_t n = read(report[0], &keeper, sizeof(keeper));
	close(report[0]);
	waitpid(mid, nullptr, 0);
	if (n != sizeof(keeper) || keeper <= 0)
		return fail(ExitCode::failure, "pid {}: could not start the tracking keeper", target);
	return keeper;
}

Status write_record(const Record& r)
{
	::mkdir("/run/bpfckpt", 0700);
	if (::mkdir(kTrackDir, 0700) != 0 && errno != EEXIST)
		return fail_sys(errno, "create {}", kTrackDir);
	return write_file(record_path(r.who.pid),
			  fmt::format("{} {} {} {} {}\n", r.who.pid, r.who.start_time, r.who.mm_key, r.keeper,
				      r.image.empty() ? "-" : r.image),
			  0600);
}

void end_keeper(const Record& r)
{
	if (is_keeper(r.keeper))
		kill(r.keeper, SIGTERM);
	::unlink(record_path(r.who.pid).c_str());
}

}  // namespace

Result<std::optional<MemTracker>> MemTracker::attach(const TrackedProcess& who)
{
	std::optional<Record> r = read_record(who.pid);
	if (!r)
		return std::nullopt;
	if (r->who.start_time != who.start_time || r->who.mm_key != who.mm_key || !is_keeper(r->keeper)) {
		end_keeper(*r);  // another incarnation's, or its address space is gone (exec)
		return std::nullopt;
	}
	UniqueFd kpid(pidfd_open(r->keeper));
	if (!kpid)
		return fail_sys(errno, "pid {}: open its tracking keeper {}", who.pid, r->keeper);
	UniqueFd uffd(int(syscall(SYS_pidfd_getfd, kpid.get(), kKeeperUffd, 0)));
	if (!uffd)
		return fail_sys(errno, "pid {}: take the userfaultfd from keeper {}", who.pid, r->keeper);
	return MemTracker(who, std::move(uffd), r->keeper, r->image);
}

Result<MemTracker> MemTracker::create(const TrackedProcess& who, pid_t tid, uint64_t syscall_addr)
{
	// User-mode-only: allowed without privilege in the target; WP_ASYNC never asks anyone, so kernel-mode
	// writes are tracked all the same.
	auto uffd = BCK_TRY(remote_userfaultfd(who.pid, tid, syscall_addr, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
					       UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED));
	if (!uffd)
		return fail(ExitCode::permission, "pid {}: may not create a userfaultfd (vm.unprivileged_userfaultfd)",
			    who.pid);
	return MemTracker(who, std::move(*uffd), 0, "");
}

Result<bool> MemTracker::track(uint64_t start, uint64_t end)
{
	uffdio_register reg{};
	reg.range.start = start;
	reg.range.len = end - start;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(uffd_.get(), UFFDIO_REGISTER, &reg) == 0)
		return true;
	if (errno == EINVAL)
		return false;
	if (errno == EBUSY)
		return fail(ExitCode::target_busy, "pid {}: {:x}-{:x} is registered with another userfaultfd "
			    "(the process uses userfaultfd itself): cannot track it", who_.pid, start, end);
	return fail_sys(errno, "pid {}: UFFDIO_REGISTER {:x}-{:x}", who_.pid, start, end);
}

Result<std::optional<std::vector<WrittenRun>>> MemTracker::take_written(int pagemap, uint64_t start, uint64_t end)
{
	std::vector<WrittenRun> out;
	ScanQuery q;
	q.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	q.category_mask = PAGE_IS_WRITTEN;
	q.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	int err = pagemap_scan(pagemap, start, end, q, [&](const page_region& r) {
		bool present = r.categories & (PAGE_IS_PRESENT | PAGE_IS_SWAPPED);
		if (!out.empty() && out.back().end == r.start && out.back().present == present)
			out.back().end = r.end;
		else
			out.push_back({r.start, r.end, present});
	});
	if (err == EPERM)
		return std::nullopt;  // not registered WP_ASYNC (any more): mremap loses the registration
	if (err)
		return fail_sys(err, "pid {}: PAGEMAP_SCAN written {:x}-{:x}", who_.pid, start, end);
	return out;
}

Result<AddressRanges> MemTracker::take_all_written(int pagemap)
{
	// The top of user space with 4-level paging. Pages above it (5-level paging, mappings asked for there) are
	// left marked, so the frozen scan still finds them.
	constexpr uint64_t kUserEnd = (1ull << 47) - 4096;
	AddressRanges out;
	ScanQuery q;
	q.flags = PM_SCAN_WP_MATCHING;  // without CHECK_WPASYNC: unregistered vmas are skipped, not refused
	q.category_mask = PAGE_IS_WRITTEN;
	q.return_mask = PAGE_IS_WRITTEN;
	if (int err = pagemap_scan(pagemap, 0, kUserEnd, q,
				   [&](const page_region& r) { append_range(out, r.start, r.end); }))
		return fail_sys(err, "pid {}: PAGEMAP_SCAN written, with reset", who_.pid);
	return out;
}

Result<std::optional<PageMarks>> MemTracker::read_marks(int pagemap, uint64_t start, uint64_t end)
{
	PageMarks out;
	ScanQuery q;
	q.flags = PM_SCAN_CHECK_WPASYNC;
	q.category_anyof_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	q.return_mask = q.category_anyof_mask;
	int err = pagemap_scan(pagemap, start, end, q, [&](const page_region& r) {
		if (r.categories & PAGE_IS_WRITTEN)
			append_range(out.written, r.start, r.end);
		if (r.categories & (PAGE_IS_PRESENT | PAGE_IS_SWAPPED))
			append_range(out.present, r.start, r.end);
	});
	if (err == EPERM)
		return std::nullopt;
	if (err)
		return fail_sys(err, "pid {}: PAGEMAP_SCAN {:x}-{:x}", who_.pid, start, end);
	return out;
}

Status MemTracker::forget_last_image()
{
	last_image_.clear();
	return keeper_ ? write_record({who_, keeper_, ""}) : Status{};
}

Status MemTracker::keep(const std::string& image_id)
{
	if (!keeper_) {
		if (std::optional<Record> old = read_record(who_.pid))
			end_keeper(*old);
		keeper_ = BCK_TRY(start_keeper(uffd_.get(), who_.pid));
	}
	last_image_ = image_id;
	return write_record({who_, keeper_, image_id});
}

Result<bool> untrack(pid_t pid)
{
	std::optional<Record> r = read_record(pid);
	if (!r)
		return false;
	end_keeper(*r);
	return true;
}

}  // namespace bpfckpt::dump
