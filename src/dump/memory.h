// Page contents: PAGEMAP_SCAN finds the pages worth saving, process_vm_readv copies them in large batches into a
// buffer while the previous buffer is written to the page blob (reading and writing overlap on two cores).
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

struct MemoryStats {
	uint64_t pages_scanned = 0;  // pages of the VMAs looked at
	uint64_t pages_written = 0;  // pages copied into blobs
	double memwrite_s = 0;       // time spent writing blobs (overlapped with copying)
};

// Two copy buffers, reused across processes: one is filled by process_vm_readv while the other is written out.
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
	static Result<char*> allocate(size_t bytes);

	char* bufs_[2] = {nullptr, nullptr};
	size_t size_ = 0;
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

// Told of each chunk as soon as it is read, before it is written: n pieces, their bytes at dst, back to back.
using ChunkRead = std::function<Status(const PagePiece* pieces, size_t n, char* dst)>;

// Copies the pieces into blob, in their order, and records them in each vma.pages.
Status copy_private_pages(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			  image::BlobWriter& blob, CopyBuffers& bufs, MemoryStats& stats, log::Progress* progress,
			  const ChunkRead& on_read = {});

// plan_private_pages, then copy_private_pages.
Status dump_private_pages(pid_t pid, std::vector<image::Vma>& vmas, image::BlobWriter& blob, CopyBuffers& bufs,
			  MemoryStats& stats, log::Progress* progress, const PageRanges& chosen = {});

// Saves the populated ranges of a shared memory object (MAP_SHARED anonymous or memfd), opened through `path`:
// /proc/PID/map_files/START-END for a mapping, /proc/PID/fd/N for a memfd held by an fd.
Status dump_shmem_object(const std::string& path, image::Shmem& obj, image::BlobWriter& blob, CopyBuffers& bufs,
			 MemoryStats& stats);

}  // namespace bpfckpt::dump
