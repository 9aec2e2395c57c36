#include "dump/increment.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/fd.h"
#include "common/log.h"
#include "dump/pagemap_scan.h"
#include "image/chain.h"

namespace bpfckpt::dump {

namespace {

const image::Vma* same_vma(const image::Process& parent, const image::Vma& v)
{
	auto it = std::find_if(parent.vmas.begin(), parent.vmas.end(), [&](const image::Vma& pv) {
		return pv.start == v.start && pv.end == v.end && pv.kind == v.kind && !pv.shared;
	});
	return it == parent.vmas.end() ? nullptr : &*it;
}

}  // namespace

Increment Increment::open(const std::string& prev_dir, const std::string& new_dir, bool track)
{
	Increment inc;
	inc.track_ = track;
	if (prev_dir.empty())
		return inc;
	auto chain = image::Chain::load(prev_dir, false);
	if (!chain) {
		log::warn("--prev-images-dir {}: not usable as a parent ({}); writing a full image", prev_dir,
			  chain.error().describe());
		return inc;
	}
	std::error_code ec;
	auto here = std::filesystem::weakly_canonical(std::filesystem::absolute(new_dir), ec);
	auto rel = std::filesystem::relative(chain->newest_dir(), here, ec);
	if (ec || rel.empty()) {
		log::warn("--prev-images-dir {}: no relative path from {}; writing a full image", prev_dir, new_dir);
		return inc;
	}
	inc.parent_dir_rel_ = rel.string();
	inc.parent_ = chain->newest();
	return inc;
}

Status Increment::before_freeze(const std::vector<TrackedProcess>& procs)
{
	if (!parent_)
		return {};  // a full image reads no marks
	for (const TrackedProcess& who : procs) {
		std::optional<MemTracker> tracker = BCK_TRY(MemTracker::attach(who));
		if (!tracker)
			continue;
		std::string last = tracker->last_image();
		// From the first reset on, only this dump's image will be a valid parent.
		BCK_CHECK(tracker->forget_last_image());
		auto pagemap = open_pagemap(who.pid);
		if (!pagemap)
			continue;  // it exited: the freeze says so
		AddressRanges written = BCK_TRY(tracker->take_all_written(pagemap->get()));
		early_.emplace(who.pid, Early{who, std::move(*tracker), std::move(last), std::move(written)});
	}
	return {};
}

uint64_t Increment::early_bytes() const
{
	uint64_t n = 0;
	for (const auto& [pid, e] : early_)
		for (auto [s, end] : e.written)
			n += end - s;
	return n;
}

// before_freeze's finding for this process, if it is still the same process and address space.
Result<std::optional<Increment::Early>> Increment::take_early(const TrackedProcess& who)
{
	auto it = early_.find(who.pid);
	if (it == early_.end())
		return std::nullopt;
	std::optional<Early> e(std::move(it->second));
	early_.erase(it);
	if (e->who.start_time != who.start_time || e->who.mm_key != who.mm_key)
		return std::nullopt;  // it exec'd since: attach() ends the stale tracker
	return e;
}

// The ranges of v to save, and its zero runs; false when v's registration is gone (mremap).
Result<bool> Increment::choose_written(MemTracker& tracker, int pagemap, const Early* early, image::Vma& v,
				       std::vector<std::pair<uint64_t, uint64_t>>& ranges)
{
	if (!early) {
		auto written = BCK_TRY(tracker.take_written(pagemap, v.start, v.end));
		if (!written)
			return false;
		for (const WrittenRun& w : *written) {
			if (w.present)
				ranges.emplace_back(w.start, w.end);
			else
				v.zero.push_back({w.start, (w.end - w.start) / image::kPageSize});
		}
		return true;
	}
	auto marks = BCK_TRY(tracker.read_marks(pagemap, v.start, v.end));
	if (!marks)
		return false;
	// Written since the parent: before the early reset, or after it.
	AddressRanges changed = unite(marks->written, intersect(early->written, {{v.start, v.end}}));
	ranges = intersect(changed, marks->present);
	for (auto [s, e] : subtract(changed, marks->present))
		v.zero.push_back({s, (e - s) / image::kPageSize});
	return true;
}

Result<PageRanges> Increment::before_pages(image::Process& p, pid_t tid, uint64_t syscall_addr)
{
	TrackedProcess who{pid_t(p.pid), p.start_time, p.mm_key};
	std::optional<Early> early = BCK_TRY(take_early(who));
	std::optional<MemTracker> tracker;
	std::string last;
	if (early) {
		tracker = std::move(early->tracker);
		last = early->last_image;
	} else if (auto it = adopted_.find(who.pid); it != adopted_.end()) {
		tracker = std::move(it->second);  // reset before the freeze: relative to no image
		adopted_.erase(it);
	} else {
		tracker = BCK_TRY(MemTracker::attach(who));
		if (tracker)
			last = tracker->last_image();
	}
	if (!tracker && track_) {
		if (!syscall_addr)
			return fail(ExitCode::unsupported, "pid {}: no [vdso] to run userfaultfd() through: --track-mem "
				    "cannot arm tracking", p.pid);
		tracker = BCK_TRY(MemTracker::create(who, tid, syscall_addr));
	}
	if (!tracker)
		return PageRanges{};
	const image::Process* parent = nullptr;
	if (parent_) {
		auto it = std::find_if(parent_->processes.begin(), parent_->processes.end(), [&](const image::Process& q) {
			return q.pid == p.pid && q.start_time == p.start_time && q.mm_key == p.mm_key;
		});
		if (it == parent_->processes.end())
			log::warn("pid {}: not in the parent image as the same process and address space; saved whole", p.pid);
		else if (last != parent_->id)
			log::warn("pid {}: its write tracking is not relative to the parent image (last tracked image: {}); "
				  "saved whole", p.pid, last.empty() ? "none" : last);
		else
			parent = &*it;
	}
	if (!early)
		BCK_CHECK(tracker->forget_last_image());  // before the first reset, as before_freeze does
	UniqueFd pagemap = BCK_TRY(open_pagemap(pid_t(p.pid)));
	PageRanges chosen;
	for (size_t i = 0; i < p.vmas.size(); i++) {
		image::Vma& v = p.vmas[i];
		if (!parent || !trackable(v) || !same_vma(*parent, v))
			continue;
		std::vector<std::pair<uint64_t, uint64_t>> ranges;
		if (!BCK_TRY(choose_written(*tracker, pagemap.get(), early ? &*early : nullptr, v, ranges)))
			continue;  // the registration was lost (mremap): saved whole, registered again after
		v.inherit = true;
		inherited_++;
		chosen[i] = std::move(ranges);
	}
	trackers_.emplace(pid_t(p.pid), std::move(*tracker));
	return chosen;
}

void Increment::adopt(pid_t pid, MemTracker tracker)
{
	adopted_.insert_or_assign(pid, std::move(tracker));
}

void Increment::keep_armed(pid_t pid, MemTracker tracker)
{
	trackers_.insert_or_assign(pid, std::move(tracker));
	armed_early_.insert(pid);
}

Status Increment::after_pages(const image::Process& p)
{
	auto it = trackers_.find(pid_t(p.pid));
	if (it == trackers_.end() || !track_)
		return {};
	bool reset = !armed_early_.count(pid_t(p.pid));
	UniqueFd pagemap = BCK_TRY(open_pagemap(pid_t(p.pid)));
	for (const image::Vma& v : p.vmas) {
		if (v.inherit || !trackable(v))
			continue;
		// A range registered here and not reset shows all its pages written: the next dump saves them again.
		if (!BCK_TRY(it->second.track(v.start, v.end)) || !reset)
			continue;
		BCK_TRY(it->second.take_written(pagemap.get(), v.start, v.end));  // the reset: all marks cleared
	}
	return {};
}

void Increment::link(image::Image& img) const
{
	if (!inherited_ || !parent_)
		return;
	img.parent = parent_dir_rel_;
	img.parent_id = parent_->id;
}

Status Increment::commit(const std::string& image_id)
{
	for (auto& [pid, tracker] : trackers_) {
		if (track_)
			BCK_CHECK(tracker.keep(image_id));
		else
			BCK_TRY(untrack(pid));
	}
	return {};
}

}  // namespace bpfckpt::dump
