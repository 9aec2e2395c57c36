#include "dump/pre_copy.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/address_ranges.h"
#include "dump/pagemap_scan.h"
#include "dump/ptrace_freezer.h"

namespace bpfckpt::dump {

namespace {

// The tracker a previous --track-mem left, or a new one made by thread tid, which stops only for the injected
// userfaultfd(). nullopt when tid cannot be stopped (it exited).
Result<std::optional<MemTracker>> arm(const TrackedProcess& who, pid_t tid, uint64_t syscall_addr)
{
	if (auto existing = BCK_TRY(MemTracker::attach(who)))
		return existing;
	PtraceFreezer one;
	if (!BCK_TRY(one.seize(tid)))
		return std::nullopt;
	return std::optional<MemTracker>(BCK_TRY(MemTracker::create(who, tid, syscall_addr)));
}

// Registers the trackable vmas and clears their marks: from here on every write to them shows.
Status reset_marks(MemTracker& tracker, int pagemap, const std::vector<image::Vma>& vmas)
{
	for (const image::Vma& v : vmas)
		if (trackable(v) && BCK_TRY(tracker.track(v.start, v.end)))
			BCK_TRY(tracker.take_written(pagemap, v.start, v.end));
	return {};
}

bool same_range(const image::Vma& a, const image::Vma& b)
{
	return a.start == b.start && a.end == b.end && a.kind == b.kind && a.shared == b.shared;
}

// What of one piece changed since the reset: its written pages, or all of it when the tracker cannot tell.
Result<AddressRanges> changed_in(MemTracker& tracker, int pagemap, const image::Vma& v, const PagePiece& piece)
{
	AddressRanges whole{{piece.start, piece.end}};
	if (!trackable(v))
		return whole;  // a private file mapping: no marks
	auto marks = BCK_TRY(tracker.read_marks(pagemap, piece.start, piece.end));
	if (!marks)
		return whole;  // no longer registered (mremap'd there and back)
	return intersect(intersect(marks->written, marks->present), whole);
}

}  // namespace

Result<bool> PreCopy::add(const TrackedProcess& who, pid_t tid, uint64_t syscall_addr, std::vector<image::Vma> vmas,
			  std::unique_ptr<image::BlobWriter> blob, CopyBuffers& bufs, MemoryStats& stats,
			  log::Progress* progress)
{
	std::optional<MemTracker> tracker = BCK_TRY(arm(who, tid, syscall_addr));
	if (!tracker)
		return false;
	BCK_CHECK(tracker->forget_last_image());  // its marks are reset below: no image is their parent any more
	UniqueFd pagemap = BCK_TRY(open_pagemap(who.pid));
	BCK_CHECK(reset_marks(*tracker, pagemap.get(), vmas));
	// Planned after the reset: a page that appears after this is not in the copy, and the freeze reads it.
	std::vector<PagePiece> pieces = BCK_TRY(plan_private_pages(who.pid, vmas, stats));
	if (Status copied = copy_private_pages(who.pid, vmas, pieces, *blob, bufs, stats, progress); !copied) {
		// It runs: a mapping the plan listed can be unmapped or replaced under the copy, and reading it then
		// fails (EIO from /proc/PID/mem, EFAULT from process_vm_readv). The freeze copies this process instead.
		int err = copied.error().err;
		if (err != EIO && err != EFAULT && err != ENOMEM)
			return std::unexpected(copied.error());
		log::debug("pid {}: {}: copied while frozen instead", who.pid, copied.error().describe());
		return false;
	}
	copied_.emplace(who.pid, PreCopied{who, std::move(*tracker), std::move(vmas), std::move(blob)});
	return true;
}

Result<uint64_t> PreCopy::written_bytes()
{
	uint64_t n = 0;
	for (auto& [pid, pc] : copied_) {
		auto pagemap = open_pagemap(pid);
		if (!pagemap)
			continue;  // it exited: the freeze says so
		for (const image::Vma& v : pc.vmas) {
			if (!trackable(v))
				continue;
			if (auto marks = BCK_TRY(pc.tracker.read_marks(pagemap->get(), v.start, v.end)))
				for (auto [s, e] : marks->written)
					n += e - s;
		}
	}
	return n;
}

std::optional<PreCopied> PreCopy::take(pid_t pid)
{
	auto it = copied_.find(pid);
	if (it == copied_.end())
		return std::nullopt;
	std::optional<PreCopied> pc(std::move(it->second));
	copied_.erase(it);
	return pc;
}

namespace {

// Places one frozen piece against the copy: the parts the copy holds keep their blob places and are read again
// where `changed` says; the parts it does not hold (pages that appeared since) get new places at the blob's end
// (`tail`) and are read whole. Appends the piece's runs to `runs`, in address order.
void place_piece(const PagePiece& piece, const std::vector<image::PageRun>& copied, const AddressRanges& changed,
		 uint64_t& tail, std::vector<image::PageRun>& runs, std::vector<PageRewrite>& out)
{
	auto add_run = [&](uint64_t s, uint64_t e, uint64_t at) {
		runs.push_back({s, (e - s) / image::kPageSize, at});
	};
	auto fresh = [&](uint64_t s, uint64_t e) {
		add_run(s, e, tail);
		out.push_back({PagePiece{piece.vma, s, e}, tail});
		tail += e - s;
	};
	uint64_t at = piece.start;
	for (const image::PageRun& r : copied) {
		uint64_t rs = r.start, re = r.start + r.npages * image::kPageSize;
		if (re <= at)
			continue;
		if (rs >= piece.end)
			break;
		if (rs > at)
			fresh(at, rs);
		uint64_t s = std::max(at, rs), e = std::min(piece.end, re);
		add_run(s, e, r.blob_offset + (s - rs));
		for (auto [cs, ce] : intersect(changed, AddressRanges{{s, e}}))
			out.push_back({PagePiece{piece.vma, cs, ce}, r.blob_offset + (cs - rs)});
		at = e;
	}
	if (at < piece.end)
		fresh(at, piece.end);
}

}  // namespace

Result<std::optional<std::vector<PageRewrite>>> pages_changed_since(PreCopied& pc, image::Process& p)
{
	if (pc.who.start_time != p.start_time || pc.who.mm_key != p.mm_key)
		return std::nullopt;  // it exec'd: another address space
	MemoryStats rescan;  // the copy counted these pages
	std::vector<PagePiece> now = BCK_TRY(plan_private_pages(pid_t(p.pid), p.vmas, rescan));
	UniqueFd pagemap = BCK_TRY(open_pagemap(pid_t(p.pid)));
	static const std::vector<image::PageRun> none;
	std::vector<PageRewrite> out;
	uint64_t tail = pc.blob->offset();
	// Both vma lists and the pieces are in address order: one walk, not a search per vma (this runs while frozen).
	auto was = pc.vmas.begin();
	size_t i = 0;
	for (size_t vi = 0; vi < p.vmas.size(); vi++) {
		image::Vma& v = p.vmas[vi];
		while (was != pc.vmas.end() && was->start < v.start)
			++was;
		// A vma that came, or whose range changed, since the copy has nothing there to keep.
		bool kept = was != pc.vmas.end() && same_range(v, *was);
		const std::vector<image::PageRun>& copied = kept ? was->pages : none;
		std::vector<image::PageRun> runs;
		for (; i < now.size() && now[i].vma == vi; i++) {
			AddressRanges changed = BCK_TRY(changed_in(pc.tracker, pagemap.get(), v, now[i]));
			place_piece(now[i], copied, changed, tail, runs, out);
		}
		if (!runs.empty() || kept)
			v.pages = std::move(runs);  // pages the copy holds but the process no longer has are left out
	}
	// Pages copied but gone now stay in the blob unreferenced; the new ones are written past its end.
	BCK_CHECK(pc.blob->extend_to(tail));
	return out;
}

uint64_t rewrite_bytes(const std::vector<PageRewrite>& rewrites)
{
	uint64_t n = 0;
	for (const PageRewrite& r : rewrites)
		n += r.piece.end - r.piece.start;
	return n;
}

Status read_rewrites(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PageRewrite>& rewrites,
		     char* dst)
{
	std::vector<PagePiece> pieces;
	pieces.reserve(rewrites.size());
	for (const PageRewrite& r : rewrites)
		pieces.push_back(r.piece);
	return read_private_pages(pid, vmas, pieces, dst);
}

Status write_rewrites(image::BlobWriter& blob, const std::vector<PageRewrite>& rewrites, const char* src)
{
	for (const PageRewrite& r : rewrites) {
		uint64_t len = r.piece.end - r.piece.start;
		BCK_CHECK(blob.rewrite(r.blob_offset, src, len));
		src += len;
	}
	return {};
}

Status rewrite_through(pid_t pid, const std::vector<image::Vma>& vmas, const std::vector<PageRewrite>& rewrites,
		       image::BlobWriter& blob, char* buf, size_t size)
{
	std::vector<PageRewrite> batch;
	uint64_t held = 0;
	auto flush = [&]() -> Status {
		BCK_CHECK(read_rewrites(pid, vmas, batch, buf));
		BCK_CHECK(write_rewrites(blob, batch, buf));
		batch.clear();
		held = 0;
		return {};
	};
	for (const PageRewrite& r : rewrites) {
		for (uint64_t at = r.piece.start; at < r.piece.end;) {
			uint64_t len = std::min<uint64_t>(r.piece.end - at, size - held);
			batch.push_back({PagePiece{r.piece.vma, at, at + len}, r.blob_offset + (at - r.piece.start)});
			held += len;
			at += len;
			if (held == size)
				BCK_CHECK(flush());
		}
	}
	return batch.empty() ? Status{} : flush();
}

void PreCopy::discard(const std::string& dir)
{
	for (auto& [pid, pc] : copied_)
		::unlink((dir + "/" + pc.blob->name()).c_str());
	copied_.clear();
}

}  // namespace bpfckpt::dump
