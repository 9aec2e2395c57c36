#include "dump/live_copy.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "dump/pagemap_scan.h"
#include "dump/ptrace_freezer.h"
#include "dump/remote_uffd.h"

namespace bpfckpt::dump {

namespace {

using image::kPageSize;

// Write-protects (or releases, waking the threads that wait on it) [start, end). False on EAGAIN: the address
// space is changing under an event (munmap, MADV_DONTNEED, mremap) until that event is read. ENOENT: a mapping in
// the range is no longer ours (it was unmapped, and maybe mapped again, while the process ran), so there is
// nothing of ours to protect or release there. Whatever that loses is told by the unmap event (copy lost), or,
// before the freeze, made up at the freeze (arm_frozen protects what is not protected).
Result<bool> try_write_protect(int uffd, pid_t pid, uint64_t start, uint64_t end, bool wp)
{
	uffdio_writeprotect w{};
	w.range.start = start;
	w.range.len = end - start;
	w.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w) == 0 || errno == ENOENT)
		return true;
	if (errno == EAGAIN)
		return false;
	return fail_sys(errno, "pid {}: UFFDIO_WRITEPROTECT {:x}-{:x} ({})", pid, start, end, wp ? "protect" : "release");
}

// The same, waiting for the event to be read: by the handler thread, never by the caller.
Status write_protect(int uffd, pid_t pid, uint64_t start, uint64_t end, bool wp)
{
	for (int tries = 0; !BCK_TRY(try_write_protect(uffd, pid, start, end, wp)); tries++) {
		if (tries == 100000)
			return fail(ExitCode::failure, "pid {}: UFFDIO_WRITEPROTECT {:x}-{:x}: the address space kept "
				    "changing for 10 s", pid, start, end);
		usleep(100);
	}
	return {};
}

// false when this kind of mapping cannot be write-protected by a userfaultfd that is not WP_ASYNC (a private file
// mapping), or when the process already uses userfaultfd on it.
Result<bool> register_wp(int uffd, pid_t pid, const image::Vma& v)
{
	uffdio_register reg{};
	reg.range.start = v.start;
	reg.range.len = v.end - v.start;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) == 0)
		return true;
	if (errno == EINVAL || errno == EPERM || errno == EBUSY)
		return false;
	return fail_sys(errno, "pid {}: UFFDIO_REGISTER {:x}-{:x}", pid, v.start, v.end);
}

}  // namespace

Result<std::optional<LiveCopy>> LiveCopy::create(pid_t pid, pid_t tid, uint64_t syscall_addr)
{
	auto uffd = BCK_TRY(remote_userfaultfd(
		pid, tid, syscall_addr, O_CLOEXEC | O_NONBLOCK,
		UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP));
	if (!uffd)
		return std::nullopt;
	LiveCopy lc(pid, std::move(*uffd));
	std::string mem = fmt::format("/proc/{}/mem", pid);
	lc.mem_ = UniqueFd(::open(mem.c_str(), O_RDONLY | O_CLOEXEC));
	if (!lc.mem_)
		return fail_sys(errno, "open {}", mem);
	return std::optional<LiveCopy>(std::move(lc));
}

Result<std::optional<LiveCopy>> LiveCopy::arm(pid_t pid, pid_t tid, uint64_t syscall_addr,
					      const std::vector<image::Vma>& vmas, std::vector<PagePiece>& planned)
{
	auto lc = BCK_TRY(create(pid, tid, syscall_addr));
	if (lc)
		BCK_CHECK(lc->arm_frozen(vmas, planned));
	return lc;
}

Status LiveCopy::register_vmas(const std::vector<image::Vma>& vmas)
{
	for (const image::Vma& v : vmas)
		if (has_private_pages(v) && v.kind != "file" && BCK_TRY(register_wp(fd(), pid_, v)))
			registered_.emplace_back(v.start, v.end);
	return {};
}

Status LiveCopy::protect_registered()
{
	for (auto [start, end] : registered_)
		BCK_CHECK(write_protect(fd(), pid_, start, end, true));
	return {};
}

// Each UFFDIO_WRITEPROTECT call costs a TLB flush (25 us here) and each page it walks 0.2 us, so runs of pages
// closer than this are protected in one call.
constexpr uint64_t kProtectGap = 64 * kPageSize;

Status LiveCopy::protect_unprotected(int pagemap, const image::Vma& v)
{
	ScanQuery q;
	q.category_inverted = PAGE_IS_PFNZERO;  // the zero page: not planned, nothing to keep
	q.category_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO;  // written: not protected (uffd-wp bit clear)
	q.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	q.return_mask = PAGE_IS_WRITTEN;
	std::vector<std::pair<uint64_t, uint64_t>> runs;
	if (int err = pagemap_scan(pagemap, v.start, v.end, q, [&](const page_region& r) {
		    if (!runs.empty() && r.start - runs.back().second <= kProtectGap)
			    runs.back().second = r.end;
		    else
			    runs.emplace_back(r.start, r.end);
	    }))
		return fail_sys(err, "pid {}: PAGEMAP_SCAN {:x}-{:x}", pid_, v.start, v.end);
	for (auto [start, end] : runs)
		BCK_CHECK(write_protect(fd(), pid_, start, end, true));
	return {};
}

Status LiveCopy::arm_frozen(const std::vector<image::Vma>& vmas, std::vector<PagePiece>& planned)
{
	UniqueFd pagemap = BCK_TRY(open_pagemap(pid_));
	std::vector<PagePiece> frozen, live;
	std::map<size_t, bool> registered;  // by vma
	for (const PagePiece& p : planned) {
		auto it = registered.find(p.vma);
		if (it == registered.end()) {
			bool ok = BCK_TRY(register_wp(fd(), pid_, vmas[p.vma]));
			if (ok)
				BCK_CHECK(protect_unprotected(pagemap.get(), vmas[p.vma]));
			it = registered.emplace(p.vma, ok).first;
		}
		(it->second ? live : frozen).push_back(p);
	}
	{
		std::lock_guard lk(*mu_);
		live_ = std::move(live);
	}
	planned = std::move(frozen);
	return {};
}

bool LiveCopy::planned_at(uint64_t page) const
{
	auto it = std::upper_bound(live_.begin(), live_.end(), page,
				   [](uint64_t a, const PagePiece& p) { return a < p.end; });
	return it != live_.end() && it->start <= page;
}

Status LiveCopy::unprotect(uint64_t start, uint64_t end)
{
	return write_protect(fd(), pid_, start, end, false);
}

// The handler cannot wait for an event to be read: it is the reader. A page it cannot release yet is released
// once the events are read.
Status LiveCopy::release_pending()
{
	std::erase_if(pending_, [&](uint64_t page) {
		auto done = try_write_protect(fd(), pid_, page, page + kPageSize, false);
		if (!done && error_.empty())
			error_ = done.error().describe();
		return !done || *done;
	});
	if (!error_.empty())
		return fail(ExitCode::failure, "{}", error_);
	return {};
}

// A write to a page the copier has not taken yet: the page (still as it was at the freeze) is saved first.
Status LiveCopy::on_fault(uint64_t page)
{
	{
		std::lock_guard lk(*mu_);
		if (page >= taken_until_ && planned_at(page) && !saved_.count(page) && lost_.empty()) {
			std::vector<char> bytes(kPageSize);
			ssize_t n = pread(mem_.get(), bytes.data(), kPageSize, off_t(page));
			if (n != ssize_t(kPageSize))
				return fail_sys(n < 0 ? errno : EIO, "pid {}: read page {:x} before a write to it", pid_, page);
			saved_.emplace(page, std::move(bytes));
		}
	}
	pending_.push_back(page);
	return {};
}

// Pages the copier has not taken are gone: the copy can no longer be the memory of the freeze.
void LiveCopy::on_gone(uint64_t start, uint64_t end, const char* what)
{
	std::lock_guard lk(*mu_);
	start = std::max(start, taken_until_);
	for (const PagePiece& p : live_)
		if (p.start < end && start < p.end && lost_.empty())
			lost_ = fmt::format("pid {}: {} of {:x}-{:x} during the copy after the thaw", pid_, what, start, end);
}

bool LiveCopy::lost() const
{
	std::lock_guard lk(*mu_);
	return !lost_.empty();
}

std::string LiveCopy::lost_reason() const
{
	std::lock_guard lk(*mu_);
	return lost_;
}

Status LiveCopy::serve()
{
	for (;;) {
		uffd_msg msg;
		ssize_t n = read(fd(), &msg, sizeof(msg));
		if (n < 0 && errno == EAGAIN)
			return release_pending();
		if (n < 0 && errno == EINTR)
			continue;
		if (n != ssize_t(sizeof(msg)))
			return fail_sys(n < 0 ? errno : EIO, "pid {}: read its userfaultfd", pid_);
		switch (msg.event) {
		case UFFD_EVENT_PAGEFAULT:
			BCK_CHECK(on_fault(msg.arg.pagefault.address & ~(kPageSize - 1)));
			break;
		case UFFD_EVENT_REMOVE:
			on_gone(msg.arg.remove.start, msg.arg.remove.end, "MADV_DONTNEED");
			break;
		case UFFD_EVENT_UNMAP:
			on_gone(msg.arg.remove.start, msg.arg.remove.end, "munmap");
			break;
		case UFFD_EVENT_REMAP:
			on_gone(msg.arg.remap.from, msg.arg.remap.from + msg.arg.remap.len, "mremap");
			break;
		default:
			break;
		}
	}
}

Status LiveCopy::take(const PagePiece* pieces, size_t n, char* dst)
{
	{
		std::lock_guard lk(*mu_);
		if (!lost_.empty())
			return fail(ExitCode::target_busy, "{}", lost_);
		char* at = dst;
		for (size_t i = 0; i < n; i++) {
			for (auto it = saved_.lower_bound(pieces[i].start); it != saved_.end() && it->first < pieces[i].end;
			     it = saved_.erase(it))
				std::memcpy(at + (it->first - pieces[i].start), it->second.data(), kPageSize);
			at += pieces[i].end - pieces[i].start;
		}
		if (n)
			taken_until_ = pieces[n - 1].end;
	}
	// Chunks end on the blob's 2 MiB boundaries, not on the mapping's (plan_copy), and write-protection lifted from
	// part of a huge page splits it into 4 KiB pages for good: the next freeze of a 4 GiB THP target then took 15.7
	// ms instead of 1.3. So what was taken is let go up to the last 2 MiB boundary of the address space, and the rest
	// with the next chunk, or with the last one.
	for (size_t i = 0; i < n; i++)
		append_range(held_, pieces[i].start, pieces[i].end);
	bool last = n && !live_.empty() && pieces[n - 1].end >= live_.back().end;
	uint64_t upto = last ? UINT64_MAX : (n ? pieces[n - 1].end : 0) & ~uint64_t(kHugePage - 1);
	AddressRanges still;
	for (auto [s, e] : held_) {
		if (s < std::min(e, upto))
			BCK_CHECK(unprotect(s, std::min(e, upto)));
		append_range(still, std::max(s, upto), e);
	}
	held_ = std::move(still);
	return {};
}

// --- the handler thread ----------------------------------------------------------------------------------------------

Result<std::unique_ptr<LiveCopyHandler>> LiveCopyHandler::start(std::vector<LiveCopy*> copies)
{
	UniqueFd stop(eventfd(0, EFD_CLOEXEC));
	if (!stop)
		return fail_sys(errno, "eventfd");
	std::unique_ptr<LiveCopyHandler> h(new LiveCopyHandler(std::move(copies), std::move(stop)));
	h->thread_ = std::thread([p = h.get()] { p->run(); });
	return h;
}

LiveCopyHandler::~LiveCopyHandler()
{
	(void)stop();
}

void LiveCopyHandler::run()
{
	std::vector<pollfd> fds;
	for (LiveCopy* c : copies_)
		fds.push_back({c->fd(), POLLIN, 0});
	fds.push_back({stop_.get(), POLLIN, 0});
	auto serve = [&](LiveCopy* c) {
		// A failed page stays protected and its writer waits until the fd is closed: the dump fails anyway.
		if (Status st = c->serve(); !st && result_)
			result_ = st;
	};
	for (;;) {
		bool pending = std::any_of(copies_.begin(), copies_.end(), [](LiveCopy* c) { return c->has_pending(); });
		if (poll(fds.data(), fds.size(), pending ? 1 : -1) < 0 && errno != EINTR) {
			result_ = fail_sys(errno, "poll the userfaultfds");
			return;
		}
		for (size_t i = 0; i < copies_.size(); i++)
			if ((fds[i].revents & POLLIN) || copies_[i]->has_pending())
				serve(copies_[i]);
		if (fds.back().revents & POLLIN) {
			for (LiveCopy* c : copies_)  // what came before the stop, munmap events above all
				serve(c);
			return;
		}
	}
}

Status LiveCopyHandler::stop()
{
	if (!thread_.joinable())
		return result_;
	uint64_t one = 1;
	if (write(stop_.get(), &one, sizeof(one)) != sizeof(one))
		return fail_sys(errno, "stop the fault handler");
	thread_.join();
	return result_;
}

// --- arming before the freeze ----------------------------------------------------------------------------------------

EarlyArming::~EarlyArming()
{
	(void)stop();
}

Result<bool> EarlyArming::add(pid_t pid, pid_t tid, uint64_t syscall_addr, uint64_t mm_key,
			      const std::vector<image::Vma>& vmas)
{
	std::optional<LiveCopy> copy;
	{
		PtraceFreezer one;  // the thread stops only for the injected syscall
		if (!BCK_TRY(one.seize(tid)))
			return false;
		copy = BCK_TRY(LiveCopy::create(pid, tid, syscall_addr));
	}
	if (!copy)
		return false;
	BCK_CHECK(copy->register_vmas(vmas));
	armed_.emplace(pid, Armed{mm_key, std::move(*copy)});
	return true;
}

Status EarlyArming::protect()
{
	if (armed_.empty())
		return {};
	std::vector<LiveCopy*> copies;
	for (auto& [pid, a] : armed_)
		copies.push_back(&a.copy);
	handler_ = BCK_TRY(LiveCopyHandler::start(copies));
	for (auto& [pid, a] : armed_)
		BCK_CHECK(a.copy.protect_registered());
	return {};
}

Status EarlyArming::stop()
{
	if (!handler_)
		return {};
	Status st = handler_->stop();
	handler_.reset();
	BCK_CHECK(st);
	for (auto& [pid, a] : armed_)
		if (a.copy.has_pending())
			return fail(ExitCode::failure, "pid {}: a write before the freeze could not be let through", pid);
	return {};
}

void EarlyArming::clear()
{
	(void)stop();  // the handler points into armed_
	armed_.clear();
}

std::optional<LiveCopy> EarlyArming::take(pid_t pid, uint64_t mm_key)
{
	auto it = armed_.find(pid);
	if (it == armed_.end() || it->second.mm_key != mm_key || handler_)
		return std::nullopt;
	std::optional<LiveCopy> copy(std::move(it->second.copy));
	armed_.erase(it);
	return copy;
}

}  // namespace bpfckpt::dump
