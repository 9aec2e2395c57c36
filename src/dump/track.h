// Write tracking without soft-dirty (`--track-mem`): the tracked process is made to create a userfaultfd (an
// injected syscall: a userfaultfd acts on the mm of the process that created it), bpfckpt takes it out with
// pidfd_getfd and closes the target's copy, and registers the process's private anonymous memory for
// write-protection in WP_ASYNC mode: the kernel resolves each first write itself and marks the page written, so
// the process runs on unhindered. A later dump reads and resets the marks with one PAGEMAP_SCAN per range.
// Tracking outlives a dump: a small keeper process holds the userfaultfd, and a record under /run/bpfckpt/track
// says where; the keeper exits with the target, on `bpfckpt untrack`, or when a dump runs without --track-mem.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "common/address_ranges.h"
#include "common/fd.h"
#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::dump {

// Private anonymous memory: what userfaultfd can write-protect (private file mappings it refuses).
bool trackable(const image::Vma& v);

// A run of pages written since the last scan; `present` false: written, then dropped (MADV_DONTNEED): now zero.
struct WrittenRun {
	uint64_t start = 0, end = 0;
	bool present = false;
};

// What a scan that resets nothing says of a range: the pages written since the last reset, and the pages present
// (or swapped out).
struct PageMarks {
	AddressRanges written;
	AddressRanges present;
};

// Which process a tracker belongs to: pid + start time name the process, mm_key its address space (exec
// replaces it, and with it the registration).
struct TrackedProcess {
	pid_t pid = 0;
	uint64_t start_time = 0;
	uint64_t mm_key = 0;
};

class MemTracker {
public:
	// The tracker a previous --track-mem left for this process, if it is still this process's address space.
	// A stale one (the process exec'd, or the PID was reused) is ended, and nullopt returned.
	static Result<std::optional<MemTracker>> attach(const TrackedProcess& who);
	// A new tracker: thread `tid` of the (ptrace-stopped) process runs userfaultfd() through the syscall
	// instruction at `syscall_addr`.
	static Result<MemTracker> create(const TrackedProcess& who, pid_t tid, uint64_t syscall_addr);

	// Registers [start, end) for write-protection; false when the kernel refuses that kind of mapping (a private
	// file mapping). A range already registered is left as it is.
	Result<bool> track(uint64_t start, uint64_t end);
	// The pages of [start, end) written since the last scan, write-protected again in the same call. nullopt when
	// the range is not (or no longer: mremap drops it) registered: nothing can be said about it.
	Result<std::optional<std::vector<WrittenRun>>> take_written(int pagemap, uint64_t start, uint64_t end);
	// Every written page of every registered range, write-protected again in the same walk; ranges that are not
	// registered are skipped. For the process while it runs: see Increment::before_freeze.
	Result<AddressRanges> take_all_written(int pagemap);
	// The marks of [start, end), left as they are. nullopt as for take_written.
	Result<std::optional<PageMarks>> read_marks(int pagemap, uint64_t start, uint64_t end);

	// The image whose pages the marks are relative to: the last one a tracked dump committed. Empty when the
	// marks were reset by a dump that did not finish: no image is then a valid parent.
	const std::string& last_image() const { return last_image_; }
	// Before the first reset: from here on no image is a valid parent until keep() names the new one.
	Status forget_last_image();

	// Leaves the userfaultfd with a keeper process (starting one if this tracker is new), so tracking goes on
	// after this dump, and records `image_id` as the image the marks are now relative to.
	Status keep(const std::string& image_id);

private:
	MemTracker(const TrackedProcess& who, UniqueFd uffd, pid_t keeper, std::string last)
		: who_(who), uffd_(std::move(uffd)), keeper_(keeper), last_image_(std::move(last))
	{
	}

	TrackedProcess who_;
	UniqueFd uffd_;
	pid_t keeper_ = 0;  // 0 until a keeper holds it
	std::string last_image_;
};

// Ends tracking of `pid`; false when it was not tracked.
Result<bool> untrack(pid_t pid);

}  // namespace bpfckpt::dump
