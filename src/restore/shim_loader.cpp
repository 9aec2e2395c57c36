#include "restore/shim_loader.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bpfckpt/records.h"
#include "common/address_ranges.h"
#include "restore/files.h"
#include "restore/shim/plan.h"

extern "C" {
extern const char _binary_shim_bin_start[];
extern const char _binary_shim_bin_end[];
}

namespace bpfckpt::restore {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kThreadStack = 64 * 1024;
constexpr uint64_t kTopOfUser = 0x7ffffffff000ull;

uint64_t page_up(uint64_t x) { return (x + kPage - 1) & ~(kPage - 1); }

size_t shim_code_bytes() { return size_t(_binary_shim_bin_end - _binary_shim_bin_start); }

struct Layout {
	uint64_t code = 0, plan = 0, stacks = 0, total = 0;
};

Layout layout_for(const image::Process& p, size_t plan_bytes)
{
	Layout l;
	l.plan = page_up(shim_code_bytes());
	l.stacks = l.plan + page_up(plan_bytes);
	l.total = l.stacks + (p.threads.size() + 1) * kThreadStack;  // +1: the stack shim_main starts on
	return l;
}

// Our own mappings, from /proc/self/maps: everything the shim must unmap except itself and the vdso/vvar.
struct OwnMap {
	uint64_t start, end;
	std::string name;
};

Result<std::vector<OwnMap>> own_maps()
{
	std::ifstream in("/proc/self/maps");
	if (!in)
		return fail_sys(errno, "read /proc/self/maps");
	std::vector<OwnMap> out;
	for (std::string line; std::getline(in, line);) {
		OwnMap m{};
		std::istringstream ls(line);
		std::string range, perms, off, dev, ino;
		ls >> range >> perms >> off >> dev >> ino;
		std::getline(ls, m.name);
		m.name.erase(0, m.name.find_first_not_of(' '));
		m.start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
		m.end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
		out.push_back(m);
	}
	return out;
}

bool is_special(const OwnMap& m) { return m.name == "[vdso]" || m.name == "[vvar]" || m.name == "[vvar_vclock]"; }

// This kernel's vdso and vvar pages, moved as one unit to where the image had them: only possible when the image
// has each of them, of the same size (a kernel of another version or configuration may lay them out otherwise).
Result<std::vector<shim_move>> special_moves(const image::Process& p, const std::vector<OwnMap>& own)
{
	std::vector<shim_move> moves;
	for (const OwnMap& m : own) {
		if (!is_special(m))
			continue;
		auto saved = std::find_if(p.vmas.begin(), p.vmas.end(), [&](const auto& v) { return v.path == m.name; });
		if (saved == p.vmas.end())
			return fail(ExitCode::unsupported, "pid {}: this kernel has a {} the image lacks (another kernel?)",
				    p.pid, m.name);
		if (saved->end - saved->start != m.end - m.start)
			return fail(ExitCode::unsupported, "pid {}: {} is {} KiB here, {} KiB in the image (another kernel?)",
				    p.pid, m.name, (m.end - m.start) / 1024, (saved->end - saved->start) / 1024);
		moves.push_back({m.start, saved->start, m.end - m.start});
	}
	return moves;
}

// What the shim unmaps: all of our address space from our lowest mapping to our highest, but the shim itself and the
// vdso/vvar (moved later). Spans, holes included, not one munmap per mapping: each munmap ends in a TLB flush, a
// flush costs every vCPU of these VMs tens of microseconds, and a restorer has dozens of mappings.
AddressRanges unmap_spans(const std::vector<OwnMap>& own, const ShimPlacement& where)
{
	AddressRanges keep{{where.start, where.start + where.len}};
	uint64_t lo = UINT64_MAX, hi = 0;
	for (const OwnMap& m : own) {
		if (m.name == "[vsyscall]")
			continue;  // above the user address space: not ours to unmap
		if (is_special(m))
			keep = unite(keep, {{m.start, m.end}});
		lo = std::min(lo, m.start);
		hi = std::max(hi, m.end);
	}
	return lo < hi ? subtract({{lo, hi}}, keep) : AddressRanges{};
}

// glibc registered an rseq area in our TLS; the kernel would keep writing to it after the shim unmaps it.
void unregister_rseq()
{
	if (__rseq_size == 0)
		return;
	void* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
	// glibc 2.35+ registers 32 bytes (the original struct rseq size) with RSEQ_SIG.
	for (unsigned len : {32u, __rseq_size})
		if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
			return;
}

void fill_threads(const image::Process& p, const ShimPlacement& where, const Layout& l, shim_thread* t)
{
	for (size_t i = 0; i < p.threads.size(); i++) {
		const image::Thread& th = p.threads[i];
		t[i] = {};
		t[i].tid = th.tid;
		std::snprintf(t[i].comm, sizeof(t[i].comm), "%s", th.comm.c_str());
		t[i].stack_top = where.start + l.stacks + (i + 2) * kThreadStack;
		t[i].rseq = th.rseq;
		t[i].rseq_len = th.rseq_len;
		t[i].rseq_sig = th.rseq_sig;
		t[i].clear_child_tid = th.clear_child_tid;
		t[i].robust_list = th.robust_list;
		t[i].ss_sp = th.sas_ss_sp;
		t[i].ss_size = th.sas_ss_size;
		t[i].ss_flags = th.sas_ss_flags;
	}
}

// VM_* flags that only madvise() sets
uint32_t advice_for(uint64_t f)
{
	return ((f & BCK_VM_HUGEPAGE) ? SHIM_ADVICE_HUGEPAGE : 0) | ((f & BCK_VM_NOHUGEPAGE) ? SHIM_ADVICE_NOHUGEPAGE : 0) |
	       ((f & BCK_VM_DONTDUMP) ? SHIM_ADVICE_DONTDUMP : 0) | ((f & BCK_VM_DONTCOPY) ? SHIM_ADVICE_DONTFORK : 0) |
	       ((f & BCK_VM_WIPEONFORK) ? SHIM_ADVICE_WIPEONFORK : 0);
}

}  // namespace

std::vector<int> ShimInputs::all() const
{
	std::vector<int> v = vma_fds;
	for (int fd : page_fds)
		if (fd >= 0)
			v.push_back(fd);
	v.push_back(exe_fd);
	return v;
}

size_t ShimInputs::nr_runs() const
{
	size_t n = 0;
	for (const auto& runs : vma_runs)
		n += runs.size();
	return n;
}

size_t shim_plan_bytes(const image::Process& p, const ShimInputs& in)
{
	return sizeof(shim_plan) + 512 * sizeof(shim_range) + 8 * sizeof(shim_move) + p.vmas.size() * sizeof(shim_vma) +
	       in.nr_runs() * sizeof(shim_run) + p.threads.size() * sizeof(shim_thread) + 64 * sizeof(shim_sigaction) +
	       p.posix_timers.size() * sizeof(shim_posix_timer) + in.queued.size() * sizeof(shim_siginfo) +
	       in.page_fds.size() * sizeof(int32_t);
}

Result<ShimPlacement> place_shim(const image::Process& p, size_t plan_bytes)
{
	Layout l = layout_for(p, plan_bytes);
	// Walk the gaps between saved VMAs from the top down; try each with MAP_FIXED_NOREPLACE, which also refuses
	// addresses our own mappings use.
	std::vector<std::pair<uint64_t, uint64_t>> gaps;
	uint64_t prev_end = 0x10000;
	for (const auto& v : p.vmas) {
		if (v.start > prev_end)
			gaps.emplace_back(prev_end, v.start);
		prev_end = std::max(prev_end, v.end);
	}
	gaps.emplace_back(prev_end, kTopOfUser);
	for (auto it = gaps.rbegin(); it != gaps.rend(); ++it) {
		for (uint64_t at = it->second; at >= it->first + l.total && at >= l.total; at -= 64ull << 20) {
			uint64_t start = (at - l.total) & ~(kPage - 1);
			void* m = mmap(reinterpret_cast<void*>(start), l.total, PROT_READ | PROT_WRITE | PROT_EXEC,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (m == reinterpret_cast<void*>(start))
				return ShimPlacement{start, l.total};
			if (m != MAP_FAILED)
				munmap(m, l.total);
			if (at - it->first < (64ull << 20) + l.total)
				break;
		}
	}
	return fail(ExitCode::failure, "pid {}: no hole in the saved address space for the restore shim", p.pid);
}

namespace {

// Each vma's pages as the chain resolves them, and the page blobs (one per image at most) they read from.
Status open_page_sources(const image::Chain& chain, const image::Process& p, int fd_base, ShimInputs& in)
{
	in.page_fds.assign(chain.depth(), -1);
	for (const auto& v : p.vmas) {
		in.vma_runs.push_back(BCK_TRY(chain.resolve(p.pid, v.start, v.end)));
		for (const image::ResolvedRun& r : in.vma_runs.back()) {
			if (in.page_fds[r.level] >= 0)
				continue;
			std::string path = chain.blob_path(r);
			int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return fail_sys(errno, "pid {}: open {}", p.pid, path);
			in.page_fds[r.level] = BCK_TRY(move_high(fd, fd_base));
		}
	}
	return {};
}

}  // namespace

Result<ShimInputs> open_shim_inputs(const image::Chain& chain, const image::Process& p, int fd_base,
				    const std::vector<int>& shmem_fds, const FileLookup& look)
{
	ShimInputs in;
	BCK_CHECK(open_page_sources(chain, p, fd_base, in));
	in.queued = BCK_TRY(read_queued_signals(chain.newest_dir(), p));
	Located exe = BCK_TRY(context(look.open(exe_identity(p), O_RDONLY), "pid {}", p.pid));
	in.exe_fd = BCK_TRY(move_high(exe.fd.release(), fd_base));
	for (const auto& v : p.vmas) {
		int fd = -1;
		if (v.kind == "file") {
			UniqueFd f = BCK_TRY(context(open_mapped_file(v, look), "pid {}", p.pid));
			fd = BCK_TRY(move_high(f.release(), fd_base));
		} else if (v.kind == "shmem") {
			if (!v.shmem || *v.shmem >= shmem_fds.size())
				return fail(ExitCode::bad_image, "pid {}: vma {:x} names no shared memory object", p.pid,
					    v.start);
			fd = shmem_fds[*v.shmem];
		}
		in.vma_fds.push_back(fd);
	}
	return in;
}

uint64_t shim_plan_offset() { return page_up(shim_code_bytes()); }

std::string shim_step_name(uint64_t step)
{
	static const char* const kNames[] = {"start", "unmap", "move vdso", "map", "fill", "protect", "mm", "sigaction",
					     "thread", "rseq", "itimer", "creds", "POSIX timer", "signal queue",
					     "groups", "bounding set", "ambient set"};
	static_assert(std::size(kNames) == SHIM_STEP_AMBIENT + 1, "a name for every shim_step");
	return step < std::size(kNames) ? kNames[step] : fmt::format("{}", step);
}

Status check_special_mappings(const image::Process& p)
{
	BCK_CHECK(special_moves(p, BCK_TRY(own_maps())));
	return {};
}

Status enter_shim(const image::Process& p, const ShimInputs& in, const ShimPlacement& where,
		  const std::vector<int>& extra_close)
{
	size_t plan_bytes = shim_plan_bytes(p, in);
	Layout l = layout_for(p, plan_bytes);
	char* base = reinterpret_cast<char*>(where.start);
	std::memcpy(base, _binary_shim_bin_start, shim_code_bytes());
	auto* plan = reinterpret_cast<shim_plan*>(base + l.plan);
	std::memset(plan, 0, plan_bytes);
	plan->magic = SHIM_PLAN_MAGIC;
	plan->self_start = where.start;
	plan->self_len = where.len;

	uint64_t off = sizeof(shim_plan);
	auto* ranges = reinterpret_cast<shim_range*>(reinterpret_cast<char*>(plan) + off);
	auto* moves = reinterpret_cast<shim_move*>(ranges + 512);
	auto own = BCK_TRY(own_maps());
	for (auto [start, end] : unmap_spans(own, where)) {
		if (plan->nr_unmap == 512)
			return fail(ExitCode::failure, "pid {}: more than 512 restorer mappings", p.pid);
		ranges[plan->nr_unmap++] = {start, end - start};
	}
	plan->unmap_off = off;
	plan->moves_off = off + 512 * sizeof(shim_range);
	for (const shim_move& m : BCK_TRY(special_moves(p, own)))
		moves[plan->nr_moves++] = m;
	std::sort(moves, moves + plan->nr_moves, [](const auto& a, const auto& b) { return a.from < b.from; });

	auto* vmas = reinterpret_cast<shim_vma*>(moves + 8);
	plan->vmas_off = uint64_t(reinterpret_cast<char*>(vmas) - reinterpret_cast<char*>(plan));
	size_t nv = 0;
	std::vector<shim_run> runs;
	for (size_t i = 0; i < p.vmas.size(); i++) {
		const image::Vma& v = p.vmas[i];
		if (v.kind == "vdso" || v.kind == "vvar" || v.kind == "vvar_vclock")
			continue;
		shim_vma& s = vmas[nv++];
		s = {};
		s.start = v.start;
		s.len = v.end - v.start;
		s.prot = v.prot;
		s.flags = (v.shared ? MAP_SHARED : MAP_PRIVATE) | ((v.vm_flags & BCK_VM_GROWSDOWN) ? MAP_GROWSDOWN : 0);
		s.fd = in.vma_fds[i];
		s.offset = v.offset;
		s.advice = advice_for(v.vm_flags);
		s.first_run = runs.size();
		for (const auto& r : in.vma_runs[i])
			runs.push_back({r.start, r.npages * kPage, r.blob_offset, in.page_fds[r.level], 0});
		s.nr_runs = uint32_t(runs.size() - s.first_run);
	}
	plan->nr_vmas = nv;
	auto* run_arr = reinterpret_cast<shim_run*>(vmas + nv);
	std::copy(runs.begin(), runs.end(), run_arr);
	plan->runs_off = uint64_t(reinterpret_cast<char*>(run_arr) - reinterpret_cast<char*>(plan));
	plan->nr_runs = runs.size();

	auto* threads = reinterpret_cast<shim_thread*>(run_arr + runs.size());
	plan->threads_off = uint64_t(reinterpret_cast<char*>(threads) - reinterpret_cast<char*>(plan));
	plan->nr_threads = p.threads.size();
	fill_threads(p, where, l, threads);

	auto* acts = reinterpret_cast<shim_sigaction*>(threads + p.threads.size());
	plan->sigactions_off = uint64_t(reinterpret_cast<char*>(acts) - reinterpret_cast<char*>(plan));
	for (const auto& a : p.sigactions)
		if (a.signo != SIGKILL && a.signo != SIGSTOP)
			acts[plan->nr_sigactions++] = {uint64_t(a.signo), a.handler, a.flags, a.restorer, a.mask};

	auto* timers = reinterpret_cast<shim_posix_timer*>(acts + 64);
	plan->timers_off = uint64_t(reinterpret_cast<char*>(timers) - reinterpret_cast<char*>(plan));
	for (const image::PosixTimer& t : p.posix_timers)
		timers[plan->nr_timers++] = {t.id, t.clock, t.notify, t.signo, t.tid, 0, t.sigval, t.value_ns,
					     t.interval_ns};

	auto* siginfos = reinterpret_cast<shim_siginfo*>(timers + p.posix_timers.size());
	plan->siginfos_off = uint64_t(reinterpret_cast<char*>(siginfos) - reinterpret_cast<char*>(plan));
	for (const QueuedSignal& q : in.queued) {
		shim_siginfo& s = siginfos[plan->nr_siginfos++];
		s.tid = q.tid;
		std::memcpy(s.info, q.info.data(), sizeof(s.info));
	}

	auto* page_fds = reinterpret_cast<int32_t*>(siginfos + in.queued.size());
	plan->page_fds_off = uint64_t(reinterpret_cast<char*>(page_fds) - reinterpret_cast<char*>(plan));
	for (int fd : in.page_fds)
		if (fd >= 0)
			page_fds[plan->nr_page_fds++] = fd;

	const image::Mm& mm = p.mm;
	plan->mm = {mm.start_code, mm.end_code, mm.start_data, mm.end_data, mm.start_brk, mm.brk, mm.start_stack,
		    mm.arg_start, mm.arg_end, mm.env_start, mm.env_end, in.exe_fd, 0, {}};
	if (mm.auxv.size() > 64)
		return fail(ExitCode::bad_image, "pid {}: auxv of {} words", p.pid, mm.auxv.size());
	plan->mm.auxv_words = uint32_t(mm.auxv.size());
	plan->itimers[ITIMER_REAL] = {p.it_real.interval_ns, p.it_real.value_ns};
	plan->itimers[ITIMER_VIRTUAL] = {p.it_virt.interval_ns, p.it_virt.value_ns};
	plan->itimers[ITIMER_PROF] = {p.it_prof.interval_ns, p.it_prof.value_ns};
	const image::Creds& c = p.creds;
	if (c.groups.size() > std::size(plan->creds.groups))
		return fail(ExitCode::bad_image, "pid {}: {} supplementary groups", p.pid, c.groups.size());
	plan->creds = {1, c.uid, c.euid, c.suid, c.gid, c.egid, c.sgid, uint32_t(c.groups.size()), c.cap_effective,
		       c.cap_permitted, c.cap_inheritable, c.cap_bset, c.cap_ambient, {}};
	std::copy(c.groups.begin(), c.groups.end(), plan->creds.groups);
	std::copy(mm.auxv.begin(), mm.auxv.end(), plan->mm.auxv);
	std::vector<int> close = extra_close;
	for (int fd : in.vma_fds)
		if (fd >= 0)
			close.push_back(fd);
	if (close.size() > 64)
		return fail(ExitCode::unsupported, "pid {}: more than 64 mapped files", p.pid);
	for (int fd : close)
		plan->close_fds[plan->nr_close++] = fd;

	// Signals stay blocked from here on: the saved mask is set by the restorer with ptrace at the end.
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, nullptr);
	unregister_rseq();
	uint64_t stack_top = where.start + l.stacks + kThreadStack;
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%1\n\t"
			 :
			 : "r"(stack_top), "a"(where.start), "D"(plan)
			 : "memory");
	__builtin_unreachable();
}

}  // namespace bpfckpt::restore
