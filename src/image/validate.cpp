#include "image/validate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/file_digest.h"
#include "common/xxhash.h"
#include "image/image_dir.h"
#include "image/json.h"

namespace bpfckpt::image {

namespace {

constexpr uint32_t kProtBits = 0x7;  // PROT_READ | PROT_WRITE | PROT_EXEC
constexpr std::array<std::string_view, 8> kVmaKinds = {"anon", "file",  "shmem", "heap",
						       "stack", "vdso", "vvar", "vvar_vclock"};
constexpr std::array<std::string_view, 3> kProcessStates = {"alive", "stopped", "zombie"};
constexpr std::array<std::string_view, 4> kRequiredGprs = {"rip", "rsp", "fs_base", "gs_base"};
// CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_BOOTTIME, CLOCK_TAI (uapi linux/time.h)
constexpr std::array<int32_t, 5> kTimerClocks = {0, 1, 2, 7, 11};
constexpr int32_t kSigevNone = 1, kSigevThreadId = 4;  // SIGEV_SIGNAL is 0 (uapi asm-generic/siginfo.h)
constexpr std::array<int32_t, 3> kTimerNotify = {0, kSigevNone, kSigevThreadId};
// 1 MiB: large reads, yet small enough that first-touch faults on a fresh buffer (12-16 us a page on these VMs)
// do not add tens of milliseconds to every restore.
constexpr size_t kChecksumChunk = 1u << 20;

template <typename... Args>
std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args)
{
	return fail(ExitCode::bad_image, f, std::forward<Args>(args)...);
}

template <typename T, size_t N, typename V>
bool one_of(const std::array<T, N>& set, const V& v)
{
	return std::find(set.begin(), set.end(), v) != set.end();
}

bool page_aligned(uint64_t v) { return v % kPageSize == 0; }

// [start, start + npages pages) as an end offset; false when it does not fit in 64 bits.
bool pages_end(uint64_t start, uint64_t npages, uint64_t& end)
{
	uint64_t len;
	return !__builtin_mul_overflow(npages, kPageSize, &len) && !__builtin_add_overflow(start, len, &end);
}

// One pass over an image, with blobs[] turned into a table of sizes once.
class Validator {
public:
	explicit Validator(const Image& img) : img_(img) {}
	Status run(const BlobSizes& found);

private:
	Status check_blobs(const BlobSizes& found);
	Status check_range(const std::string& blob, uint64_t offset, uint64_t size, const std::string& what) const;
	Status check_ref(const BlobRef& ref, const std::string& what) const;
	Status check_page_runs(const std::vector<PageRun>& runs, uint64_t lo, uint64_t hi, const std::string& blob,
			       const std::string& what) const;
	Status check_process(const Process& p, std::set<uint32_t>& tids) const;
	Status check_tree() const;
	Status check_cgroups() const;
	Status check_thread(const Process& p, const Thread& t) const;
	Status check_vmas(const Process& p) const;
	Status check_incremental(const Vma& v, const std::string& what) const;
	Status check_fds(const Process& p) const;
	Status check_timers(const Process& p) const;
	Status check_siginfo(const BlobRef& ref, const std::string& what) const;
	Status check_files() const;
	Status check_pipes() const;
	Status check_shmem() const;

	const Image& img_;
	std::map<std::string, uint64_t> blobs_;  // blobs[] by name, sizes as found
};

// Shared by both validate_image versions, and run before the disk one stats anything.
Status check_counts(const Image& img)
{
	if (img.processes.size() > kMaxProcesses)
		return bad("image: {} processes, more than {}", img.processes.size(), kMaxProcesses);
	for (const Process& p : img.processes) {
		if (p.vmas.size() > kMaxVmasPerProcess)
			return bad("pid {}: {} vmas, more than {}", p.pid, p.vmas.size(), kMaxVmasPerProcess);
		if (p.threads.size() > kMaxThreadsPerProcess)
			return bad("pid {}: {} threads, more than {}", p.pid, p.threads.size(), kMaxThreadsPerProcess);
		if (p.fds.size() > kMaxFdsOrFiles)
			return bad("pid {}: {} fds, more than {}", p.pid, p.fds.size(), kMaxFdsOrFiles);
	}
	if (img.files.size() > kMaxFdsOrFiles)
		return bad("image: {} files, more than {}", img.files.size(), kMaxFdsOrFiles);
	if (img.pipes.size() > kMaxFdsOrFiles)
		return bad("image: {} pipes, more than {}", img.pipes.size(), kMaxFdsOrFiles);
	if (img.shmem.size() > kMaxFdsOrFiles)
		return bad("image: {} shmem objects, more than {}", img.shmem.size(), kMaxFdsOrFiles);
	if (img.blobs.size() > kMaxFdsOrFiles)
		return bad("image: {} blobs, more than {}", img.blobs.size(), kMaxFdsOrFiles);
	return {};
}

bool is_lower_hex(const std::string& s, size_t digits)
{
	return s.size() == digits &&
	       std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// blobs[] itself: names that are safe to join to the image directory, each once. Unsafe names are printed quoted
// and escaped: they may hold control characters meant for a terminal.
Status check_blob_list(const Image& img)
{
	std::set<std::string_view> seen;
	for (const Blob& b : img.blobs) {
		if (!is_safe_name(b.name))
			return bad("blob {:?}: not a plain file name", b.name);
		if (!seen.insert(b.name).second)
			return bad("blob {}: listed twice", b.name);
		if (!is_lower_hex(b.xxh3, 16))
			return bad("blob {}: xxh3 {:?} is not 16 lower-case hex digits", b.name, b.xxh3);
	}
	return {};
}

// A content digest is what restore --root trusts to accept a file found elsewhere: well-formed, and only on what
// has content on disk (a file mapping, a regular file).
Status check_digest(const std::optional<std::string>& digest, bool has_content, const std::string& what)
{
	if (!digest)
		return {};
	if (!has_content)
		return bad("{}: a digest on something that is not a file on disk", what);
	if (!is_valid_digest(*digest))
		return bad("{}: digest {:?} is not build_id:HEX or xxh3_128:HEX", what, *digest);
	return {};
}

Status check_parent(const std::string& parent)
{
	if (parent.empty())
		return bad("parent: empty path");
	if (parent.size() > kMaxParentPath)
		return bad("parent: path of {} bytes, more than {}", parent.size(), kMaxParentPath);
	if (parent.front() == '/')
		return bad("parent {:?}: absolute path, must be relative to this image", parent);
	for (unsigned char c : parent)
		if (c < 0x20 || c == 0x7f)
			return bad("parent {:?}: control character in the path", parent);
	return {};
}

// An image's id is what its children's parent_id names: a parent_id without a parent, or the other way round, is a
// half-written link.
Status check_ids(const Image& img)
{
	if (!is_lower_hex(img.id, 32))
		return bad("id {:?}: not 32 lower-case hex digits", img.id);
	if (img.parent && !is_lower_hex(img.parent_id, 32))
		return bad("parent_id {:?}: not 32 lower-case hex digits", img.parent_id);
	if (!img.parent && !img.parent_id.empty())
		return bad("parent_id {}: set, but the image has no parent", img.parent_id);
	return {};
}

Status Validator::run(const BlobSizes& found)
{
	BCK_CHECK(check_counts(img_));
	BCK_CHECK(check_blobs(found));
	if (img_.host.page_size != kPageSize)
		return bad("host: page size {}, this bpfckpt knows only {}", img_.host.page_size, kPageSize);
	if (img_.parent)
		BCK_CHECK(check_parent(*img_.parent));
	BCK_CHECK(check_ids(img_));
	std::set<uint32_t> pids, tids;
	for (const Process& p : img_.processes) {
		if (!pids.insert(p.pid).second)
			return bad("pid {}: listed twice", p.pid);
		BCK_CHECK(check_process(p, tids));
	}
	BCK_CHECK(check_tree());
	BCK_CHECK(check_cgroups());
	BCK_CHECK(check_files());
	BCK_CHECK(check_pipes());
	BCK_CHECK(check_shmem());
	return {};
}

// Restore creates each process from its parent, so every process must reach a root (a process whose parent is
// outside the image) through its parents, without a cycle. A pid_tree image has one root, the target; a cgroup
// image may have several (separate trees, children of processes outside the cgroup).
Status Validator::check_tree() const
{
	std::map<uint32_t, uint32_t> parent;
	for (const Process& p : img_.processes)
		parent[p.pid] = p.ppid;
	if (img_.processes.empty())
		return {};
	bool one_tree = img_.target.kind == "pid_tree";
	if (one_tree) {
		if (!parent.count(img_.target.pid))
			return bad("target pid {}: not among the processes", img_.target.pid);
		if (parent.count(parent[img_.target.pid]))
			return bad("target pid {}: its parent {} is in the image too", img_.target.pid,
				   parent[img_.target.pid]);
	}
	for (const Process& p : img_.processes) {
		uint32_t at = p.pid;
		for (size_t steps = 0; parent.count(parent[at]); steps++) {
			if (steps > parent.size())
				return bad("pid {}: its parents form a cycle", p.pid);
			at = parent[at];
		}
		if (one_tree && at != img_.target.pid)
			return bad("pid {}: not below the target pid {} (its ancestor {} has parent {}, not in the image)",
				   p.pid, img_.target.pid, at, parent[at]);
	}
	return {};
}

// A cgroup path restore will mkdir: relative, no empty, "." or ".." component.
bool is_safe_cgroup_path(const std::string& rel)
{
	if (rel.empty())
		return true;
	size_t at = 0;
	for (;;) {
		size_t slash = rel.find('/', at);
		std::string part = rel.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
		if (part.empty() || part == "." || part == ".." || part.size() > 255)
			return false;
		if (slash == std::string::npos)
			return true;
		at = slash + 1;
	}
}

// cgroup images name the snapped cgroup and its tree; every process's cgroup is one of that tree's. Other images
// have none of this.
Status Validator::check_cgroups() const
{
	if (img_.target.kind != "cgroup" && img_.target.kind != "pid_tree")
		return bad("target kind {:?}: neither pid_tree nor cgroup", img_.target.kind);
	if (img_.target.kind != "cgroup") {
		if (!img_.cgroups.empty() || !img_.target.cgroup.empty())
			return bad("target kind {}: has cgroups, which only a cgroup image has", img_.target.kind);
		for (const Process& p : img_.processes)
			if (!p.cgroup.empty())
				return bad("pid {}: cgroup {:?} in a {} image", p.pid, p.cgroup, img_.target.kind);
		return {};
	}
	if (img_.target.cgroup.empty() || img_.target.cgroup[0] != '/' ||
	    (img_.target.cgroup != "/" && !is_safe_cgroup_path(img_.target.cgroup.substr(1))))
		return bad("target cgroup {:?}: not an absolute cgroup path", img_.target.cgroup);
	if (img_.cgroups.size() > kMaxFdsOrFiles)
		return bad("image: {} cgroups, more than {}", img_.cgroups.size(), kMaxFdsOrFiles);
	std::set<std::string> seen;
	for (const std::string& c : img_.cgroups) {
		if (!is_safe_cgroup_path(c))
			return bad("cgroup {:?}: not a relative path of plain names", c);
		std::string up = c.find('/') == std::string::npos ? "" : c.substr(0, c.rfind('/'));
		if (!c.empty() && !seen.count(up))
			return bad("cgroup {:?}: listed before its parent {:?}", c, up);
		if (!seen.insert(c).second)
			return bad("cgroup {:?}: listed twice", c);
	}
	if (!seen.count(""))
		return bad("cgroups: the snapped cgroup itself (\"\") is missing");
	for (const Process& p : img_.processes)
		if (!seen.count(p.cgroup))
			return bad("pid {}: cgroup {:?} is not in cgroups", p.pid, p.cgroup);
	return {};
}

Status Validator::check_blobs(const BlobSizes& found)
{
	BCK_CHECK(check_blob_list(img_));
	for (const Blob& b : img_.blobs) {
		auto it = found.find(b.name);
		if (it == found.end())
			return bad("blob {}: missing from the image", b.name);
		if (it->second != b.size)
			return bad("blob {}: {} bytes, index.json says {}", b.name, it->second, b.size);
		blobs_.emplace(b.name, b.size);
	}
	return {};
}

// [offset, offset + size) of `blob`, which must be listed; an empty name stands for no bytes at all.
Status Validator::check_range(const std::string& blob, uint64_t offset, uint64_t size, const std::string& what) const
{
	if (blob.empty()) {
		if (size)
			return bad("{}: {} bytes in no blob", what, size);
		return {};
	}
	if (!is_safe_name(blob))
		return bad("{}: blob {:?} is not a plain file name", what, blob);
	auto it = blobs_.find(blob);
	if (it == blobs_.end())
		return bad("{}: blob {} is not in blobs", what, blob);
	uint64_t end;
	if (__builtin_add_overflow(offset, size, &end))
		return bad("{}: offset {} + size {} overflows", what, offset, size);
	if (end > it->second)
		return bad("{}: bytes {}..{} past the end of blob {} ({} bytes)", what, offset, end, blob, it->second);
	return {};
}

Status Validator::check_ref(const BlobRef& ref, const std::string& what) const
{
	return check_range(ref.blob, ref.offset, ref.size, what);
}

// One run of pages that must lie in [lo, hi), after the run before it (which ended at prev_end): its end.
Result<uint64_t> check_run_shape(uint64_t start, uint64_t npages, uint64_t lo, uint64_t hi, uint64_t prev_end,
				 const std::string& run)
{
	if (npages == 0)
		return bad("{}: no pages", run);
	if (!page_aligned(start))
		return bad("{}: start not page-aligned", run);
	uint64_t end;
	if (!pages_end(start, npages, end))
		return bad("{}: length overflows", run);
	if (start < lo || end > hi)
		return bad("{}: outside {:x}-{:x}", run, lo, hi);
	if (start < prev_end)
		return bad("{}: overlaps or precedes the run before it", run);
	return end;
}

// Page runs must lie in [lo, hi) (a vma's addresses, or a shmem object's offsets), in order, apart, and each inside
// `blob` at a page-aligned offset.
Status Validator::check_page_runs(const std::vector<PageRun>& runs, uint64_t lo, uint64_t hi,
				  const std::string& blob, const std::string& what) const
{
	uint64_t prev_end = lo;
	for (const PageRun& r : runs) {
		std::string run = fmt::format("{}: page run {:x}+{}", what, r.start, r.npages);
		uint64_t end = BCK_TRY(check_run_shape(r.start, r.npages, lo, hi, prev_end, run));
		prev_end = end;
		if (!page_aligned(r.blob_offset))
			return bad("{}: blob offset {} not page-aligned", run, r.blob_offset);
		BCK_CHECK(check_range(blob, r.blob_offset, end - r.start, run));
	}
	return {};
}

Status Validator::check_process(const Process& p, std::set<uint32_t>& tids) const
{
	if (p.pid == 0 || p.pid > kMaxPid)
		return bad("pid {}: out of range 1..{}", p.pid, kMaxPid);
	if (p.ppid > kMaxPid)
		return bad("pid {}: ppid {} out of range 0..{}", p.pid, p.ppid, kMaxPid);
	// 0 is the boot session/group (init's, never left by a setsid): what every process in a container started
	// without a session manager has.
	if (p.pgid > kMaxPid)
		return bad("pid {}: pgid {} out of range 0..{}", p.pid, p.pgid, kMaxPid);
	if (p.sid > kMaxPid)
		return bad("pid {}: sid {} out of range 0..{}", p.pid, p.sid, kMaxPid);
	if (!one_of(kProcessStates, p.state))
		return bad("pid {}: unknown state {:?}", p.pid, p.state);
	bool zombie = p.state == "zombie";
	if (p.threads.empty() && !zombie)
		return bad("pid {}: no threads", p.pid);
	if (!p.threads.empty() && p.threads.front().tid != p.pid)
		return bad("pid {}: first thread is tid {}, not the leader", p.pid, p.threads.front().tid);
	for (const Thread& t : p.threads) {
		if (t.tid == 0 || t.tid > kMaxPid)
			return bad("pid {}: tid {} out of range 1..{}", p.pid, t.tid, kMaxPid);
		if (!tids.insert(t.tid).second)
			return bad("pid {}: tid {} listed twice in the image", p.pid, t.tid);
		BCK_CHECK(check_thread(p, t));
	}

	if (p.creds.groups.size() > kMaxGroups)
		return bad("pid {}: {} supplementary groups, more than {}", p.pid, p.creds.groups.size(), kMaxGroups);
	std::set<std::string_view> rlimits;
	for (const Rlimit& r : p.rlimits)
		if (!rlimits.insert(r.name).second)
			return bad("pid {}: rlimit {:?} listed twice", p.pid, r.name);
	std::set<int> signals;
	for (const Sigaction& s : p.sigactions) {
		if (s.signo < 1 || s.signo > 64)
			return bad("pid {}: sigaction for signal {}, out of range 1..64", p.pid, s.signo);
		if (!signals.insert(s.signo).second)
			return bad("pid {}: sigaction for signal {} listed twice", p.pid, s.signo);
	}

	if (!p.pages_blob.empty() && !blobs_.count(p.pages_blob))
		return bad("pid {}: pages blob {:?} is not in blobs", p.pid, p.pages_blob);
	BCK_CHECK(check_vmas(p));
	BCK_CHECK(check_fds(p));
	BCK_CHECK(check_timers(p));
	BCK_CHECK(check_siginfo(p.shared_siginfo, fmt::format("pid {}: shared_siginfo", p.pid)));
	return {};
}

// Restore re-creates each timer with its id, on its clock, signalling the thread it names.
Status Validator::check_timers(const Process& p) const
{
	if (p.posix_timers.size() > kMaxPosixTimers)
		return bad("pid {}: {} POSIX timers, more than {}", p.pid, p.posix_timers.size(), kMaxPosixTimers);
	std::set<int32_t> ids;
	for (const PosixTimer& t : p.posix_timers) {
		std::string what = fmt::format("pid {}: POSIX timer {}", p.pid, t.id);
		if (t.id < 0 || !ids.insert(t.id).second)
			return bad("{}: negative or listed twice", what);
		if (!one_of(kTimerClocks, t.clock))
			return bad("{}: clock {} is not one restore can re-create", what, t.clock);
		if (!one_of(kTimerNotify, t.notify))
			return bad("{}: sigev_notify {} unknown", what, t.notify);
		if (t.signo < 0 || t.signo > 64 || (t.notify != kSigevNone && t.signo == 0))
			return bad("{}: signal {} out of range", what, t.signo);
		bool thread_id = t.notify == kSigevThreadId;
		auto names = [&](const Thread& th) { return th.tid == t.tid; };
		if (thread_id != (t.tid != 0) || (thread_id && std::none_of(p.threads.begin(), p.threads.end(), names)))
			return bad("{}: target thread {} is not one of the process's", what, t.tid);
	}
	return {};
}

Status Validator::check_thread(const Process& p, const Thread& t) const
{
	std::string what = fmt::format("pid {} tid {}", p.pid, t.tid);
	// A zombie's threads are gone: the dump records their ids and nothing else.
	if (p.state != "zombie")
		for (std::string_view reg : kRequiredGprs)
			if (!t.regs.gpr.count(std::string(reg)))
				return bad("{}: register {} missing", what, reg);
	if (t.regs.xstate.size > kMaxRegsetBytes)
		return bad("{}: xstate of {} bytes, more than {}", what, t.regs.xstate.size, kMaxRegsetBytes);
	// A live thread's XSAVE area holds at least the legacy area and the XSAVE header, and is as large as the
	// host's: the kernel reads that much when restoring it.
	if (p.state != "zombie" && (t.regs.xstate.size < 576 || t.regs.xstate.size != img_.host.xstate_size))
		return bad("{}: xstate of {} bytes, the image's host has {}", what, t.regs.xstate.size,
			   img_.host.xstate_size);
	if (t.regs.fpregs.size > kMaxRegsetBytes)
		return bad("{}: fpregs of {} bytes, more than {}", what, t.regs.fpregs.size, kMaxRegsetBytes);
	BCK_CHECK(check_ref(t.regs.xstate, what + ": xstate"));
	BCK_CHECK(check_ref(t.regs.fpregs, what + ": fpregs"));
	BCK_CHECK(check_siginfo(t.siginfo, what + ": siginfo"));
	return {};
}

// Whole siginfo_t records, no more than a dump takes. Their content (the signal numbers) is checked where restore
// reads them.
Status Validator::check_siginfo(const BlobRef& ref, const std::string& what) const
{
	if (ref.size % kSiginfoBytes || ref.size / kSiginfoBytes > kMaxQueuedSignals)
		return bad("{}: {} bytes, not up to {} records of {}", what, ref.size, kMaxQueuedSignals, kSiginfoBytes);
	return check_ref(ref, what);
}

Status Validator::check_vmas(const Process& p) const
{
	uint64_t prev_end = 0;
	for (const Vma& v : p.vmas) {
		std::string what = fmt::format("pid {}: vma {:x}-{:x}", p.pid, v.start, v.end);
		if (v.end <= v.start)
			return bad("{}: end {} start", what, v.end == v.start ? "equals" : "before");
		if (!page_aligned(v.start) || !page_aligned(v.end))
			return bad("{}: not page-aligned", what);
		if (v.end > kUserAddressEnd)
			return bad("{}: beyond user space (ends at {:x})", what, kUserAddressEnd);
		if (v.start < prev_end)
			return bad("{}: overlaps or precedes the vma before it", what);
		prev_end = v.end;
		if (v.prot & ~kProtBits)
			return bad("{}: prot {:#x} has bits other than read, write, exec", what, v.prot);
		if (!one_of(kVmaKinds, v.kind))
			return bad("{}: unknown kind {:?}", what, v.kind);
		if (v.shmem && *v.shmem >= img_.shmem.size())
			return bad("{}: shmem {} does not exist ({} objects)", what, *v.shmem, img_.shmem.size());
		BCK_CHECK(check_digest(v.digest, v.kind == "file", what));
		if (!v.pages.empty() && p.pages_blob.empty())
			return bad("{}: has pages but the process has no pages blob", what);
		BCK_CHECK(check_page_runs(v.pages, v.start, v.end, p.pages_blob, what));
		BCK_CHECK(check_incremental(v, what));
	}
	return {};
}

// inherit and zero (incremental images): only private memory is inherited, from a parent the image names; zero runs
// are shaped like page runs (in the vma, in order, apart) and never cover a saved page. Runs after check_page_runs.
Status Validator::check_incremental(const Vma& v, const std::string& what) const
{
	if (v.inherit && !img_.parent)
		return bad("{}: inherits, but the image has no parent", what);
	if (v.inherit && (v.shared || v.kind == "vdso" || v.kind == "vvar" || v.kind == "vvar_vclock"))
		return bad("{}: a shared or special mapping cannot inherit", what);
	uint64_t prev_end = v.start;
	size_t page = 0;
	for (const ZeroRun& z : v.zero) {
		std::string run = fmt::format("{}: zero run {:x}+{}", what, z.start, z.npages);
		prev_end = BCK_TRY(check_run_shape(z.start, z.npages, v.start, v.end, prev_end, run));
		// Both lists are sorted: skip the page runs wholly before this zero run, the next must start after it.
		while (page < v.pages.size() && v.pages[page].start + v.pages[page].npages * kPageSize <= z.start)
			page++;
		if (page < v.pages.size() && v.pages[page].start < prev_end)
			return bad("{}: overlaps page run {:x}+{}", run, v.pages[page].start, v.pages[page].npages);
	}
	return {};
}

Status Validator::check_fds(const Process& p) const
{
	for (size_t i = 0; i < p.fds.size(); i++) {
		const Fd& fd = p.fds[i];
		if (fd.fd >= kMaxFdsOrFiles)
			return bad("pid {}: fd {}: beyond the largest fd number {}", p.pid, fd.fd, kMaxFdsOrFiles - 1);
		if (i > 0 && fd.fd <= p.fds[i - 1].fd)
			return bad("pid {}: fd {}: {}", p.pid, fd.fd,
				   fd.fd == p.fds[i - 1].fd ? "listed twice" : "out of order");
		if (fd.file >= img_.files.size())
			return bad("pid {}: fd {}: file {} does not exist ({} files)", p.pid, fd.fd, fd.file,
				   img_.files.size());
	}
	return {};
}

Status Validator::check_files() const
{
	std::set<uint64_t> pipes;
	for (const Pipe& pipe : img_.pipes)
		pipes.insert(pipe.ino);
	for (size_t i = 0; i < img_.files.size(); i++) {
		const File& f = img_.files[i];
		if (f.id != i)
			return bad("file {}: id {} is not its index", i, f.id);
		BCK_CHECK(check_digest(f.digest, f.kind == "regular", fmt::format("file {}", i)));
		if (f.external)
			continue;  // its other end is given at restore time, not in pipes[]
		if (f.pipe && !pipes.count(*f.pipe))
			return bad("file {}: pipe:[{}] is not in pipes", i, *f.pipe);
		if (!f.pipe && f.kind == "pipe")
			return bad("file {}: a pipe with no pipe inode", i);
	}
	return {};
}

Status Validator::check_pipes() const
{
	std::set<uint64_t> seen;
	for (const Pipe& pipe : img_.pipes) {
		std::string what = fmt::format("pipe:[{}]", pipe.ino);
		if (!seen.insert(pipe.ino).second)
			return bad("{}: listed twice", what);
		if (pipe.capacity > kMaxPipeCapacity)
			return bad("{}: capacity {} over {}", what, pipe.capacity, kMaxPipeCapacity);
		if (pipe.data.size > pipe.capacity)
			return bad("{}: {} bytes buffered, more than its capacity {}", what, pipe.data.size,
				   pipe.capacity);
		BCK_CHECK(check_ref(pipe.data, what + ": data"));
	}
	return {};
}

Status Validator::check_shmem() const
{
	for (size_t i = 0; i < img_.shmem.size(); i++) {
		const Shmem& s = img_.shmem[i];
		std::string what = fmt::format("shmem {}", i);
		if (s.id != i)
			return bad("{}: id {} is not its index", what, s.id);
		if (!s.blob.empty() && !blobs_.count(s.blob))
			return bad("{}: blob {:?} is not in blobs", what, s.blob);
		if (!s.pages.empty() && s.blob.empty())
			return bad("{}: has pages but no blob", what);
		// The last page of an object whose size is not a page multiple is saved whole.
		uint64_t hi;
		if (__builtin_add_overflow(s.size, kPageSize - 1, &hi))
			return bad("{}: size {} overflows when rounded to pages", what, s.size);
		hi -= hi % kPageSize;
		BCK_CHECK(check_page_runs(s.pages, 0, hi, s.blob, what));
	}
	return {};
}

// Sizes of the blobs listed in blobs[], as they are in `dir`: regular files only, never followed through a symlink.
Result<BlobSizes> stat_blobs(const Image& img, int dirfd, const std::string& dir)
{
	BlobSizes found;
	for (const Blob& b : img.blobs) {
		struct stat st;
		if (fstatat(dirfd, b.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				return bad("blob {}: missing from {}", b.name, dir);
			return fail_errno(ExitCode::io, errno, "blob {}: stat in {}", b.name, dir);
		}
		if (!S_ISREG(st.st_mode))
			return bad("blob {}: not a regular file", b.name);
		found.emplace(b.name, uint64_t(st.st_size));
	}
	return found;
}

Result<UniqueFd> open_dir(const std::string& dir)
{
	UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!fd)
		return fail_errno(ExitCode::io, errno, "image directory {}", dir);
	return fd;
}

// index.json as text, refused when it is not a regular file or is larger than kMaxIndexBytes.
Result<std::string> read_index(int dirfd, const std::string& dir)
{
	UniqueFd fd(::openat(dirfd, "index.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd) {
		if (errno == ELOOP)
			return bad("{}/index.json: a symlink", dir);
		return fail_errno(ExitCode::io, errno, "{}/index.json", dir);
	}
	struct stat st;
	if (fstat(fd.get(), &st) != 0)
		return fail_errno(ExitCode::io, errno, "{}/index.json: stat", dir);
	if (!S_ISREG(st.st_mode))
		return bad("{}/index.json: not a regular file", dir);
	if (uint64_t(st.st_size) > kMaxIndexBytes)
		return bad("{}/index.json: {} bytes, more than {}", dir, st.st_size, kMaxIndexBytes);
	std::string text(size_t(st.st_size), '\0');
	size_t have = 0;
	while (have < text.size()) {
		ssize_t n = ::read(fd.get(), text.data() + have, text.size() - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_errno(ExitCode::io, errno, "{}/index.json: read", dir);
		if (n == 0)
			return bad("{}/index.json: shrank while being read", dir);
		have += size_t(n);
	}
	return text;
}

Status validate_in(const Image& img, int dirfd, const std::string& dir)
{
	// Counts and names first: nothing is looked up on disk under a name that could leave the directory.
	BCK_CHECK(check_counts(img));
	BCK_CHECK(check_blob_list(img));
	BlobSizes found = BCK_TRY(stat_blobs(img, dirfd, dir));
	return Validator(img).run(found);
}

Status checksum_blob(const Blob& b, int dirfd, std::vector<char>& buf)
{
	UniqueFd fd(::openat(dirfd, b.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd) {
		if (errno == ENOENT || errno == ELOOP)
			return bad("blob {}: missing or a symlink", b.name);
		return fail_errno(ExitCode::io, errno, "blob {}: open", b.name);
	}
	std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), XXH3_freeState);
	if (!state)
		return fail(ExitCode::failure, "blob {}: out of memory for the checksum state", b.name);
	XXH3_64bits_reset(state.get());
	uint64_t total = 0;
	for (;;) {
		ssize_t n = ::read(fd.get(), buf.data(), buf.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_errno(ExitCode::io, errno, "blob {}: read", b.name);
		if (n == 0)
			break;
		XXH3_64bits_update(state.get(), buf.data(), size_t(n));
		total += uint64_t(n);
	}
	if (total != b.size)
		return bad("blob {}: read {} bytes, index.json says {}", b.name, total, b.size);
	std::string sum = fmt::format("{:016x}", XXH3_64bits_digest(state.get()));
	if (sum != b.xxh3)
		return bad("blob {}: checksum {} does not match {} in index.json", b.name, sum, b.xxh3);
	return {};
}

Status verify_in(const Image& img, int dirfd)
{
	BCK_CHECK(check_blob_list(img));
	// No larger than the largest blob: each page of a fresh buffer costs a fault, and a chain of small incremental
	// images would pay for 1 MiB of them per image.
	uint64_t largest = 0;
	for (const Blob& b : img.blobs)
		largest = std::max(largest, b.size);
	std::vector<char> buf(size_t(std::clamp<uint64_t>(largest, kPageSize, kChecksumChunk)));
	for (const Blob& b : img.blobs)
		BCK_CHECK(checksum_blob(b, dirfd, buf));
	return {};
}

}  // namespace

Status validate_image(const Image& img, const BlobSizes& blob_sizes)
{
	return Validator(img).run(blob_sizes);
}

Status validate_image(const Image& img, const std::string& dir)
{
	UniqueFd dirfd = BCK_TRY(open_dir(dir));
	return validate_in(img, dirfd.get(), dir);
}

Status verify_blob_checksums(const Image& img, const std::string& dir)
{
	UniqueFd dirfd = BCK_TRY(open_dir(dir));
	return verify_in(img, dirfd.get());
}

namespace {

Result<Image> load_in(int dirfd, const std::string& dir)
{
	std::string text = BCK_TRY(read_index(dirfd, dir));
	Image img = BCK_TRY(context(parse_index(text), "{}", dir));
	BCK_CHECK(context(validate_in(img, dirfd, dir), "{}", dir));
	return img;
}

}  // namespace

Result<Image> load_image(const std::string& dir)
{
	UniqueFd dirfd = BCK_TRY(open_dir(dir));
	Image img = BCK_TRY(load_in(dirfd.get(), dir));
	BCK_CHECK(context(verify_in(img, dirfd.get()), "{}", dir));
	return img;
}

Result<Image> load_image_unverified(const std::string& dir)
{
	UniqueFd dirfd = BCK_TRY(open_dir(dir));
	return load_in(dirfd.get(), dir);
}

// Kept apart from Validator on purpose: plain loops, 128-bit arithmetic instead of overflow builtins, lookups in
// blob_sizes instead of blobs[]. If the two ever disagree on an image, one of them is wrong.
bool image_invariants_hold(const Image& img, const BlobSizes& blob_sizes)
{
	using u128 = unsigned __int128;
	auto blob_size = [&](const std::string& name, u128& size) {
		auto it = blob_sizes.find(name);
		if (it == blob_sizes.end())
			return false;
		size = it->second;
		return true;
	};
	for (const Process& p : img.processes) {
		for (size_t i = 0; i < p.vmas.size(); i++) {
			const Vma& v = p.vmas[i];
			if (!(v.start < v.end))
				return false;
			if (i + 1 < p.vmas.size() && !(v.end <= p.vmas[i + 1].start))
				return false;
			for (const PageRun& r : v.pages) {
				u128 len = u128(r.npages) * kPageSize;
				if (u128(r.start) < v.start || u128(r.start) + len > v.end)
					return false;
				u128 size;
				if (!blob_size(p.pages_blob, size) || u128(r.blob_offset) + len > size)
					return false;
			}
			// The chain resolver walks zero runs in order inside their vma.
			for (size_t z = 0; z < v.zero.size(); z++) {
				u128 end = u128(v.zero[z].start) + u128(v.zero[z].npages) * kPageSize;
				if (u128(v.zero[z].start) < v.start || end > v.end)
					return false;
				if (z + 1 < v.zero.size() && end > v.zero[z + 1].start)
					return false;
			}
		}
	}
	for (const Shmem& s : img.shmem) {
		for (const PageRun& r : s.pages) {
			u128 len = u128(r.npages) * kPageSize;
			u128 size;
			if (!blob_size(s.blob, size) || u128(r.blob_offset) + len > size)
				return false;
		}
	}
	return true;
}

}  // namespace bpfckpt::image
