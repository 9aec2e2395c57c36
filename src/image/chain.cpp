#include "image/chain.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <set>
#include <utility>

#include "image/validate.h"

namespace bpfckpt::image {

namespace {

template <typename... Args>
std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args)
{
	return fail(ExitCode::bad_image, f, std::forward<Args>(args)...);
}

uint64_t run_end(uint64_t start, uint64_t npages) { return start + npages * kPageSize; }

bool inherits(const Process& p)
{
	return std::any_of(p.vmas.begin(), p.vmas.end(), [](const Vma& v) { return v.inherit; });
}

// The parent's directory with symlinks and ".." resolved, so that each image is known by one name (messages, and
// the cycle check by device and inode).
Result<std::string> parent_dir(const std::string& child, const std::string& parent)
{
	std::string joined = child + "/" + parent;
	std::unique_ptr<char, decltype(&free)> real(realpath(joined.c_str(), nullptr), free);
	if (!real) {
		if (errno == ENOENT || errno == ENOTDIR)
			return bad("image {}: parent {}: no such directory", child, parent);
		return fail_sys(errno, "image {}: parent {}", child, parent);
	}
	struct stat st;
	if (stat(real.get(), &st) != 0)
		return fail_sys(errno, "image {}: parent {}", child, parent);
	if (!S_ISDIR(st.st_mode))
		return bad("image {}: parent {}: not a directory", child, parent);
	return std::string(real.get());
}

Result<std::string> canonical(const std::string& dir)
{
	std::unique_ptr<char, decltype(&free)> real(realpath(dir.c_str(), nullptr), free);
	if (!real)
		return fail_sys(errno, "image directory {}", dir);
	return std::string(real.get());
}

Result<std::pair<dev_t, ino_t>> dir_identity(const std::string& dir)
{
	struct stat st;
	if (stat(dir.c_str(), &st) != 0)
		return fail_sys(errno, "image directory {}", dir);
	return std::make_pair(st.st_dev, st.st_ino);
}

// The link from `child` to `parent`: the ids agree, and every process of the child that inherits memory finds
// itself (pid, start_time, mm_key) in the parent. Fills child.parent_process.
Status check_link(ChainLink& child, const ChainLink& parent)
{
	const Image& c = child.image;
	const Image& p = parent.image;
	if (p.id != c.parent_id)
		return bad("image {}: parent {} has id {}, but parent_id is {}", child.dir, parent.dir, p.id, c.parent_id);
	std::map<uint32_t, uint32_t> by_pid;
	for (size_t i = 0; i < p.processes.size(); i++)
		by_pid.emplace(p.processes[i].pid, uint32_t(i));
	child.parent_process.assign(c.processes.size(), kNoProcess);
	for (size_t i = 0; i < c.processes.size(); i++) {
		const Process& proc = c.processes[i];
		auto it = by_pid.find(proc.pid);
		const Process* old = it == by_pid.end() ? nullptr : &p.processes[it->second];
		bool same = old && old->start_time == proc.start_time && old->mm_key == proc.mm_key;
		if (same)
			child.parent_process[i] = it->second;
		if (same || !inherits(proc))
			continue;
		if (!old)
			return bad("image {}: pid {} inherits memory, but its parent image {} has no pid {}", child.dir,
				   proc.pid, parent.dir, proc.pid);
		return bad("image {}: pid {} inherits memory from parent image {}, where pid {} is another process or "
			   "address space (start_time {} vs {}, mm_key {:#x} vs {:#x})",
			   child.dir, proc.pid, parent.dir, proc.pid, proc.start_time, old->start_time, proc.mm_key,
			   old->mm_key);
	}
	return {};
}

Result<Image> load_one(const std::string& dir, bool verify)
{
	return verify ? load_image(dir) : load_image_unverified(dir);
}

// Resolution as an explicit depth-first walk, so that runs come out in address order (no sort) and a chain
// thousands of images deep needs no deep recursion. A frame covers [pos, hi) of one process of one link; it walks
// that process's vmas, page runs and zero runs with cursors that only move forward, and hands each gap of an
// inheriting vma to a frame one link older before going on past it.
class Resolver {
public:
	Resolver(const std::vector<ChainLink>& links, std::vector<ResolvedRun>& out) : links_(links), out_(out) {}

	void run(uint32_t process, uint64_t start, uint64_t end)
	{
		push(0, process, start, end);
		while (!stack_.empty())
			step();
	}

private:
	struct Frame {
		uint32_t level, process;
		uint64_t pos, hi;
		size_t vma, page, zero;  // cursors into the process's vmas and the current vma's runs
	};

	const Process& process_of(const Frame& f) const { return links_[f.level].image.processes[f.process]; }

	void push(uint32_t level, uint32_t process, uint64_t pos, uint64_t hi)
	{
		Frame f{level, process, pos, hi, 0, 0, 0};
		const auto& vmas = process_of(f).vmas;
		f.vma = size_t(std::partition_point(vmas.begin(), vmas.end(), [&](const Vma& v) { return v.end <= pos; }) -
			       vmas.begin());
		seek_runs(f);
		stack_.push_back(f);
	}

	// Cursors to the first page and zero run of the current vma that end after pos.
	void seek_runs(Frame& f) const
	{
		const auto& vmas = process_of(f).vmas;
		if (f.vma >= vmas.size())
			return;
		const Vma& v = vmas[f.vma];
		uint64_t pos = std::max(f.pos, v.start);
		f.page = size_t(std::partition_point(v.pages.begin(), v.pages.end(),
						     [&](const PageRun& r) { return run_end(r.start, r.npages) <= pos; }) -
				v.pages.begin());
		f.zero = size_t(std::partition_point(v.zero.begin(), v.zero.end(),
						     [&](const ZeroRun& r) { return run_end(r.start, r.npages) <= pos; }) -
				v.zero.begin());
	}

	void emit(const Frame& f, uint64_t start, uint64_t end, uint64_t blob_offset)
	{
		uint64_t npages = (end - start) / kPageSize;
		if (!out_.empty()) {
			ResolvedRun& b = out_.back();
			uint64_t len = b.npages * kPageSize;
			if (b.level == f.level && b.process == f.process && b.start + len == start &&
			    b.blob_offset + len == blob_offset) {
				b.npages += npages;
				return;
			}
		}
		out_.push_back({start, npages, f.level, f.process, blob_offset});
	}

	// One move of the top frame: past a saved run (emitted), a zero run, a hole between vmas, or a gap (handed to
	// the parent, or skipped when nothing is inherited there).
	void step()
	{
		size_t top = stack_.size() - 1;
		Frame& f = stack_[top];
		const auto& vmas = process_of(f).vmas;
		if (f.pos >= f.hi || f.vma >= vmas.size() || vmas[f.vma].start >= f.hi) {
			stack_.pop_back();
			return;
		}
		const Vma& v = vmas[f.vma];
		f.pos = std::max(f.pos, v.start);
		uint64_t vend = std::min(v.end, f.hi);
		while (f.page < v.pages.size() && run_end(v.pages[f.page].start, v.pages[f.page].npages) <= f.pos)
			f.page++;
		while (f.zero < v.zero.size() && run_end(v.zero[f.zero].start, v.zero[f.zero].npages) <= f.pos)
			f.zero++;
		const PageRun* page = f.page < v.pages.size() ? &v.pages[f.page] : nullptr;
		const ZeroRun* zero = f.zero < v.zero.size() ? &v.zero[f.zero] : nullptr;
		if (page && page->start <= f.pos) {
			uint64_t end = std::min(run_end(page->start, page->npages), vend);
			emit(f, f.pos, end, page->blob_offset + (f.pos - page->start));
			f.pos = end;
		} else if (zero && zero->start <= f.pos) {
			f.pos = std::min(run_end(zero->start, zero->npages), vend);
		} else {
			uint64_t gap_end = std::min({vend, page ? page->start : vend, zero ? zero->start : vend});
			uint64_t gap = f.pos;
			f.pos = gap_end;
			uint32_t parent = links_[f.level].parent_process.empty()
						  ? kNoProcess
						  : links_[f.level].parent_process[f.process];
			bool from_parent = v.inherit && parent != kNoProcess;
			if (f.pos >= vend)
				next_vma(f);
			if (from_parent)
				push(f.level + 1, parent, gap, gap_end);  // may move stack_: f is not used after this
			return;
		}
		if (f.pos >= vend)
			next_vma(f);
	}

	void next_vma(Frame& f) const
	{
		f.vma++;
		seek_runs(f);
	}

	const std::vector<ChainLink>& links_;
	std::vector<ResolvedRun>& out_;
	std::vector<Frame> stack_;
};

}  // namespace

Result<Chain> Chain::load(const std::string& dir, bool verify_checksums, size_t max_depth)
{
	std::vector<ChainLink> links;
	std::set<std::pair<dev_t, ino_t>> seen;
	std::string at = BCK_TRY(canonical(dir));
	for (;;) {
		if (!seen.insert(BCK_TRY(dir_identity(at))).second)
			return bad("image {}: parent {} is already in the chain (a cycle)", links.back().dir, at);
		if (links.size() == max_depth)
			return bad("image {}: more than {} images in its chain", links.front().dir, max_depth);
		Image img = links.empty() ? BCK_TRY(load_one(at, verify_checksums))
					  : BCK_TRY(context(load_one(at, verify_checksums), "image {}: parent",
							    links.back().dir));
		links.push_back({at, std::move(img), {}});
		if (links.size() > 1)
			BCK_CHECK(check_link(links[links.size() - 2], links.back()));
		if (!links.back().image.parent)
			break;
		at = BCK_TRY(parent_dir(links.back().dir, *links.back().image.parent));
	}
	return Chain(std::move(links));
}

std::string Chain::blob_path(const ResolvedRun& r) const
{
	const ChainLink& l = links_.at(r.level);
	return l.dir + "/" + l.image.processes.at(r.process).pages_blob;
}

Result<uint32_t> Chain::newest_index(uint32_t pid) const
{
	const auto& procs = newest().processes;
	auto it = std::find_if(procs.begin(), procs.end(), [&](const Process& p) { return p.pid == pid; });
	if (it == procs.end())
		return fail(ExitCode::failure, "image {}: no pid {}", newest_dir(), pid);
	return uint32_t(it - procs.begin());
}

Status Chain::resolve_into(uint32_t pid, uint64_t start, uint64_t end, std::vector<ResolvedRun>& out) const
{
	uint32_t proc = BCK_TRY(newest_index(pid));
	if (start % kPageSize || end % kPageSize)
		return fail(ExitCode::failure, "pid {}: range {:x}-{:x} is not page-aligned", pid, start, end);
	if (start < end)
		Resolver(links_, out).run(proc, start, end);
	return {};
}

Result<std::vector<ResolvedRun>> Chain::resolve(uint32_t pid, uint64_t start, uint64_t end) const
{
	std::vector<ResolvedRun> out;
	BCK_CHECK(resolve_into(pid, start, end, out));
	return out;
}

Result<PageCounts> Chain::count_pages(uint32_t pid) const
{
	const Process& p = newest().processes[BCK_TRY(newest_index(pid))];
	PageCounts c;
	std::vector<ResolvedRun> runs;
	for (const Vma& v : p.vmas) {
		for (const PageRun& r : v.pages)
			c.own += r.npages;
		for (const ZeroRun& z : v.zero)
			c.zero += z.npages;
		if (!v.inherit)
			continue;
		runs.clear();
		BCK_CHECK(resolve_into(pid, v.start, v.end, runs));
		for (const ResolvedRun& r : runs)
			if (r.level > 0)
				c.inherited += r.npages;
	}
	return c;
}

}  // namespace bpfckpt::image
