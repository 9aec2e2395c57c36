#include "dump/dump.h"

#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <deque>
#include <set>
#include <sstream>
#include <thread>

#include "common/fd.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/ptrace_syscall.h"
#include "dump/cgroup_freeze.h"
#include "dump/collector.h"
#include "dump/file_digests.h"
#include "dump/files.h"
#include "dump/increment.h"
#include "dump/live_copy.h"
#include "dump/memory.h"
#include "dump/pipes.h"
#include "dump/pre_copy.h"
#include "dump/process.h"
#include "dump/ptrace_freezer.h"
#include "dump/self_token.h"
#include "dump/signals.h"
#include "dump/threads.h"
#include "dump/vmas.h"
#include "image/image_dir.h"

namespace bpfckpt::dump {

namespace {

// Below this much private memory a process is copied while frozen: the copy takes less than arming it would
// save, and a short-lived process is likely to exit (taking its pages with it) before a copy after the thaw.
constexpr uint64_t kLiveCopyMin = 8u << 20;

// The kernel reports `frozen 1` in 12-45 ms here; a task that cannot be frozen (stuck in an uninterruptible
// sleep) is reported after this long.
constexpr int kCgroupFreezeTimeoutMs = 5000;

std::string utc_now()
{
	time_t t = time(nullptr);
	tm tmv;
	gmtime_r(&t, &tmv);
	char buf[32];
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tmv);
	return buf;
}

// 128 random bits: names this image, so that an incremental child can check that its parent is the one it was
// taken against.
Result<std::string> random_id()
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != ssize_t(sizeof(b)))
		return fail_sys(errno, "getrandom");
	std::string hex;
	for (uint8_t x : b)
		hex += fmt::format("{:02x}", x);
	return hex;
}

image::Host host_info()
{
	image::Host h;
	utsname u{};
	uname(&u);
	h.kernel = u.release;
	h.arch = u.machine;
	h.hostname = u.nodename;
	h.page_size = uint64_t(sysconf(_SC_PAGESIZE));
	if (auto info = read_file("/proc/cpuinfo")) {
		std::istringstream in(*info);
		for (std::string line; std::getline(in, line);)
			if (line.rfind("flags", 0) == 0) {
				std::istringstream words(line.substr(line.find(':') + 1));
				for (std::string w; words >> w;)
					h.cpu_flags.push_back(w);
				break;
			}
	}
	return h;
}

// The target must exist, be a user process, and not contain us.
Status check_target(pid_t pid, const std::vector<RawTask>& tasks)
{
	if (pid == 1)
		return fail(ExitCode::no_target, "pid 1: init cannot be dumped (its parent is the kernel)");
	if (pid == getpid())
		return fail(ExitCode::no_target, "pid {}: that is bpfckpt itself", pid);
	const RawTask* root = nullptr;
	for (const RawTask& t : tasks) {
		if (t.rec.tid == uint32_t(pid))
			root = &t;
		if (t.rec.tgid == uint32_t(getpid()))
			return fail(ExitCode::no_target, "pid {}: its tree contains bpfckpt itself (pid {})", pid,
				    getpid());
	}
	if (!root)
		return fail(ExitCode::no_target, "pid {}: no such process", pid);
	if (root->rec.tgid != uint32_t(pid))
		return fail(ExitCode::no_target, "pid {}: is a thread of process {}; dump the process", pid,
			    root->rec.tgid);
	if (root->rec.flags & BCK_TASK_F_KTHREAD)
		return fail(ExitCode::no_target, "pid {}: is a kernel thread", pid);
	if (root->rec.exit_state)
		return fail(ExitCode::no_target, "pid {}: is a zombie", pid);
	return {};
}

// Tasks that share an mm or an fd table without being threads of one process (vfork, CLONE_VM, CLONE_FILES)
// would come back as separate copies: refused.
Status check_sharing(const std::vector<RawTask>& tasks)
{
	std::map<uint64_t, uint32_t> mm_owner, files_owner;
	for (const RawTask& t : tasks) {
		if (t.rec.exit_state)
			continue;
		if (t.rec.mm_id) {
			auto [it, fresh] = mm_owner.emplace(t.rec.mm_id, t.rec.tgid);
			if (!fresh && it->second != t.rec.tgid)
				return fail(ExitCode::unsupported, "pid {} and pid {} share one address space (vfork or "
					    "CLONE_VM): not supported", it->second, t.rec.tgid);
		}
		if (t.rec.files_id) {
			auto [it, fresh] = files_owner.emplace(t.rec.files_id, t.rec.tgid);
			if (!fresh && it->second != t.rec.tgid)
				return fail(ExitCode::unsupported, "pid {} and pid {} share one fd table (CLONE_FILES): "
					    "not supported", it->second, t.rec.tgid);
		}
	}
	return {};
}

// Processes ordered parents first: each root (a process whose parent is not dumped: the target of a pid tree;
// in a cgroup, any number) in PID order, then breadth first below it.
std::vector<const RawTask*> leaders_in_tree_order(const std::vector<RawTask>& tasks)
{
	std::set<uint32_t> leaders;
	for (const RawTask& t : tasks)
		if (t.rec.tid == t.rec.tgid)
			leaders.insert(t.rec.tgid);
	std::multimap<uint32_t, const RawTask*> children;
	std::map<uint32_t, const RawTask*> roots;
	for (const RawTask& t : tasks) {
		if (t.rec.tid != t.rec.tgid)
			continue;
		if (leaders.count(t.rec.ppid) && t.rec.ppid != t.rec.tgid)
			children.emplace(t.rec.ppid, &t);
		else
			roots.emplace(t.rec.tgid, &t);
	}
	std::vector<const RawTask*> out;
	for (const auto& [pid, root] : roots) {
		std::deque<const RawTask*> queue{root};
		while (!queue.empty()) {
			const RawTask* t = queue.front();
			queue.pop_front();
			out.push_back(t);
			auto [b, e] = children.equal_range(t->rec.tgid);
			for (auto it = b; it != e; ++it)
				queue.push_back(it->second);
		}
	}
	return out;
}

// A zombie whose parent is outside the cgroup is waiting for that parent to reap it: nothing in the image would
// ever wait for it, so it is left out rather than restored as a root that is already dead.
std::vector<RawTask> without_orphan_zombies(std::vector<RawTask> tasks)
{
	std::set<uint32_t> tgids;
	for (const RawTask& t : tasks)
		tgids.insert(t.rec.tgid);
	std::erase_if(tasks, [&](const RawTask& t) { return t.rec.exit_state && !tgids.count(t.rec.ppid); });
	return tasks;
}

// A cgroup to snap: not the root (that is the whole machine), not one bpfckpt itself is in, and not empty.
Status check_cgroup_tasks(const cgroup::Cgroup& cg, const std::vector<RawTask>& tasks)
{
	for (const RawTask& t : tasks)
		if (t.rec.tgid == uint32_t(getpid()))
			return fail(ExitCode::no_target, "cgroup {}: holds bpfckpt itself (pid {})", cg.path, getpid());
	bool live = std::any_of(tasks.begin(), tasks.end(), [](const RawTask& t) { return !t.rec.exit_state; });
	if (!live)
		return fail(ExitCode::no_target, "cgroup {}: empty (no process in it or below it)", cg.path);
	return {};
}

// SIGINT, SIGTERM and SIGHUP wait while the target is frozen: bpfckpt stops at the next step with an error and
// everything it froze runs on, instead of dying with the target frozen (a cgroup) or half-written.
class InterruptGuard {
public:
	InterruptGuard()
	{
		sigemptyset(&set_);
		for (int sig : {SIGINT, SIGTERM, SIGHUP})
			sigaddset(&set_, sig);
		sigprocmask(SIG_BLOCK, &set_, &old_);
	}
	~InterruptGuard() { sigprocmask(SIG_SETMASK, &old_, nullptr); }

	Status check() const
	{
		timespec zero{};
		int sig = sigtimedwait(&set_, nullptr, &zero);
		if (sig > 0)
			return fail(ExitCode::interrupted, "interrupted by SIG{}: stopped; the target runs on as before, "
				    "no image was written", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
		return {};
	}

private:
	sigset_t set_, old_;
};

// An exit while frozen (only SIGKILL can do that) makes the image a lie: checked before it is published.
Status check_still_alive(const PtraceFreezer& freezer)
{
	for (const auto& [pid, fd] : freezer.pidfds()) {
		pollfd p{fd.get(), POLLIN, 0};
		if (poll(&p, 1, 0) > 0)
			return fail(ExitCode::target_busy, "pid {} exited during the dump", pid);
	}
	return {};
}

// Test hooks that widen a window, so tests can make things happen in it deterministically:
// BPFCKPT_TEST_STALL_ARMED_MS once -R has armed the processes before the freeze (they write armed memory then),
// BPFCKPT_TEST_STALL_HELD_MS once the tasks are held (a cgroup is thawed again then), and
// BPFCKPT_TEST_STALL_FROZEN_MS once the metadata is collected (the tree stays frozen: an exit, say).
void test_stall(const char* var)
{
	if (const char* ms = getenv(var))
		std::this_thread::sleep_for(std::chrono::milliseconds(atoi(ms)));
}

void wait_gone(const PtraceFreezer& freezer)
{
	for (const auto& [pid, fd] : freezer.pidfds()) {
		pollfd p{fd.get(), POLLIN, 0};
		poll(&p, 1, 5000);
	}
}

class Dumper {
public:
	Dumper(const DumpOptions& opt, Collector& c, image::ImageDir& dir, std::optional<cgroup::Cgroup> cg)
		: opt_(opt), col_(c), dir_(dir), cg_(std::move(cg)),
		  inc_(Increment::open(opt.prev_dir, opt.dir, opt.track_mem))
	{
	}

	Status run(DumpStats& st);

private:
	Result<std::vector<RawTask>> list();
	Result<std::vector<RawTask>> held(const std::map<pid_t, uint32_t>& seen);
	Status check(const std::vector<RawTask>& tasks) const;
	Status freeze(const std::function<Result<std::vector<RawTask>>()>& list);
	Status dump_frozen(DumpStats& st, double t_frozen, const std::map<pid_t, uint32_t>& state_before);
	Status fill_cgroups();
	void end_tree();
	Status dump_threads(image::Process& p, const std::vector<const RawTask*>& threads);
	Status dump_pipes();
	Status dump_shmem(image::Process& p);
	Status dump_pages(image::Process& p);
	Result<bool> dump_pages_live(image::Process& p, pid_t tid, uint64_t syscall_addr, image::BlobWriter& blob,
				     log::Progress* progress);
	Status copy_after_thaw();
	bool copies_after_thaw() const;
	void choose_direct(image::BlobWriter& blob, bool thawed) const;
	struct Running {
		const RawTask* leader;
		std::vector<image::Vma> vmas;
		uint64_t syscall_addr;
	};
	Result<std::vector<Running>> big_running(const std::vector<RawTask>& tasks);
	Status arm_early(const std::vector<RawTask>& tasks);
	bool pre_copies() const;
	Status pre_copy(const std::vector<RawTask>& tasks);
	Status keep_pre_copy(image::Process& p, PreCopied pc, std::vector<PageRewrite> rewrites);
	Status write_pre_copied();
	Result<bool> stage_pages(image::Process& p, const PageRanges& chosen, std::unique_ptr<image::BlobWriter>& blob);
	Status write_staged();
	Result<uint32_t> shmem_object(const std::string& open_path, const std::string& path, uint64_t dev, uint64_t ino);

	const DumpOptions& opt_;
	Collector& col_;
	image::ImageDir& dir_;
	std::optional<cgroup::Cgroup> cg_;        // snap: the cgroup; dump: none
	InterruptGuard interrupts_;
	Increment inc_;
	PtraceFreezer freezer_;
	image::Image img_;
	FileTable files_;
	std::map<std::pair<uint64_t, uint64_t>, uint32_t> shmem_ids_;  // (dev, ino) -> id
	std::unique_ptr<image::BlobWriter> shmem_blob_;
	MemoryStats mem_;
	CopyBuffers bufs_;
	// -R: the processes whose memory is copied after the thaw, with their page blobs still open.
	struct LivePages {
		image::Process* process;
		std::unique_ptr<image::BlobWriter> blob;
		LiveCopy copy;
	};
	std::vector<LivePages> live_;
	bool live_lost_ = false;
	EarlyArming early_;  // -R: the processes armed for the copy after the thaw before the freeze
	// -R increments: the pages read while frozen, for their blobs after the thaw.
	struct StagedPages {
		std::unique_ptr<image::BlobWriter> blob;
		size_t offset, bytes;  // in staging_
	};
	StagingArea staging_;
	std::vector<StagedPages> staged_;
	// Full -R --track-mem dumps: the memory copied before the freeze, and what the freeze read again for it.
	PreCopy pre_;
	struct PreCopiedPages {
		std::unique_ptr<image::BlobWriter> blob;
		std::vector<PageRewrite> staged;  // read while frozen, written over the copy after the thaw
		size_t staged_at = 0;             // in staging_
	};
	std::vector<PreCopiedPages> pre_copied_;

public:
	// The dump failed because the copy after the thaw lost pages (munmap, MADV_DONTNEED, mremap): a dump with
	// the memory copied while frozen can succeed.
	bool live_copy_lost() const { return live_lost_; }
};

// Appends bytes to a blob; no bytes give an empty reference.
Result<image::BlobRef> store(image::BlobWriter& blob, const std::string& bytes)
{
	if (bytes.empty())
		return image::BlobRef{};
	image::BlobRef ref{blob.name(), blob.offset(), bytes.size()};
	BCK_CHECK(blob.write(bytes.data(), bytes.size()));
	return ref;
}

// Registers and queued signals of every thread, and the process's queued signals, into threads-PID.bin.
Status Dumper::dump_threads(image::Process& p, const std::vector<const RawTask*>& threads)
{
	if (p.state == "zombie")
		return {};
	auto blob = BCK_TRY(dir_.open_blob(fmt::format("threads-{}.bin", p.pid)));
	for (size_t i = 0; i < threads.size(); i++) {
		pid_t tid = pid_t(threads[i]->rec.tid);
		ThreadCpu cpu = BCK_TRY(read_thread_cpu(tid));
		image::Thread& th = p.threads[i];
		th.regs.gpr = std::move(cpu.regs.gpr);
		th.syscall = cpu.syscall;
		th.regs.fpregs = BCK_TRY(store(*blob, cpu.fpregs));
		th.regs.xstate = BCK_TRY(store(*blob, cpu.xstate));
		th.siginfo = BCK_TRY(store(*blob, BCK_TRY(peek_siginfos(tid, false))));
		img_.host.xcr0 = cpu.xcr0;
		img_.host.xstate_size = cpu.xstate.size();
	}
	p.shared_siginfo = BCK_TRY(store(*blob, BCK_TRY(peek_siginfos(pid_t(p.pid), true))));
	img_.blobs.push_back(blob->finish());
	return {};
}

Status Dumper::dump_pipes()
{
	if (files_.pipes.empty())
		return {};
	auto blob = BCK_TRY(dir_.open_blob("pipes.bin"));
	for (const auto& [ino, holder] : files_.pipes) {
		auto it = freezer_.pidfds().find(holder.pid);
		if (it == freezer_.pidfds().end())
			return fail(ExitCode::failure, "pipe:[{}]: its holder pid {} has no pidfd", ino, holder.pid);
		std::string bytes = BCK_TRY(peek_pipe(it->second.get(), holder));
		img_.pipes.push_back({ino, holder.capacity, {blob->name(), blob->offset(), bytes.size()}});
		BCK_CHECK(blob->write(bytes.data(), bytes.size()));
	}
	img_.blobs.push_back(blob->finish());
	return {};
}

// MAP_SHARED anonymous memory and memfds are saved once, however many processes map them or hold them open.
Result<uint32_t> Dumper::shmem_object(const std::string& open_path, const std::string& path, uint64_t dev,
				      uint64_t ino)
{
	auto key = std::make_pair(dev, ino);
	if (auto it = shmem_ids_.find(key); it != shmem_ids_.end())
		return it->second;
	if (!shmem_blob_)
		shmem_blob_ = BCK_TRY(dir_.open_blob("shmem.bin"));
	image::Shmem obj;
	obj.id = uint32_t(img_.shmem.size());
	obj.kind = path.rfind("/memfd:", 0) == 0 ? "memfd" : "anon_shared";
	obj.path = path;
	obj.dev = dev;
	obj.ino = ino;
	obj.blob = shmem_blob_->name();
	BCK_CHECK(dump_shmem_object(open_path, obj, *shmem_blob_, bufs_, mem_));
	shmem_ids_.emplace(key, obj.id);
	img_.shmem.push_back(std::move(obj));
	return img_.shmem.back().id;
}

// The `syscall` instruction in the process's [vdso] that injected syscalls run through; 0 without a vdso.
Result<uint64_t> syscall_address(const std::vector<image::Vma>& vmas)
{
	auto vdso = std::find_if(vmas.begin(), vmas.end(), [](const image::Vma& v) { return v.kind == "vdso"; });
	return vdso == vmas.end() ? 0 : vdso->start + BCK_TRY(vdso_syscall_offset());
}

// Private pages: all of them, or, for vmas that inherit from the parent image, those written since.
Status Dumper::dump_pages(image::Process& p)
{
	uint64_t syscall_addr = BCK_TRY(syscall_address(p.vmas));
	pid_t tid = pid_t(p.threads.front().tid);
	// A task in a frozen cgroup (frozen by someone else: a snap thaws its own first) would never run a syscall
	// injected into it.
	if (syscall_addr && cgroup::process_held_frozen(pid_t(p.pid))) {
		if (opt_.track_mem)
			return fail(ExitCode::target_busy, "pid {}: its cgroup is frozen: --track-mem cannot arm tracking",
				    p.pid);
		syscall_addr = 0;  // no copy after the thaw either: it is copied now
	}
	std::unique_ptr<image::BlobWriter> blob;
	if (std::optional<PreCopied> pc = pre_.take(pid_t(p.pid))) {
		if (auto rewrites = BCK_TRY(pages_changed_since(*pc, p)))
			return keep_pre_copy(p, std::move(*pc), std::move(*rewrites));
		log::debug("pid {}: it exec'd since the copy before the freeze: copied again", p.pid);
		if (pc->who.mm_key == p.mm_key && pc->who.start_time == p.start_time)
			inc_.adopt(pid_t(p.pid), std::move(pc->tracker));  // else stale: it ends with pc
		BCK_CHECK(pc->blob->restart());
		blob = std::move(pc->blob);
	}
	PageRanges chosen = BCK_TRY(inc_.before_pages(p, tid, syscall_addr));
	if (!blob)
		blob = BCK_TRY(dir_.open_blob(fmt::format("pages-{}.bin", p.pid)));
	choose_direct(*blob, false);
	p.pages_blob = blob->name();
	log::Progress progress(fmt::format("dump pid {}", p.pid));
	log::Progress* shown = opt_.progress ? &progress : nullptr;
	if (copies_after_thaw() && syscall_addr) {
		if (BCK_TRY(dump_pages_live(p, tid, syscall_addr, *blob, shown))) {
			live_.back().blob = std::move(blob);
			return inc_.after_pages(p);
		}
	} else if (BCK_TRY(stage_pages(p, chosen, blob))) {
		return inc_.after_pages(p);
	} else {
		BCK_CHECK(dump_private_pages(pid_t(p.pid), p.vmas, *blob, bufs_, mem_, shown, chosen));
	}
	img_.blobs.push_back(blob->finish());
	return inc_.after_pages(p);
}

// How much of increments' memory a -R dump holds to write after the thaw; past it, pages are written while frozen.
constexpr uint64_t kStagedMax = 64u << 20;

// An increment with -R (`chosen` lists the vmas that inherit): its pages are read now and written after the thaw,
// when they fit; true when they were staged (the blob is then in staged_).
Result<bool> Dumper::stage_pages(image::Process& p, const PageRanges& chosen, std::unique_ptr<image::BlobWriter>& blob)
{
	if (!opt_.leave_running || chosen.empty())
		return false;
	std::vector<PagePiece> pieces = BCK_TRY(plan_private_pages(pid_t(p.pid), p.vmas, mem_, chosen));
	uint64_t bytes = total_bytes(pieces);
	if (staging_.used() + bytes > kStagedMax)
		return false;
	BCK_CHECK(staging_.reserve(bytes));
	size_t offset = staging_.used();
	BCK_CHECK(stage_private_pages(pid_t(p.pid), p.vmas, pieces, *blob, staging_.take(bytes), mem_));
	staged_.push_back({std::move(blob), offset, bytes});
	return true;
}

Status Dumper::write_staged()
{
	for (StagedPages& s : staged_) {
		double t0 = now_s();
		choose_direct(*s.blob, true);
		BCK_CHECK(s.blob->write_unhashed(staging_.at(s.offset), s.bytes));
		mem_.memwrite_s += now_s() - t0;
		img_.blobs.push_back(s.blob->finish());
	}
	staged_.clear();
	return {};
}

// Around the page cache (BlobWriter::set_direct) when the image is fsync'd and nobody waits on this write: after
// the thaw, or without -R (the target is killed only after the fsync). A -R target frozen for it waits on it, and
// its fsync comes after the thaw. Blobs copied before the freeze are never asked: rehash() reads them back whole.
void Dumper::choose_direct(image::BlobWriter& blob, bool thawed) const
{
	blob.set_direct(opt_.fsync && (thawed || !opt_.leave_running));
}

// The copy after the thaw is for full -R dumps: tracking needs the vmas registered WP_ASYNC instead, and an
// incremental dump has only its few written pages to copy.
bool Dumper::copies_after_thaw() const
{
	return opt_.leave_running && opt_.live_copy && !opt_.track_mem && opt_.prev_dir.empty();
}

// Before the freeze, while they run: the processes of `tasks` with at least kLiveCopyMin of private pages and a
// syscall instruction to inject through, with their vmas. One whose vmas are refused is left to the frozen dump,
// which says why; so is one held in a frozen cgroup (it would never run an injected syscall).
Result<std::vector<Dumper::Running>> Dumper::big_running(const std::vector<RawTask>& tasks)
{
	std::vector<const RawTask*> leaders;
	std::vector<pid_t> tgids;
	for (const RawTask& t : tasks)
		if (t.rec.tid == t.rec.tgid && !t.rec.exit_state && !cgroup::process_held_frozen(pid_t(t.rec.tgid))) {
			leaders.push_back(&t);
			tgids.push_back(pid_t(t.rec.tgid));
		}
	std::vector<Running> out;
	if (leaders.empty())
		return out;
	BCK_CHECK(col_.set_targets(tgids));
	std::vector<RawVma> raw = BCK_TRY(col_.vmas());
	std::map<uint32_t, std::vector<const RawVma*>> vmas_of;
	for (const RawVma& v : raw)
		vmas_of[v.rec.tgid].push_back(&v);
	for (const RawTask* leader : leaders) {
		pid_t pid = pid_t(leader->rec.tgid);
		auto vmas = build_vmas(*leader, vmas_of[leader->rec.tgid]);
		if (!vmas)
			continue;
		uint64_t syscall_addr = BCK_TRY(syscall_address(*vmas));
		MemoryStats scratch;
		auto pieces = plan_private_pages(pid, *vmas, scratch);
		if (syscall_addr && pieces && total_bytes(*pieces) >= kLiveCopyMin)
			out.push_back({leader, std::move(*vmas), syscall_addr});
	}
	return out;
}

// Before the freeze, for the copy after the thaw: each process big enough to copy that way is armed now, while it
// runs (EarlyArming). One that cannot be is armed while frozen.
Status Dumper::arm_early(const std::vector<RawTask>& tasks)
{
	for (const Running& r : BCK_TRY(big_running(tasks))) {
		pid_t pid = pid_t(r.leader->rec.tgid);
		BCK_TRY(context(early_.add(pid, pid, r.syscall_addr, mm_key_of(r.leader->rec), r.vmas), "pid {}", pid));
	}
	return early_.protect();
}

// A full dump that arms tracking and leaves the processes running copies their memory before the freeze
// (dump/pre_copy.h); --frozen-copy asks for the copy while frozen.
bool Dumper::pre_copies() const
{
	return opt_.leave_running && opt_.track_mem && opt_.live_copy && !inc_.has_parent();
}

Status Dumper::pre_copy(const std::vector<RawTask>& tasks)
{
	for (Running& r : BCK_TRY(big_running(tasks))) {
		BCK_CHECK(interrupts_.check());
		pid_t pid = pid_t(r.leader->rec.tgid);
		log::Progress progress(fmt::format("copy pid {} before the freeze", pid));
		auto blob = BCK_TRY(dir_.open_blob(fmt::format("pages-{}.bin", pid)));
		std::string path = dir_.temp_path() + "/" + blob->name();
		TrackedProcess who{pid, r.leader->rec.start_time, mm_key_of(r.leader->rec)};
		MemoryStats scratch;  // counted if the copy is kept
		auto added = pre_.add(who, pid, r.syscall_addr, std::move(r.vmas), std::move(blob), bufs_, scratch,
				      opt_.progress ? &progress : nullptr);
		if (!added || !*added)
			::unlink(path.c_str());
		if (!added && ::kill(pid, 0) != 0 && errno == ESRCH)
			continue;  // it exited: not in the image either
		BCK_TRY(context(std::move(added), "pid {}", pid));
	}
	return {};
}

// The pre-copy stands, with `rewrites` read again now: while frozen into the staging area when they fit, or
// written over the copy right away.
Status Dumper::keep_pre_copy(image::Process& p, PreCopied pc, std::vector<PageRewrite> rewrites)
{
	uint64_t bytes = rewrite_bytes(rewrites);
	log::debug("pid {}: {} pages changed since the copy before the freeze", p.pid, bytes / image::kPageSize);
	PreCopiedPages kept{std::move(pc.blob), {}, 0};
	p.pages_blob = kept.blob->name();
	if (staging_.used() + bytes <= kStagedMax) {
		BCK_CHECK(staging_.reserve(bytes));
		kept.staged_at = staging_.used();
		BCK_CHECK(read_rewrites(pid_t(p.pid), p.vmas, rewrites, staging_.take(bytes)));
		kept.staged = std::move(rewrites);
	} else {
		BCK_CHECK(bufs_.reserve(bytes));
		BCK_CHECK(rewrite_through(pid_t(p.pid), p.vmas, rewrites, *kept.blob, bufs_.get(0), bufs_.size()));
	}
	mem_.pages_written += kept.blob->offset() / image::kPageSize;
	inc_.keep_armed(pid_t(p.pid), std::move(pc.tracker));
	pre_copied_.push_back(std::move(kept));
	return inc_.after_pages(p);
}

// After the thaw: the staged pages over their copies, and each blob's checksum taken anew.
Status Dumper::write_pre_copied()
{
	for (PreCopiedPages& k : pre_copied_) {
		double t0 = now_s();
		BCK_CHECK(write_rewrites(*k.blob, k.staged, staging_.at(k.staged_at)));
		BCK_CHECK(k.blob->rehash());
		mem_.memwrite_s += now_s() - t0;
		img_.blobs.push_back(k.blob->finish());
	}
	pre_copied_.clear();
	return {};
}

// Write-protects what can be copied after the thaw and copies the rest now. True when some pages are left for
// copy_after_thaw (the process is then in live_); false when all were copied now.
Result<bool> Dumper::dump_pages_live(image::Process& p, pid_t tid, uint64_t syscall_addr, image::BlobWriter& blob,
				     log::Progress* progress)
{
	std::vector<PagePiece> pieces = BCK_TRY(plan_private_pages(pid_t(p.pid), p.vmas, mem_));
	uint64_t bytes = total_bytes(pieces);
	if (bytes < kLiveCopyMin) {
		BCK_CHECK(copy_private_pages(pid_t(p.pid), p.vmas, pieces, blob, bufs_, mem_, progress));
		return false;
	}
	std::optional<LiveCopy> copy = early_.take(pid_t(p.pid), p.mm_key);
	if (copy)
		BCK_CHECK(context(copy->arm_frozen(p.vmas, pieces), "pid {}", p.pid));
	else
		copy = BCK_TRY(context(LiveCopy::arm(pid_t(p.pid), tid, syscall_addr, p.vmas, pieces), "pid {}", p.pid));
	BCK_CHECK(copy_private_pages(pid_t(p.pid), p.vmas, pieces, blob, bufs_, mem_, progress));
	if (!copy || copy->live().empty())
		return false;
	live_.push_back({&p, nullptr, std::move(*copy)});
	return true;
}

// -R, once every thread runs again: the write-protected pages, copied while a handler thread saves each page a
// write reaches first.
Status Dumper::copy_after_thaw()
{
	if (live_.empty())
		return {};
	std::vector<LiveCopy*> copies;
	for (LivePages& l : live_)
		copies.push_back(&l.copy);
	auto handler = BCK_TRY(LiveCopyHandler::start(copies));
	Status copied;
	for (LivePages& l : live_) {
		image::Process& p = *l.process;
		log::Progress progress(fmt::format("dump pid {} (running)", p.pid));
		choose_direct(*l.blob, true);
		copied = copy_private_pages(pid_t(p.pid), p.vmas, l.copy.live(), *l.blob, bufs_, mem_,
					    opt_.progress ? &progress : nullptr,
					    [&l](const PagePiece* pieces, size_t n, char* dst) {
						    return l.copy.take(pieces, n, dst);
					    });
		if (!copied)
			break;
	}
	// A read that failed may be a munmap whose event the kernel queues only after the unmap is done: a moment
	// for it to arrive, then the handler reads every event that came before it stops.
	if (!copied)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	Status handled = handler->stop();
	for (LivePages& l : live_)
		if (l.copy.lost()) {
			live_lost_ = true;
			return fail(ExitCode::target_busy, "{}", l.copy.lost_reason());
		}
	// A process that exited after the thaw took its memory with it; it was part of the frozen moment.
	live_lost_ = !copied && copied.error().exit == ExitCode::target_busy;
	BCK_CHECK(copied);
	BCK_CHECK(handled);
	for (LivePages& l : live_)
		img_.blobs.push_back(l.blob->finish());
	live_.clear();  // closes the userfaultfds: the memory is no longer registered
	return {};
}

Status Dumper::dump_shmem(image::Process& p)
{
	for (image::Vma& v : p.vmas)
		if (v.kind == "shmem")
			v.shmem = BCK_TRY(shmem_object(fmt::format("/proc/{}/map_files/{:x}-{:x}", p.pid, v.start, v.end),
						       v.path, v.dev, v.ino));
	for (const image::Fd& fd : p.fds) {
		const image::File& f = files_.files[fd.file];
		if (f.kind == "memfd")
			BCK_TRY(shmem_object(fmt::format("/proc/{}/fd/{}", p.pid, fd.fd), f.path, f.dev, f.ino));
	}
	return {};
}

// The candidates: the tree below the target, the target alone, or every task in the cgroup's subtree.
Result<std::vector<RawTask>> Dumper::list()
{
	if (cg_)
		return without_orphan_zombies(BCK_TRY(col_.tasks_in_cgroup(cg_->id)));
	auto tasks = BCK_TRY(col_.tasks_below(opt_.pid));
	if (!opt_.children)
		std::erase_if(tasks, [&](const RawTask& t) { return t.rec.tgid != uint32_t(opt_.pid); });
	return tasks;
}

// The set the freeze holds: every seized thread, and the zombies seen while freezing. A cgroup is thawed once its
// tasks are seized, so a process can join it after that; it was never stopped and is not part of the image.
Result<std::vector<RawTask>> Dumper::held(const std::map<pid_t, uint32_t>& seen)
{
	std::vector<RawTask> tasks = BCK_TRY(list());
	std::erase_if(tasks, [&](const RawTask& t) {
		pid_t tid = pid_t(t.rec.tid);
		return t.rec.exit_state ? !seen.count(tid) : !freezer_.threads().count(tid);
	});
	return tasks;
}

Status Dumper::check(const std::vector<RawTask>& tasks) const
{
	return cg_ ? check_cgroup_tasks(*cg_, tasks) : check_target(opt_.pid, tasks);
}

// A pid tree is frozen by ptrace alone, re-listed until no fork slips through. A cgroup is frozen by the kernel
// first, so its set cannot change; its tasks are then seized and interrupted, and the cgroup thawed: they stay
// in their ptrace stops (a task in a frozen cgroup would not run the syscalls ptrace injects).
Status Dumper::freeze(const std::function<Result<std::vector<RawTask>>()>& list)
{
	if (!cg_)
		return freezer_.freeze(list);
	auto frozen = BCK_TRY(CgroupFreeze::freeze(*cg_, kCgroupFreezeTimeoutMs));
	BCK_CHECK(freezer_.freeze(list));
	return frozen->thaw();
}

// The processes of a task list, as write tracking names them.
std::vector<TrackedProcess> tracked_identities(const std::vector<RawTask>& tasks)
{
	std::vector<TrackedProcess> out;
	for (const RawTask& t : tasks)
		if (t.rec.tid == t.rec.tgid && !t.rec.exit_state)
			out.push_back({pid_t(t.rec.tgid), t.rec.start_time, mm_key_of(t.rec)});
	return out;
}

Status Dumper::run(DumpStats& st)
{
	double t0 = now_s();
	std::map<pid_t, uint32_t> state_before;
	auto list = [&]() -> Result<std::vector<RawTask>> {
		auto tasks = BCK_TRY(this->list());
		for (const RawTask& t : tasks)
			state_before.emplace(pid_t(t.rec.tid), t.rec.state);  // the first sighting is before the freeze
		return tasks;
	};
	auto first = BCK_TRY(list());
	BCK_CHECK(check(first));
	if (copies_after_thaw()) {
		BCK_CHECK(arm_early(first));
		test_stall("BPFCKPT_TEST_STALL_ARMED_MS");
	} else if (pre_copies()) {
		BCK_CHECK(pre_copy(first));
		test_stall("BPFCKPT_TEST_STALL_ARMED_MS");
	}
	BCK_CHECK(inc_.before_freeze(tracked_identities(first)));
	// Fresh memory faults in slowly: what the frozen copy of an increment, or of what changed since a pre-copy,
	// will fill is made now.
	uint64_t expected = inc_.early_bytes() + BCK_TRY(pre_.written_bytes());
	expected += expected / 4;
	BCK_CHECK(opt_.leave_running ? staging_.reserve(std::min(expected, kStagedMax)) : bufs_.reserve(expected));

	// Not while frozen: /proc/cpuinfo alone takes ~0.2 ms to read and parse here.
	img_.id = BCK_TRY(random_id());
	img_.host = host_info();

	double t_freeze = now_s();
	BCK_CHECK(freeze(list));
	double t_frozen = now_s();
	st.freezing_time = t_frozen - t_freeze;
	Status done = dump_frozen(st, t_frozen, state_before);
	// Only SIGKILL ends a task in a ptrace stop; whatever failed after that, the exit is the real story.
	if (!done)
		if (Status alive = check_still_alive(freezer_); !alive)
			return alive;
	if (done)
		st.total_time = now_s() - t0;
	return done;
}

// cgroup images: the snapped cgroup's tree, and each process's place in it.
Status Dumper::fill_cgroups()
{
	if (!cg_)
		return {};
	std::map<uint64_t, std::string> rel_of;
	for (const cgroup::Member& m : BCK_TRY(cgroup::subtree(*cg_))) {
		img_.cgroups.push_back(m.rel);
		rel_of.emplace(m.id, m.rel);
	}
	for (image::Process& p : img_.processes) {
		auto it = rel_of.find(p.cgroup_id);
		if (it == rel_of.end())
			return fail(ExitCode::target_busy, "pid {}: its cgroup (id {}) is no longer below {}", p.pid,
				    p.cgroup_id, cg_->path);
		p.cgroup = it->second;
	}
	return {};
}

// The default ending: the tree dies. cgroup.kill also takes processes that joined the cgroup after the freeze.
void Dumper::end_tree()
{
	if (cg_)
		if (Status st = cgroup::kill_all(*cg_); !st)
			log::warn("{}", st.error().describe());
	freezer_.kill_all();
}

// Everything here reads a tree that cannot change: every thread is in a ptrace stop.
Status Dumper::dump_frozen(DumpStats& st, double t_frozen, const std::map<pid_t, uint32_t>& state_before)
{
	test_stall("BPFCKPT_TEST_STALL_HELD_MS");
	std::vector<RawTask> all = BCK_TRY(held(state_before));
	BCK_CHECK(check(all));
	BCK_CHECK(check_sharing(all));
	std::vector<pid_t> tgids;
	for (const RawTask& t : all)
		if (t.rec.tid == t.rec.tgid)
			tgids.push_back(pid_t(t.rec.tgid));
	BCK_CHECK(col_.set_targets(tgids));
	std::vector<RawFile> raw_files = BCK_TRY(col_.files());
	std::vector<RawVma> raw_vmas = BCK_TRY(col_.vmas());
	files_ = BCK_TRY(build_files(raw_files));

	std::map<uint32_t, std::vector<const RawTask*>> threads_of;
	for (const RawTask& t : all)
		threads_of[t.rec.tgid].push_back(&t);
	for (auto& [tgid, v] : threads_of) {  // the leader first, the others in the iterator's order
		auto leader = std::find_if(v.begin(), v.end(), [](const RawTask* t) { return t->rec.tid == t->rec.tgid; });
		if (leader != v.end())
			std::rotate(v.begin(), leader, leader + 1);
	}
	std::map<uint32_t, std::vector<const RawVma*>> vmas_of;
	for (const RawVma& v : raw_vmas)
		vmas_of[v.rec.tgid].push_back(&v);

	img_.tool_version = BPFCKPT_VERSION;
	img_.created = utc_now();
	img_.target = cg_ ? image::Target{"cgroup", 0, cg_->path, opt_.leave_running}
			  : image::Target{"pid_tree", uint32_t(opt_.pid), "", opt_.leave_running};
	for (const RawTask* leader : leaders_in_tree_order(all)) {
		const auto& threads = threads_of[leader->rec.tgid];
		image::Process p = BCK_TRY(build_process(*leader, threads, state_before));
		p.vmas = BCK_TRY(context(build_vmas(*leader, vmas_of[leader->rec.tgid]), "pid {}", p.pid));
		p.fds = files_.fds[pid_t(p.pid)];
		BCK_CHECK(dump_threads(p, threads));
		img_.processes.push_back(std::move(p));
	}
	BCK_CHECK(fill_cgroups());
	SelfToken self_token = BCK_TRY(SelfToken::arm(opt_.self_token, opt_.pid));  // for bpfckpt_checkpoint_self
	BCK_CHECK(dump_pipes());
	BCK_CHECK(self_token.disarm());  // -R thaws before the commit: the live caller must never see the byte
	test_stall("BPFCKPT_TEST_STALL_FROZEN_MS");

	double t_mem = now_s();
	BCK_CHECK(early_.stop());
	for (image::Process& p : img_.processes) {
		if (p.state == "zombie")
			continue;
		BCK_CHECK(interrupts_.check());
		BCK_CHECK(dump_shmem(p));
		BCK_CHECK(dump_pages(p));
	}
	pre_.discard(dir_.temp_path());
	inc_.link(img_);
	if (shmem_blob_)
		img_.blobs.push_back(shmem_blob_->finish());
	img_.files = files_.files;
	// Opened while every process still holds its files; read and hashed once the tree is no longer stopped for it.
	FileDigests digests;
	BCK_CHECK(digests.open(img_));
	BCK_CHECK(check_still_alive(freezer_));
	BCK_CHECK(interrupts_.check());

	if (opt_.leave_running) {
		freezer_.detach_all();
		st.frozen_time = now_s() - t_frozen;
		early_.clear();
		BCK_CHECK(write_staged());
		BCK_CHECK(write_pre_copied());
		BCK_CHECK(copy_after_thaw());
	}
	BCK_TRY(digests.fill(img_));
	st.memdump_time = now_s() - t_mem;
	st.memwrite_time = mem_.memwrite_s;
	st.pages_scanned = mem_.pages_scanned;
	st.pages_written = mem_.pages_written;
	BCK_CHECK(dir_.commit(img_, opt_.fsync));
	BCK_CHECK(inc_.commit(img_.id));
	if (!opt_.leave_running) {
		end_tree();
		st.frozen_time = now_s() - t_frozen;
		wait_gone(freezer_);
	}
	st.processes = img_.processes.size();
	st.incremental = img_.parent.has_value();
	for (const auto& p : img_.processes) {
		st.threads += p.threads.size();
		st.pids.push_back(pid_t(p.pid));
	}
	for (const auto& b : img_.blobs)
		st.image_bytes += b.size;
	return {};
}

}  // namespace

Result<std::unique_ptr<Collector>> load_collector()
{
	double t0 = now_s();
	auto collector = Collector::open();
	log::debug("BPF iterators loaded in {:.1f} ms", (now_s() - t0) * 1e3);
	if (!collector) {
		Error e = collector.error();
		if (e.err == EPERM || e.err == EACCES)
			e.exit = ExitCode::permission, e.msg += " (bpfckpt needs root: CAP_BPF, CAP_SYS_ADMIN, CAP_SYS_PTRACE)";
		return std::unexpected(e);
	}
	return collector;
}

namespace {

// A -R dump whose copy after the thaw was lost is taken again, with the memory copied while frozen.
Result<DumpStats> run_dumper(const DumpOptions& opt, const std::optional<cgroup::Cgroup>& cg)
{
	std::unique_ptr<Collector> own;
	if (!opt.collector)
		own = BCK_TRY(load_collector());
	Collector& collector = opt.collector ? *opt.collector : *own;
	for (DumpOptions o = opt;; o.live_copy = false) {
		auto dir = BCK_TRY(image::ImageDir::create(o.dir));
		DumpStats st;
		Dumper d(o, collector, *dir, cg);
		Status done = d.run(st);
		if (done)
			return st;
		if (!d.live_copy_lost() || !o.live_copy)
			return std::unexpected(done.error());
		log::warn("{}: dumping again, with the memory copied while frozen", done.error().describe());
	}
}

}  // namespace

Result<DumpStats> dump_tree(const DumpOptions& opt)
{
	if (opt.pid <= 0)
		return fail(ExitCode::usage, "pid {}: not a process id", opt.pid);
	if (kill(opt.pid, 0) != 0 && errno == ESRCH)
		return fail(ExitCode::no_target, "pid {}: no such process", opt.pid);
	if (opt.pid == 1)
		return fail(ExitCode::no_target, "pid 1: init cannot be dumped (its parent is the kernel)");
	return run_dumper(opt, std::nullopt);
}

Result<DumpStats> snap_cgroup(const DumpOptions& opt)
{
	cgroup::Cgroup cg = BCK_TRY(cgroup::resolve(opt.cgroup));
	if (cg.path == "/")
		return fail(ExitCode::no_target, "cgroup {}: the root cgroup is the whole machine; snap a cgroup below it",
			    opt.cgroup);
	std::string self = BCK_TRY(cgroup::path_of(getpid()));
	if (cgroup::is_within(self, cg.path))
		return fail(ExitCode::no_target, "cgroup {}: holds bpfckpt itself (in {})", cg.path, self);
	if (!BCK_TRY(cgroup::populated(cg)))
		return fail(ExitCode::no_target, "cgroup {}: empty (no process in it or below it)", cg.path);
	return run_dumper(opt, std::move(cg));
}

}  // namespace bpfckpt::dump
