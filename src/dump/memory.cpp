#include "dump/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "bpfckpt/compat.h"
#include "bpfckpt/records.h"
#include "common/address_ranges.h"
#include "common/clock.h"
#include "common/fd.h"
#include "dump/pagemap_scan.h"

namespace bpfckpt::dump {

namespace {

using image::kPageSize;

constexpr size_t kHugePage = 2u << 20;   // what the copy buffers and the staging area are made of
constexpr size_t kChunk = 8u << 20;      // bytes per process_vm_readv batch; two of these bound our RSS
constexpr size_t kMaxIov = 1024;         // IOV_MAX


// Pages that hold data of the process's own: present or swapped, but not page-cache pages of a file (for a
// private file mapping those are the file's, unchanged) and not the shared zero page (restore reads zeros anyway).
// Only a file mapping is asked about PAGE_IS_FILE: telling file pages from anonymous ones makes the kernel look at
// every page's struct page, which triples the cost of the walk (20 instead of 2-7 ms per GiB of 4 KiB pages), and
// the walk is part of the frozen time.
Result<std::vector<std::pair<uint64_t, uint64_t>>> scan_private(int pagemap, uint64_t start, uint64_t end,
								 bool file_backed)
{
	std::vector<std::pair<uint64_t, uint64_t>> out;
	ScanQuery q;
	q.category_inverted = PAGE_IS_PFNZERO | (file_backed ? PAGE_IS_FILE : 0);
	q.category_mask = q.category_inverted;
	q.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	q.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	if (int err = pagemap_scan(pagemap, start, end, q, [&](const page_region& r) { append_range(out, r.start, r.end); }))
		return fail_sys(err, "PAGEMAP_SCAN {:x}-{:x}", start, end);
	return out;
}

// Reads [start, end) of pid's memory into dst: process_vm_readv, or /proc/PID/mem for mappings the process
// itself cannot read (PROT_NONE with data), which process_vm_readv refuses.
Status read_remote(pid_t pid, int mem_fd, const std::vector<PagePiece>& pieces, size_t first, size_t count, char* dst,
		   const std::vector<image::Vma>& vmas)
{
	std::vector<iovec> remote;
	remote.reserve(count);
	size_t total = 0;
	bool all_readable = true;
	for (size_t i = first; i < first + count; i++) {
		remote.push_back({reinterpret_cast<void*>(pieces[i].start), pieces[i].end - pieces[i].start});
		total += pieces[i].end - pieces[i].start;
		all_readable &= (vmas[pieces[i].vma].prot & PROT_READ) != 0;
	}
	if (all_readable) {
		iovec local{dst, total};
		ssize_t n = process_vm_readv(pid, &local, 1, remote.data(), remote.size(), 0);
		if (n == ssize_t(total))
			return {};
		if (n < 0 && errno == ESRCH)
			return fail(ExitCode::target_busy, "pid {} exited during the dump", pid);
		// A short read: some page could not be read this way; fall through to /proc/PID/mem.
	}
	char* p = dst;
	for (const iovec& r : remote) {
		size_t done = 0;
		while (done < r.iov_len) {
			ssize_t n = pread(mem_fd, p + done, r.iov_len - done,
					  off_t(reinterpret_cast<uint64_t>(r.iov_base) + done));
			if (n <= 0)
				return fail_sys(n < 0 ? errno : EIO, "pid {}: read memory at {:x}", pid,
						reinterpret_cast<uint64_t>(r.iov_base) + done);
			done += size_t(n);
		}
		p += r.iov_len;
	}
	return {};
}

// Splits pieces so none is larger than a chunk.
std::vector<PagePiece> split(const std::vector<PagePiece>& in)
{
	std::vector<PagePiece> out;
	for (const PagePiece& p : in)
		for (uint64_t s = p.start; s < p.end; s += kChunk)
			out.push_back({p.vma, s, std::min<uint64_t>(p.end, s + kChunk)});
	return out;
}

void add_run(image::Vma& vma, uint64_t start, uint64_t len, uint64_t blob_offset)
{
	if (!vma.pages.empty()) {
		image::PageRun& last = vma.pages.back();
		if (last.start + last.npages * kPageSize == start &&
		    last.blob_offset + last.npages * kPageSize == blob_offset) {
			last.npages += len / kPageSize;
			return;
		}
	}
	vma.pages.push_back({start, len / kPageSize, blob_offset});
}

// Fresh memory costs a fault per 4 KiB page on first use, 12-16 us here, and these buffers are filled while the
// target is frozen: 16 MiB of them took 55-65 ms as 4 KiB pages, 15 ms populated in bulk, and 1.5 ms as huge pages.
// So a buffer of 2 MiB or more is a whole number of 2 MiB-aligned huge pages (the populate falls back to 4 KiB
// pages where THP is off).
Result<char*> allocate_buffer(size_t bytes)
{
	size_t align = bytes >= kHugePage ? kHugePage : kPageSize;
	void* m = mmap(nullptr, bytes + align - kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return fail_sys(errno, "allocate a {} byte copy buffer", bytes);
	uintptr_t raw = reinterpret_cast<uintptr_t>(m), start = (raw + align - 1) & ~uintptr_t(align - 1);
	if (start > raw)
		munmap(m, start - raw);
	if (size_t tail = raw + bytes + align - kPageSize - (start + bytes))
		munmap(reinterpret_cast<void*>(start + bytes), tail);
	char* b = reinterpret_cast<char*>(start);
	if (align == kHugePage)
		madvise(b, bytes, MADV_HUGEPAGE);
	madvise(b, bytes, MADV_POPULATE_WRITE);  // best effort: without it the pages fault in on first use
	return b;
}

// The writer beside the reader: one thread that writes each chunk the reader hands it, in order. A thread per
// chunk (std::async) cost 50-100 us to start here, 128 times per GiB.
class ChunkWriter {
public:
	ChunkWriter(image::BlobWriter& blob, MemoryStats& stats) : blob_(blob), stats_(stats), thread_([this] { run(); })
	{
	}
	~ChunkWriter()
	{
		{
			std::lock_guard lk(mu_);
			quit_ = true;
		}
		cv_.notify_all();
		thread_.join();
	}
	ChunkWriter(const ChunkWriter&) = delete;
	ChunkWriter& operator=(const ChunkWriter&) = delete;

	// Waits for the chunk before, then hands this one over; the first failure stops everything after it.
	Status submit(const char* data, size_t len)
	{
		BCK_CHECK(wait());
		{
			std::lock_guard lk(mu_);
			data_ = data;
			len_ = len;
		}
		cv_.notify_all();
		return {};
	}

	// Until the chunk handed over last is written.
	Status wait()
	{
		std::unique_lock lk(mu_);
		cv_.wait(lk, [&] { return !data_; });
		return status_;
	}

private:
	void run()
	{
		std::unique_lock lk(mu_);
		for (;;) {
			cv_.wait(lk, [&] { return quit_ || data_; });
			if (!data_)
				return;
			const char* data = data_;
			size_t len = len_;
			lk.unlock();
			double t0 = now_s();
			Status st = status_ ? blob_.write_unhashed(data, len) : status_;
			stats_.memwrite_s += now_s() - t0;
			lk.lock();
			status_ = std::move(st);
			data_ = nullptr;
			cv_.notify_all();
		}
	}

	image::BlobWriter& blob_;
	MemoryStats& stats_;
	std::mutex mu_;
	std::condition_variable cv_;
	const char* data_ = nullptr;  // the chunk being written, null when none
	size_t len_ = 0;
	bool quit_ = false;
	Status status_;
	std::thread thread_;  // last: it starts at once and uses the members above
};

}  // namespace

CopyBuffers::~CopyBuffers()
{
	for (char* b : bufs_)
		if (b)
			munmap(b, size_);
}

Status CopyBuffers::reserve(size_t bytes)
{
	bytes = std::min(kChunk, (bytes + kPageSize - 1) & ~(kPageSize - 1));
	if (bytes >= kHugePage)
		bytes = (bytes + kHugePage - 1) & ~(kHugePage - 1);
	if (bytes <= size_)
		return {};
	for (char*& b : bufs_) {
		if (b)
			munmap(b, size_);
		b = nullptr;
	}
	size_ = 0;
	for (char*& b : bufs_)
		b = BCK_TRY(allocate_buffer(bytes));
	size_ = bytes;
	return {};
}

StagingArea::~StagingArea()
{
	if (base_)
		munmap(base_, size_);
}

Status StagingArea::reserve(size_t bytes)
{
	size_t want = (used_ + bytes + kHugePage - 1) & ~(kHugePage - 1);
	if (want <= size_)
		return {};
	if (!base_) {
		base_ = BCK_TRY(allocate_buffer(want));
		size_ = want;
		return {};
	}
	void* m = mremap(base_, size_, want, MREMAP_MAYMOVE);  // keeps what is staged
	if (m == MAP_FAILED)
		return fail_sys(errno, "grow the staging area to {} bytes", want);
	base_ = static_cast<char*>(m);
	madvise(base_ + size_, want - size_, MADV_HUGEPAGE);
	madvise(base_ + size_, want - size_, MADV_POPULATE_WRITE);
	size_ = want;
	return {};
}

char* StagingArea::take(size_t bytes)
{
	char* p = base_ + used_;
	used_ += bytes;
	return p;
}

uint64_t total_bytes(const std::vector<PagePiece>& pieces)
{
	uint64_t n = 0;
	for (const PagePiece& p : pieces)
		n += p.end - p.start;
	return n;
}

bool has_private_pages(const image::Vma& vma)
{
	if (vma.shared || vma.kind == "vdso" || vma.kind == "vvar" || vma.kind == "vvar_vclock")
		return false;
	return !(vma.vm_flags & (BCK_VM_IO | BCK_VM_PFNMAP));
}

Result<std::vector<PagePiece>> plan_private_pages(pid_t pid, const std::vector<image::Vma>& vmas, MemoryStats& stats,
						   const PageRanges& chosen)
{
	UniqueFd pagemap = BCK_TRY(open_pagemap(pid));
	std::vector<PagePiece> found;
	for (size_t i = 0; i < vmas.size(); i++) {
		if (!has_private_pages(vmas[i]))
			continue;
		stats.pages_scanned += (vmas[i].end - vmas[i].start) / kPageSize;
		auto given = chosen.find(i);
		auto ranges = given != chosen.end()
				      ? given->second
				      : BCK_TRY(context(scan_private(pagemap.get(), vmas[i].start, vmas[i].end,
								       vmas[i].kind == "file"),
							  "pid {}", pid));
		for (auto [s, e] : ranges)
			found.push_back({i, s, e});
	}
	return found;
}

Status copy_private_pages(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<PagePiece>& planned,
			  image::BlobWriter& blob, CopyBuffers& bufs, MemoryStats& stats, log::Progress* progress,
			  const ChunkRead& on_read)
{
	std::string path = fmt::format("/proc/{}/mem", pid);
	UniqueFd mem(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!mem)
		return fail_sys(errno, "open {}", path);
	std::vector<PagePiece> pieces = split(planned);
	uint64_t total = total_bytes(pieces);
	BCK_CHECK(bufs.reserve(total));
	// A single chunk is written here: a writer thread costs more to start (50-100 us) than it would overlap, and a
	// dump of 100 small processes started 100 of them.
	std::optional<ChunkWriter> writer;
	if (total > bufs.size())
		writer.emplace(blob, stats);
	int cur = 0;
	uint64_t done = 0;
	for (size_t i = 0; i < pieces.size();) {
		// Gather pieces into one chunk.
		size_t n = 0, bytes = 0;
		while (i + n < pieces.size() && n < kMaxIov &&
		       bytes + (pieces[i + n].end - pieces[i + n].start) <= bufs.size())
			bytes += pieces[i + n].end - pieces[i + n].start, n++;
		char* dst = bufs.get(cur);
		BCK_CHECK(read_remote(pid, mem.get(), pieces, i, n, dst, vmas));
		if (on_read)
			BCK_CHECK(on_read(&pieces[i], n, dst));
		// Checksummed here, while the writer thread still writes the previous chunk: hashing in the writer
		// made it the bottleneck with the SSE2 hash, and was no faster with the AVX-512 one.
		blob.hash(dst, bytes);
		if (writer)
			BCK_CHECK(writer->wait());
		// The previous chunk is fully written, so the blob's offset is where this chunk will start.
		uint64_t at = blob.offset();
		for (size_t k = i; k < i + n; k++) {
			uint64_t len = pieces[k].end - pieces[k].start;
			add_run(vmas[pieces[k].vma], pieces[k].start, len, at);
			at += len;
		}
		if (writer) {
			BCK_CHECK(writer->submit(dst, bytes));
		} else {
			double t0 = now_s();
			BCK_CHECK(blob.write_unhashed(dst, bytes));
			stats.memwrite_s += now_s() - t0;
		}
		done += bytes;
		stats.pages_written += bytes / kPageSize;
		if (progress)
			progress->update(done, total);
		i += n;
		cur ^= 1;
	}
	return writer ? writer->wait() : Status{};
}

Status read_private_pages(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			  char* dst)
{
	std::string path = fmt::format("/proc/{}/mem", pid);
	UniqueFd mem(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!mem)
		return fail_sys(errno, "open {}", path);
	for (size_t i = 0; i < pieces.size();) {
		size_t n = std::min(kMaxIov, pieces.size() - i);
		BCK_CHECK(read_remote(pid, mem.get(), pieces, i, n, dst, vmas));
		for (size_t k = i; k < i + n; k++)
			dst += pieces[k].end - pieces[k].start;
		i += n;
	}
	return {};
}

Status stage_private_pages(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
			   image::BlobWriter& blob, char* dst, MemoryStats& stats)
{
	uint64_t at = blob.offset(), bytes = 0;
	for (const PagePiece& piece : pieces) {
		uint64_t len = piece.end - piece.start;
		add_run(vmas[piece.vma], piece.start, len, at + bytes);
		bytes += len;
	}
	BCK_CHECK(read_private_pages(pid, vmas, pieces, dst));
	blob.hash(dst, bytes);
	stats.pages_written += bytes / kPageSize;
	return {};
}

Status dump_private_pages(pid_t pid, std::vector<image::Vma>& vmas, image::BlobWriter& blob, CopyBuffers& bufs,
			  MemoryStats& stats, log::Progress* progress, const PageRanges& chosen)
{
	std::vector<PagePiece> pieces = BCK_TRY(plan_private_pages(pid, vmas, stats, chosen));
	return copy_private_pages(pid, vmas, pieces, blob, bufs, stats, progress);
}

Status dump_shmem_object(const std::string& path, image::Shmem& obj, image::BlobWriter& blob, CopyBuffers& bufs,
			 MemoryStats& stats)
{
	// Opened as a file, the object shows every populated page, also those no process has mapped right now.
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", path);
	struct stat st;
	if (fstat(fd.get(), &st) != 0)
		return fail_sys(errno, "stat {}", path);
	obj.size = uint64_t(st.st_size);
	BCK_CHECK(blob.pad_to(kPageSize));
	BCK_CHECK(bufs.reserve(size_t(st.st_size)));
	char* buf = bufs.get(0);
	off_t at = 0;
	while (at < st.st_size) {
		off_t data = lseek(fd.get(), at, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			return fail_sys(errno, "{}: SEEK_DATA", path);
		}
		off_t hole = lseek(fd.get(), data, SEEK_HOLE);
		if (hole < 0)
			return fail_sys(errno, "{}: SEEK_HOLE", path);
		data &= ~off_t(kPageSize - 1);
		hole = std::min<off_t>((hole + off_t(kPageSize) - 1) & ~off_t(kPageSize - 1), st.st_size);
		obj.pages.push_back({uint64_t(data), uint64_t(hole - data + off_t(kPageSize) - 1) / kPageSize,
				     blob.offset()});
		for (off_t p = data; p < hole;) {
			size_t want = size_t(std::min<off_t>(hole - p, off_t(bufs.size())));
			ssize_t n = pread(fd.get(), buf, want, p);
			if (n <= 0)
				return fail_sys(n < 0 ? errno : EIO, "read {} at {}", path, p);
			BCK_CHECK(blob.write(buf, size_t(n)));
			p += n;
		}
		BCK_CHECK(blob.pad_to(kPageSize));
		stats.pages_written += obj.pages.back().npages;
		at = hole;
	}
	return {};
}

}  // namespace bpfckpt::dump
