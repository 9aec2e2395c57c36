// Low-downtime `-R` dumps: a process's private anonymous memory is write-protected with a userfaultfd while it
// is frozen, and copied after the thaw. A write to a page not copied yet stops in a write-protect fault; bpfckpt
// copies that page first and then lets the write through. Writes the kernel makes for the process (read() into a
// buffer) fault the same way, so the fd is created without UFFD_USER_MODE_ONLY. The image is the memory at the
// freeze, exactly.
//
// What cannot be followed: munmap, MADV_DONTNEED and mremap of pages not copied yet. userfaultfd reports them only
// once the pages are gone, so the copy is then lost() and the dump is taken again with the memory copied while
// frozen. Mappings the kernel does not write-protect this way (private file mappings) are copied while frozen.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/address_ranges.h"
#include "common/fd.h"
#include "common/result.h"
#include "dump/memory.h"
#include "image/model.h"

namespace bpfckpt::dump {

class LiveCopy {
public:
	// A userfaultfd of pid's, made by its thread `tid` (in our ptrace stop); nothing registered yet. nullopt when
	// the process may not create such a userfaultfd: everything is then copied while frozen.
	static Result<std::optional<LiveCopy>> create(pid_t pid, pid_t tid, uint64_t syscall_addr);
	// While pid is frozen: create(), then arm_frozen().
	static Result<std::optional<LiveCopy>> arm(pid_t pid, pid_t tid, uint64_t syscall_addr,
						   const std::vector<image::Vma>& vmas, std::vector<PagePiece>& planned);

	// Before the freeze, while pid runs: registers the vmas that allow it and write-protects every present page
	// of theirs. Writes are let through by the handler until arm_frozen() plans pages, so protect_registered()
	// needs a handler serving this copy.
	Status register_vmas(const std::vector<image::Vma>& vmas);
	Status protect_registered();
	// While pid is frozen: registers the vmas of `planned` (a registration from before the freeze stays) and
	// write-protects their present pages that are not protected: all of them in a vma registered now, those
	// written or populated since protect_registered() in the others. Leaves in `planned` the pieces to copy now,
	// while frozen; the others are live().
	Status arm_frozen(const std::vector<image::Vma>& vmas, std::vector<PagePiece>& planned);

	pid_t pid() const { return pid_; }
	int fd() const { return uffd_.get(); }
	const std::vector<PagePiece>& live() const { return live_; }

	// The handler's side: serves every message waiting on fd().
	Status serve();
	bool has_pending() const { return !pending_.empty(); }
	// The copier's side (a ChunkRead): puts the pages saved by faults over what was read, then lets writes to
	// the chunk through. Fails once the copy is lost.
	Status take(const PagePiece* pieces, size_t n, char* dst);
	bool lost() const;
	std::string lost_reason() const;

private:
	LiveCopy(pid_t pid, UniqueFd uffd) : pid_(pid), uffd_(std::move(uffd)), mu_(std::make_unique<std::mutex>()) {}
	Status on_fault(uint64_t page);
	void on_gone(uint64_t start, uint64_t end, const char* what);
	bool planned_at(uint64_t page) const;
	Status unprotect(uint64_t start, uint64_t end);
	Status release_pending();
	Status protect_unprotected(int pagemap, const image::Vma& v);

	pid_t pid_;
	UniqueFd uffd_;
	UniqueFd mem_;                                  // /proc/PID/mem: reads pages of any protection
	std::vector<std::pair<uint64_t, uint64_t>> registered_;  // by register_vmas()
	std::vector<PagePiece> live_;                   // in address order; set while frozen, before any fault
	std::unique_ptr<std::mutex> mu_;                // guards what follows
	uint64_t taken_until_ = 0;                      // pages below this are in the copier's hands
	std::map<uint64_t, std::vector<char>> saved_;   // pages copied by faults, not taken yet
	std::string lost_;                              // why the copy is lost, "" while it is not
	std::vector<uint64_t> pending_;                 // the handler's: faulted pages saved but not released yet
	AddressRanges held_;  // the copier's (take() runs one chunk at a time): taken, still protected (see take())
	std::string error_;                             // the handler's: a release that failed
};

// The thread that serves the faults of every armed process from the thaw until the copies are done.
class LiveCopyHandler {
public:
	static Result<std::unique_ptr<LiveCopyHandler>> start(std::vector<LiveCopy*> copies);
	~LiveCopyHandler();
	// Stops the thread; its first error, if any.
	Status stop();

private:
	LiveCopyHandler(std::vector<LiveCopy*> copies, UniqueFd stop) : copies_(std::move(copies)), stop_(std::move(stop))
	{
	}
	void run();

	std::vector<LiveCopy*> copies_;
	UniqueFd stop_;  // an eventfd
	std::thread thread_;
	Status result_;
};

// -R: processes armed before the freeze, while they run, so that the freeze only has to protect again what was
// written or populated since: write-protecting 1 GiB of 4 KiB pages takes 45-50 ms here (as mprotect does), and
// finding what changed since takes 1.5 ms. Until the freeze a handler lets every write through at once.
class EarlyArming {
public:
	EarlyArming() = default;
	EarlyArming(const EarlyArming&) = delete;
	EarlyArming& operator=(const EarlyArming&) = delete;
	~EarlyArming();

	// Seizes thread `tid` of the running process pid for the injected userfaultfd(), lets it go, and registers
	// the vmas. false when pid cannot be armed this way (it exited, or may not create the userfaultfd).
	Result<bool> add(pid_t pid, pid_t tid, uint64_t syscall_addr, uint64_t mm_key, const std::vector<image::Vma>& vmas);
	// Starts the handler, then protects every added process's memory.
	Status protect();
	// Once frozen: stops the handler, after it let through every write that came before.
	Status stop();
	// The copy armed for pid, if it is still the same address space (exec replaces it); after stop().
	std::optional<LiveCopy> take(pid_t pid, uint64_t mm_key);
	// Closes the userfaultfds of the processes not taken (too little memory by the freeze, or a new address
	// space): with no handler, a write to their protected pages would wait until then. Right after the thaw.
	void clear();

private:
	struct Armed {
		uint64_t mm_key;
		LiveCopy copy;
	};
	std::map<pid_t, Armed> armed_;
	std::unique_ptr<LiveCopyHandler> handler_;
};

}  // namespace bpfckpt::dump
