#include "core/image_pages.h"

#include <fcntl.h>

#include <algorithm>

#include "core/read_at.h"

namespace bpfckpt::core {

namespace {

using image::kPageSize;

void add_hole(std::vector<Span>& holes, Span h)
{
	if (h.start >= h.end)
		return;
	if (!holes.empty() && holes.back().end == h.start)
		holes.back().end = h.end;
	else
		holes.push_back(h);
}

uint64_t run_end(const image::PageRun& r)
{
	return r.start + r.npages * kPageSize;
}

}  // namespace

Result<int> ImagePages::blob_fd(const std::string& path)
{
	auto it = blobs_.find(path);
	if (it != blobs_.end())
		return it->second.get();
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_errno(ExitCode::io, errno, "open blob {}", path);
	int raw = fd.get();
	blobs_.emplace(path, std::move(fd));
	return raw;
}

Status ImagePages::read_blob(const std::string& path, uint64_t offset, char* out, uint64_t len)
{
	int fd = BCK_TRY(blob_fd(path));
	size_t n = BCK_TRY(context(read_at(fd, out, len, off_t(offset)), "blob {}", path));
	if (n != len)
		return fail(ExitCode::bad_image, "blob {} ends before offset {}: changed since it was checked", path,
			    offset + n);
	return {};
}

// The private pages of `want`, from whichever image of the chain holds them.
Status ImagePages::copy_private(const image::Process& p, Span want, uint64_t out_base, char* out,
				std::vector<Span>& holes)
{
	runs_.clear();
	uint64_t lo = want.start & ~(kPageSize - 1), hi = (want.end + kPageSize - 1) & ~(kPageSize - 1);
	BCK_CHECK(chain_.resolve_into(p.pid, lo, hi, runs_));
	uint64_t at = want.start;
	for (const image::ResolvedRun& r : runs_) {
		uint64_t s = std::max(want.start, r.start), e = std::min(want.end, r.start + r.npages * kPageSize);
		if (s >= e)
			continue;
		add_hole(holes, {at, s});
		BCK_CHECK(read_blob(chain_.blob_path(r), r.blob_offset + (s - r.start), out + (s - out_base), e - s));
		at = e;
	}
	add_hole(holes, {at, want.end});
	return {};
}

// Shared memory runs are keyed by offset in their object; key_shift turns an address into that offset (mod 2^64).
Status ImagePages::copy_shared(const image::Shmem& obj, uint64_t key_shift, Span want, uint64_t out_base, char* out,
			       std::vector<Span>& holes)
{
	const std::vector<image::PageRun>& runs = obj.pages;
	uint64_t lo = want.start + key_shift, hi = want.end + key_shift, at = lo;
	auto it = std::upper_bound(runs.begin(), runs.end(), lo,
				   [](uint64_t key, const image::PageRun& r) { return key < run_end(r); });
	for (; it != runs.end() && it->start < hi; ++it) {
		uint64_t s = std::max(lo, it->start), e = std::min(hi, run_end(*it));
		add_hole(holes, {at - key_shift, s - key_shift});
		BCK_CHECK(read_blob(chain_.newest_dir() + "/" + obj.blob, it->blob_offset + (s - it->start),
				    out + (s - key_shift - out_base), e - s));
		at = e;
	}
	add_hole(holes, {at - key_shift, hi - key_shift});
	return {};
}

Result<std::vector<Span>> ImagePages::read(const image::Process& p, uint64_t addr, uint64_t len, char* out)
{
	std::vector<Span> holes;
	uint64_t end = addr + len, at = addr;
	auto it = std::upper_bound(p.vmas.begin(), p.vmas.end(), addr,
				   [](uint64_t a, const image::Vma& v) { return a < v.end; });
	for (; it != p.vmas.end() && it->start < end; ++it) {
		const image::Vma& v = *it;
		Span seg{std::max(at, v.start), std::min(end, v.end)};
		add_hole(holes, {at, seg.start});
		if (!v.shmem) {
			BCK_CHECK(copy_private(p, seg, addr, out, holes));
		} else {
			// Private pages first (a private copy wins), then the object: address x is offset
			// x - start + offset in it.
			std::vector<Span> rest;
			BCK_CHECK(copy_private(p, seg, addr, out, rest));
			const image::Shmem& obj = chain_.newest().shmem[*v.shmem];
			for (Span h : rest)
				BCK_CHECK(copy_shared(obj, v.offset - v.start, h, addr, out, holes));
		}
		at = seg.end;
	}
	add_hole(holes, {at, end});
	return holes;
}

}  // namespace bpfckpt::core
