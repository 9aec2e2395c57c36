// Incremental dumps (`--prev-images-dir`) and write tracking (`--track-mem`), per process, while it is frozen.
// A vma inherits from the parent image when the parent has the same process (pid, start time, address space) with
// a vma of the same range and kind, and the process's tracker was last reset by exactly that image: then only the
// pages written since are saved (written-then-dropped ones as zero runs). Everything else is saved whole. The
// format is image/chain.h's: Vma::inherit, Vma::zero, Image::parent/parent_id.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/result.h"
#include "dump/memory.h"
#include "dump/track.h"
#include "image/model.h"

namespace bpfckpt::dump {

class Increment {
public:
	// prev_dir: the parent image ("" for none). An unusable parent (missing, corrupt, of another tree) is no
	// error: the dump warns and writes a full image.
	static Increment open(const std::string& prev_dir, const std::string& new_dir, bool track);

	// Before the freeze, while the processes run: the marks of each tracked process in `procs` are read and reset
	// now, so the frozen dump only reads marks. A reset write-protects the pages again, and that costs a TLB flush
	// per 2 MiB holding a written page: 20-40 ms per GiB of scattered writes, too long to be frozen for. The pages
	// written since this reset are still marked at the freeze; the dump saves them and leaves them marked, so
	// the next dump saves them again: that is what a write between the freeze and a later reset would need.
	Status before_freeze(const std::vector<TrackedProcess>& procs);
	// How many bytes before_freeze found written: about what the frozen dump will copy.
	uint64_t early_bytes() const;
	// Before p's pages are saved: attaches or creates its tracker, marks the vmas that inherit and their zero
	// runs, and returns the written ranges to save for them (without before_freeze, the marks are reset in the
	// same scan).
	// `tid`/`syscall_addr`: where a new tracker's userfaultfd() is injected.
	Result<PageRanges> before_pages(image::Process& p, pid_t tid, uint64_t syscall_addr);
	// After p's pages are saved: the vmas saved whole are registered (if new) and their marks reset, so the next
	// dump is relative to this one.
	Status after_pages(const image::Process& p);
	// A tracker made or reset before the freeze (PreCopy): before_pages uses it instead of attaching or creating.
	void adopt(pid_t pid, MemTracker tracker);
	// A tracker whose marks were reset before the freeze and that this image's pages account for (PreCopy): it is
	// kept at commit, and after_pages registers what is new without resetting the rest.
	void keep_armed(pid_t pid, MemTracker tracker);
	bool has_parent() const { return parent_.has_value(); }
	// The parent link for the image: set only when some vma inherits.
	void link(image::Image& img) const;
	// After the image is committed: the trackers are kept with its id, or ended when not tracking.
	Status commit(const std::string& image_id);

	uint64_t inherited_vmas() const { return inherited_; }

private:
	std::string parent_dir_rel_;
	std::optional<image::Image> parent_;
	bool track_ = false;
	uint64_t inherited_ = 0;
	std::map<pid_t, MemTracker> trackers_;
	std::map<pid_t, MemTracker> adopted_;  // for before_pages
	std::set<pid_t> armed_early_;          // keep_armed's: after_pages resets nothing
	// What before_freeze found, by pid.
	struct Early {
		TrackedProcess who;
		MemTracker tracker;
		std::string last_image;  // the tracker's before it was forgotten
		AddressRanges written;   // reset by before_freeze
	};
	std::map<pid_t, Early> early_;

	Result<std::optional<Early>> take_early(const TrackedProcess& who);
	static Result<bool> choose_written(MemTracker& tracker, int pagemap, const Early* early, image::Vma& v,
					   std::vector<std::pair<uint64_t, uint64_t>>& ranges);
};

}  // namespace bpfckpt::dump
