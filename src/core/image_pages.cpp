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

Status ImagePages::can_read(const image::Image& img, const std::string& dir)
{
	if (img.parent)
		return fail(ExitCode::unsupported, "{}: an incremental image (parent {}): its pages cannot be read yet", dir,
			    *img.parent);
	return {};
}

Result<int> ImagePages::blob_fd(const std::string& name)
{
	auto it = blobs_.find(name);
	if (it != blobs_.end())
		return it->second.get();
	UniqueFd fd(::open((dir_ + "/" + name).c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_errno(ExitCode::io, errno, "{}: open blob {}", dir_, name);
	int raw = fd.get();
	blobs_.emplace(name, std::move(fd));
	return raw;
}

// Runs are keyed by address (a vma's private pages) or by offset in a shared memory object; key_shift turns an
// address into a key (mod 2^64). Copies the part of `want` the runs hold into out (at address - out_base) and
// records the rest as holes, by address.
Status ImagePages::copy_runs(const std::vector<image::PageRun>& runs, const std::string& blob, uint64_t key_shift,
			     Span want, uint64_t out_base, char* out, std::vector<Span>& holes)
{
	uint64_t lo = want.start + key_shift, hi = want.end + key_shift, at = lo;
	auto it = std::upper_bound(runs.begin(), runs.end(), lo,
				   [](uint64_t key, const image::PageRun& r) { return key < run_end(r); });
	for (; it != runs.end() && it->start < hi; ++it) {
		uint64_t s = std::max(lo, it->start), e = std::min(hi, run_end(*it));
		add_hole(holes, {at - key_shift, s - key_shift});
		int fd = BCK_TRY(blob_fd(blob));
		size_t n = BCK_TRY(context(read_at(fd, out + (s - key_shift - out_base), e - s,
						   off_t(it->blob_offset + (s - it->start))),
					   "{}: blob {}", dir_, blob));
		if (n != e - s)
			return fail(ExitCode::bad_image, "{}: blob {} ends before offset {}: changed since it was checked",
				    dir_, blob, it->blob_offset + (s - it->start) + n);
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
			BCK_CHECK(copy_runs(v.pages, p.pages_blob, 0, seg, addr, out, holes));
		} else {
			// Private pages first (a private copy wins), then the object: address x is offset
			// x - start + offset in it.
			std::vector<Span> rest;
			BCK_CHECK(copy_runs(v.pages, p.pages_blob, 0, seg, addr, out, rest));
			const image::Shmem& obj = img_.shmem[*v.shmem];
			for (Span h : rest)
				BCK_CHECK(copy_runs(obj.pages, obj.blob, v.offset - v.start, h, addr, out, holes));
		}
		at = seg.end;
	}
	add_hole(holes, {at, end});
	return holes;
}

}  // namespace bpfckpt::core
