// Page contents: PAGEMAP_SCAN finds the pages worth saving; two workers copy them in batches with process_vm_readv,
// each writing what it read to its place in the page blob (one reads while the other writes).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "image/image_dir.h"
#include "image/model.h"

namespace bpfckpt::dump {

// A PMD's worth on x86-64: a transparent huge page, what the copy buffers are made of, and the unit the copy's
// chunks and the live copy's releases keep to.
inline constexpr size_t kHugePage = 2u << 20;

struct MemoryStats {
	uint64_t pages_scanned = 0;  // pages of the VMAs looked at
	uint64_t pages_written = 0;  // pages copied into blobs
	double memwrite_s = 0;       // time some blob was being written (overlapped with copying)
};

// Two copy buffers, one per worker, reused across processes.
// Populated in bulk, as huge pages from 2 MiB on, and only as large as needed: first-touch faults cost 12-16 us a
// page on these VMs, and the buffers are filled while the target is frozen.
class CopyBuffers {
public:
	CopyBuffers() = default;
	~CopyBuffers();
	CopyBuffers(const CopyBuffers&) = delete;
	CopyBuffers& operator=(const CopyBuffers&) = delete;

	Status reserve(size_t bytes);  // each buffer at least `bytes` (capped at the chunk size)
	char* get(int i) { return bufs_[i]; }
	size_t size() const { return size_; }

private:
	char* bufs_[2] = {nullptr, nullptr};
	size_t size_ = 0;
};

// Memory for pages read while the target is frozen and written to their blob after the thaw (an increment's few
// pages: writing 10 MiB to the page cache takes 8-13 ms here). Made like the copy buffers, and grown in place.
class StagingArea {
public:
	StagingArea() = default;
	~StagingArea();
	StagingArea(const StagingArea&) = delete;
	StagingArea& operator=(const StagingArea&) = delete;

	// Room for `bytes` more after what is staged already.
	Status reserve(size_t bytes);
	// The next `bytes` (reserved before), taken.
	char* take(size_t bytes);
	char* at(size_t offset) { return base_ + offset; }
	size_t used() const { return used_; }

private:
	char* base_ = nullptr;
	size_t size_ = 0, used_ = 0;
};

// Whether a VMA's own pages belong in the process's page blob: private, and not a kernel special mapping.
bool has_private_pages(const image::Vma& vma);

// Page ranges [start, end) to save, by index into a process's vmas.
using PageRanges = std::map<size_t, std::vector<std::pair<uint64_t, uint64_t>>>;

// Pages [start, end) of vmas[vma] to save.
struct PagePiece {
	size_t vma = 0;
	uint64_t start = 0;
	uint64_t end = 0;
};

// The present (or swapped) private pages of pid's VMAs, in address order. Private file mappings contribute only
// the pages the process wrote (anonymous copies), not the file's pages. A vma listed in `chosen` (an incremental
// dump's written pages) gives exactly those ranges instead.
Result<std::vector<PagePiece>> plan_private_pages(pid_t pid, const std::vector<image::Vma>& vmas, MemoryStats& stats,
						   const PageRanges& chosen = {});

uint64_t total_bytes(const std::vector<PagePiece>& pieces);

// A batch of pieces, read with one process_vm_readv and written with one write to its own place in the blob.
struct CopyChunk {
	size_t first = 0, count = 0;  // pieces[first, first + count)
	uint64_t bytes = 0;
	uint64_t at = 0;  // where in the blob
};

// How copy_private_pages lays pieces out back to back from blob offset `at`: split where the blob crosses a 2 MiB
// boundary, and gathered into chunks of at most `room` bytes and IOV_MAX pieces, none across such a boundary, so
// that the page cache can hold each whole aligned 2 MiB in one folio.
struct CopyPlan {
	std::vector<PagePiece> pieces;
	std::vector<CopyChunk> chunks;
};
CopyPlan plan_copy(const std::vector<PagePiece>& planned, uint64_t at, size_t room);

// Told of each chunk as soon as it is read, before it is written: n pieces, their bytes at dst, back to back.
using ChunkRead = std::function<Status(const PagePiece* pieces, size_t n, char* dst)>;

// Copies the pieces into blob, in their order, and records them in each vma.pages.
Status copy_private_pages(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			  image::BlobWriter& blob, CopyBuffers& bufs, MemoryStats& stats, log::Progress* progress,
			  const ChunkRead& on_read = {});

// Reads the pieces into `dst` (room for all of them), hashes them into blob and records them in each vma.pages as
// if written at the blob's current offset; the caller writes the same bytes with blob.write_unhashed() later.
Status stage_private_pages(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			   image::BlobWriter& blob, char* dst, MemoryStats& stats);

// Reads the pieces into `dst` (room for all of them), back to back; records nothing.
Status read_private_pages(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			  char* dst);

// plan_private_pages, then copy_private_pages.
Status dump_private_pages(pid_t pid, std::vector<image::Vma>& vmas, image::BlobWriter& blob, CopyBuffers& bufs,
			  MemoryStats& stats, log::Progress* progress, const PageRanges& chosen = {});

// Saves the populated ranges of a shared memory object (MAP_SHARED anonymous or memfd), opened through `path`:
// /proc/PID/map_files/START-END for a mapping, /proc/PID/fd/N for a memfd held by an fd.
Status dump_shmem_object(const std::string& path, image::Shmem& obj, image::BlobWriter& blob, CopyBuffers& bufs,
			 MemoryStats& stats);

}  // namespace bpfckpt::dump
