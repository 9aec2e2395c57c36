// Full `-R --track-mem` dumps (a watch's first snapshot and its --full-every ones): the memory is copied while the
// process runs, after its write tracking is armed and reset, so that the freeze only reads again what changed
// since: the pages the tracker marked written, and those it cannot see (private file mappings are not
// registrable). They are read while frozen and written over their pre-copied places after the thaw, and the
// blob's checksum is then taken again. The image is the memory at the freeze, as a frozen copy would have made it,
// but the freeze lasts what reading the marks and the changed pages takes. The marks are left set: the next
// increment saves those pages again, which is what a write between the freeze and its reset would need anyway.
// Pages that appeared since the copy (a stack grew a page, a mapping came) are read while frozen too and placed at
// the blob's end; pages copied but gone since are left out of the page runs.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "dump/memory.h"
#include "dump/track.h"
#include "image/image_dir.h"
#include "image/model.h"

namespace bpfckpt::dump {

// One process's memory as copied before the freeze.
struct PreCopied {
	TrackedProcess who;
	MemTracker tracker;                    // armed and reset before the copy
	std::vector<image::Vma> vmas;          // as they were; the copied ones have their page runs in blob
	std::unique_ptr<image::BlobWriter> blob;
};

// Pages to read again while frozen, and where in the blob they go.
struct PageRewrite {
	PagePiece piece;  // against the frozen process's vmas
	uint64_t blob_offset = 0;
};

uint64_t rewrite_bytes(const std::vector<PageRewrite>& rewrites);
// The rewrites' pages, read now into dst (room for all of them), back to back.
Status read_rewrites(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PageRewrite>& rewrites,
		     char* dst);
// Writes them over their places in blob, from src as read_rewrites left it.
Status write_rewrites(image::BlobWriter& blob, const std::vector<PageRewrite>& rewrites, const char* src);
// Both at once, through a buffer of `size` bytes: for more than can be held until the thaw.
Status rewrite_through(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PageRewrite>& rewrites,
		       image::BlobWriter& blob, char* buf, size_t size);

class PreCopy {
public:
	// pid runs: thread `tid` stops only for the injected userfaultfd() of a new tracker (an existing one is
	// reused); then the trackable vmas are registered and their marks reset, and every private page is copied
	// into `blob`. false when pid cannot be armed (it exited): the frozen dump takes care of it.
	Result<bool> add(const TrackedProcess& who, pid_t tid, uint64_t syscall_addr, std::vector<image::Vma> vmas,
			 std::unique_ptr<image::BlobWriter> blob, CopyBuffers& bufs, MemoryStats& stats,
			 log::Progress* progress);
	// How many bytes the copied processes wrote since their reset, so far: about what the freeze will read again.
	Result<uint64_t> written_bytes();
	// What was copied of pid, if anything.
	std::optional<PreCopied> take(pid_t pid);
	// Removes the blobs of the copies not taken (the process exited, became a zombie or exec'd) from dir.
	void discard(const std::string& dir);

private:
	std::map<pid_t, PreCopied> copied_;
};

// While frozen: when p is still the process and address space `pc` copied, p's vmas get their page runs (the copy's
// places for the pages it holds, new places past the blob's end for the others) and the pages to read again are
// returned: written since the reset, in a vma the tracker cannot see, or new. nullopt when p exec'd.
Result<std::optional<std::vector<PageRewrite>>> pages_changed_since(PreCopied& pc, image::Process& p);

}  // namespace bpfckpt::dump
