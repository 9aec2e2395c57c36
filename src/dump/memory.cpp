#include "dump/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
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

constexpr size_t kChunk = kHugePage;     // bytes per process_vm_readv batch and write; two of these bound our RSS
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

// Records the pieces in their vmas' page runs as laid out back to back from blob offset `at`; returns their bytes.
uint64_t record_runs(std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces, uint64_t at)
{
	uint64_t bytes = 0;
	for (const PagePiece& piece : pieces) {
		add_run(vmas[piece.vma], piece.start, piece.end - piece.start, at + bytes);
		bytes += piece.end - piece.start;
	}
	return bytes;
}

// Copies chunks with two workers, this thread and one more, each reading a chunk into its own buffer and writing
// it to its place in the blob (extended to hold them all first). Only the checksum (and the on_read hook) takes the
// chunks one at a time, in blob order. The reads of one worker overlap the writes of the other.
// Why not one thread reading and another writing what it read (what this was): on these 2-vCPU VMs a writer
// copying out of a buffer the other vCPU had just filled ran 1-7x slower than a plain write (1 GiB: 200-1500 ms,
// median 2.5x), while a worker writing what it read itself runs at the plain write's speed (170-220 ms).
class ChunkCopier {
public:
	ChunkCopier(pid_t pid, int mem_fd, const std::vector<image::Vma>& vmas, const std::vector<PagePiece>& pieces,
		    std::vector<CopyChunk> chunks, image::BlobWriter& blob, MemoryStats& stats, log::Progress* progress,
		    const ChunkRead& on_read)
		: pid_(pid), mem_fd_(mem_fd), vmas_(vmas), pieces_(pieces), chunks_(std::move(chunks)), blob_(blob),
		  stats_(stats), progress_(progress), on_read_(on_read)
	{
	}

	Status run(CopyBuffers& bufs)
	{
		for (const CopyChunk& c : chunks_)
			total_ += c.bytes;
		// A second worker only for a few chunks or more: a thread costs 50-100 us to start here, and a dump of
		// 100 small processes would start 100 of them.
		std::optional<std::thread> helper;
		if (chunks_.size() >= kHelperFrom)
			helper.emplace([&] { work(bufs.get(1)); });
		work(bufs.get(0));
		if (helper)
			helper->join();
		return status_;
	}

private:
	static constexpr size_t kHelperFrom = 4;

	void work(char* buf)
	{
		for (size_t c; (c = next_.fetch_add(1)) < chunks_.size();) {
			const CopyChunk& ch = chunks_[c];
			Status read = read_remote(pid_, mem_fd_, pieces_, ch.first, ch.count, buf, vmas_);
			if (!in_order(c, std::move(read), buf))
				return;
			writing(true);
			Status written = blob_.rewrite(ch.at, buf, ch.bytes);
			writing(false);
			if (!written)
				return stop(std::move(written));
		}
	}

	// Waits for chunk c's turn, then hands it to on_read and the checksum. False once anything failed. The turn,
	// not mu_, is what keeps the two workers apart in there: mu_ is held only to take and pass it, so that the
	// other worker is never kept from its write while this one checksums.
	bool in_order(size_t c, Status read, char* buf)
	{
		{
			std::unique_lock lk(mu_);
			cv_.wait(lk, [&] { return turn_ == c || !status_; });
			if (!status_)
				return false;
		}
		const CopyChunk& ch = chunks_[c];
		if (read && on_read_)
			read = on_read_(&pieces_[ch.first], ch.count, buf);
		if (read) {
			blob_.hash(buf, ch.bytes);
			done_ += ch.bytes;
			stats_.pages_written += ch.bytes / kPageSize;
			if (progress_)
				progress_->update(done_, total_);
		}
		std::lock_guard lk(mu_);
		if (!read && status_)
			status_ = std::move(read);
		turn_ = c + 1;
		cv_.notify_all();
		return bool(status_);
	}

	// memwrite_s counts the time some worker is writing, so that it stays a part of the copy's time.
	void writing(bool starts)
	{
		std::lock_guard lk(write_mu_);
		if (starts && writers_++ == 0)
			writes_since_ = now_s();
		else if (!starts && --writers_ == 0)
			stats_.memwrite_s += now_s() - writes_since_;
	}

	// The first failure stops both workers: neither takes another turn, so no later chunk is checksummed or written.
	void stop(Status failed)
	{
		std::lock_guard lk(mu_);
		if (status_)
			status_ = std::move(failed);
		cv_.notify_all();
	}

	pid_t pid_;
	int mem_fd_;
	const std::vector<image::Vma>& vmas_;
	const std::vector<PagePiece>& pieces_;
	const std::vector<CopyChunk> chunks_;
	image::BlobWriter& blob_;
	MemoryStats& stats_;
	log::Progress* progress_;
	const ChunkRead& on_read_;
	uint64_t total_ = 0;
	std::atomic<size_t> next_ = 0;  // the next chunk a worker takes
	uint64_t done_ = 0;             // with the checksum, stats_.pages_written and progress_: the turn holder's
	std::mutex mu_;                 // guards turn_ and status_
	std::condition_variable cv_;
	size_t turn_ = 0;  // the chunk whose turn it is in blob order
	Status status_;
	std::mutex write_mu_;  // guards what follows and stats_.memwrite_s
	int writers_ = 0;      // workers writing now, since writes_since_
	double writes_since_ = 0;
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

// A page-cache write of a whole aligned 2 MiB gets one 2 MiB folio, which the page allocator takes from the big
// free blocks that the last big file freed; 2 MiB writes 16 KiB off that boundary (where a process's big mapping
// starts in its blob, after a few small ones) get small folios, taken from scattered small blocks that the VM may
// have handed back to the host: right after it did, 256 MiB written so took 120-250 ms against 43-48 ms aligned,
// and a dump of 1 GiB in the bench's warm rounds 194-317 ms against 173-195.
CopyPlan plan_copy(const std::vector<PagePiece>& planned, uint64_t at, size_t room)
{
	CopyPlan plan;
	for (uint64_t off = at; const PagePiece& p : planned)
		for (uint64_t s = p.start; s < p.end;) {
			uint64_t e = std::min<uint64_t>(p.end, s + kChunk - off % kChunk);
			plan.pieces.push_back({p.vma, s, e});
			off += e - s;
			s = e;
		}
	for (size_t i = 0; i < plan.pieces.size();) {
		CopyChunk c{i, 0, 0, at};
		uint64_t limit = std::min<uint64_t>(room, kChunk - at % kChunk);
		while (i < plan.pieces.size() && c.count < kMaxIov &&
		       c.bytes + (plan.pieces[i].end - plan.pieces[i].start) <= limit)
			c.bytes += plan.pieces[i].end - plan.pieces[i].start, c.count++, i++;
		at += c.bytes;
		plan.chunks.push_back(c);
	}
	return plan;
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
	uint64_t at = blob.offset(), total = total_bytes(planned);
	BCK_CHECK(bufs.reserve(total));
	BCK_CHECK(blob.extend_to(at + total));
	CopyPlan plan = plan_copy(planned, at, bufs.size());
	record_runs(vmas, plan.pieces, at);
	ChunkCopier copier(pid, mem.get(), vmas, plan.pieces, std::move(plan.chunks), blob, stats, progress, on_read);
	return copier.run(bufs);
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
	uint64_t bytes = record_runs(vmas, pieces, blob.offset());
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
