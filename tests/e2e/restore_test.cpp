// Acceptance tests for `bpfckpt restore` (issue #3): a dumped tree comes back with its PIDs, memory, registers,
// threads, files, pipes and sessions, and the workloads themselves say PASS; images that are corrupt or hostile are
// refused before anything is created; a restore that fails leaves no process behind.
//
// How a restored workload is driven: `bpfckpt restore -d` runs with its stdout a pipe this test reads. The
// workload's stdout was a pipe to the test, outside the dumped tree ("external"), and restore reconnects external
// write ends to its own stdout, so the restored workload's verdict arrives on that pipe. Once `restore -d` exits, the
// restored root is reparented to this process (the harness makes the test a child subreaper), so the test reaps it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "restore_run.h"

namespace e2e {
namespace {


// A 64-bit value of a live process's memory.
std::optional<uint64_t> peek_u64(pid_t pid, uint64_t addr)
{
	uint64_t v = 0;
	iovec local{&v, sizeof(v)}, remote{reinterpret_cast<void*>(addr), sizeof(v)};
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != ssize_t(sizeof(v)))
		return std::nullopt;
	return v;
}

// A 64-bit value at `addr` as the image holds it (nullopt when no saved page covers it).
std::optional<uint64_t> image_u64(const fs::path& img, const json& proc, uint64_t addr)
{
	for (auto& v : proc.at("vmas"))
		for (auto& run : v.at("pages")) {
			uint64_t start = run.at("start").get<uint64_t>();
			uint64_t end = start + run.at("npages").get<uint64_t>() * 4096;
			if (addr < start || addr + 8 > end)
				continue;
			int fd = open((img / proc.at("pages_blob").get<std::string>()).c_str(), O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return std::nullopt;
			uint64_t val = 0;
			ssize_t n = pread(fd, &val, 8, off_t(run.at("blob_offset").get<uint64_t>() + (addr - start)));
			close(fd);
			if (n != 8)
				return std::nullopt;
			return val;
		}
	return std::nullopt;
}

const json* find_process(const json& index, pid_t pid)
{
	for (auto& p : index.at("processes"))
		if (p.at("pid").get<pid_t>() == pid)
			return &p;
	return nullptr;
}

std::set<pid_t> as_set(const json& array)
{
	std::set<pid_t> s;
	for (auto& v : array)
		s.insert(v.get<pid_t>());
	return s;
}

std::set<pid_t> as_set(const std::vector<pid_t>& v)
{
	return {v.begin(), v.end()};
}

// Waits until `pid` runs the expected executable with exactly `tids`, none of them traced or stopped: what a
// restore without -d looks like once it has handed over (it gives no other sign; it waits for the root to exit).
testing::AssertionResult wait_running(pid_t pid, const std::string& exe, const std::set<pid_t>& tids,
				      std::chrono::milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	std::string last;
	for (;;) {
		std::error_code ec;
		auto target = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
		auto now = thread_ids(pid);
		std::set<pid_t> live(now.begin(), now.end());
		if (!ec && target == exe && live == tids && running_untraced(pid))
			return testing::AssertionSuccess();
		last = "exe " + (ec ? std::string("?") : target.string()) + ", " + std::to_string(live.size()) +
		       " threads, state " + proc_state(pid);
		if (Clock::now() > deadline)
			return testing::AssertionFailure() << "pid " << pid << " not restored and running within "
							   << timeout.count() << " ms: " << last;
		std::this_thread::sleep_for(5ms);
	}
}

// Each thread's name (/proc/PID/task/TID/comm), by TID.
std::map<pid_t, std::string> thread_comms(pid_t pid)
{
	std::map<pid_t, std::string> out;
	for (pid_t tid : thread_ids(pid))
		out[tid] = trim_nl(read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm")
					   .value_or("?"));
	return out;
}

// The fds of a process after the restore against before the dump: the same numbers, each regular file the same path
// and flags (and offset, for files under `scratch`: the workload's own), each pipe a pipe. `pipes` maps pipe inodes
// before -> after across every process compared with it: two fds that shared a pipe before share one after, and two
// that did not, do not. External pipes (the other end outside the tree: the test's stdout pipe, whatever the test
// inherited) all go to restore's stdout by design, so they may merge.
void expect_same_fds(const std::map<int, FdEntry>& before, const std::map<int, FdEntry>& after,
		     const fs::path& scratch, std::map<uint64_t, uint64_t>& pipes, const std::set<uint64_t>& external)
{
	const uint32_t bits = O_ACCMODE | O_APPEND | O_NONBLOCK | O_CLOEXEC;
	for (auto& [n, b] : before) {
		auto it = after.find(n);
		if (it == after.end()) {
			ADD_FAILURE() << "fd " << n << " -> " << b.target << " is missing after the restore";
			continue;
		}
		const FdEntry& a = it->second;
		SCOPED_TRACE("fd " + std::to_string(n) + " -> " + b.target + " (after: " + a.target + ")");
		EXPECT_EQ(a.mode & S_IFMT, b.mode & S_IFMT) << "file type";
		EXPECT_EQ(a.flags & bits, b.flags & bits) << std::oct << "flags (octal) " << a.flags << " vs " << b.flags
							  << std::dec;
		if (S_ISFIFO(b.mode) && external.count(b.ino)) {
			// fine: a pipe, checked above
		} else if (S_ISFIFO(b.mode)) {
			auto [m, fresh] = pipes.emplace(b.ino, a.ino);
			EXPECT_EQ(m->second, a.ino) << "pipe sharing differs: pipe:[" << b.ino << "] became both pipe:["
						    << m->second << "] and pipe:[" << a.ino << "]";
			if (fresh) {
				for (auto& [from, to] : pipes) {
					EXPECT_FALSE(from != b.ino && to == a.ino)
					    << "pipes pipe:[" << from << "] and pipe:[" << b.ino << "] became one";
				}
			}
		} else {
			EXPECT_EQ(a.target, b.target);
			if (b.target.rfind(scratch.string(), 0) == 0) {
				EXPECT_EQ(a.pos, b.pos) << "offset";
			}
		}
	}
	for (auto& [n, a] : after)
		EXPECT_TRUE(before.count(n)) << "fd " << n << " -> " << a.target
					    << " is open after the restore but was not before (leaked by the restore?)";
}

// What /proc shows of a process, before the dump, to hold against the restored one.
struct ProcSnapshot {
	std::map<pid_t, std::string> comms;
	std::map<int, FdEntry> fds;
	std::string cpus;  // Cpus_allowed_list
};

ProcSnapshot snapshot(pid_t pid)
{
	return {thread_comms(pid), read_fds(pid), status_field(pid, "Cpus_allowed_list").value_or("?")};
}

// Inodes of the pipes the image marks external.
std::set<uint64_t> external_pipes(const json& index)
{
	std::set<uint64_t> out;
	for (auto& f : index.at("files"))
		if (f.value("external", false) && f.contains("pipe"))
			out.insert(f.at("pipe").get<uint64_t>());
	return out;
}

void expect_same_proc(pid_t pid, const ProcSnapshot& before, const fs::path& scratch,
		      std::map<uint64_t, uint64_t>& pipes, const std::set<uint64_t>& external)
{
	SCOPED_TRACE("restored pid " + std::to_string(pid));
	EXPECT_EQ(thread_comms(pid), before.comms) << "thread names (comm) by TID";
	EXPECT_EQ(status_field(pid, "Cpus_allowed_list").value_or("?"), before.cpus) << "CPU affinity";
	expect_same_fds(before.fds, read_fds(pid), scratch, pipes, external);
}

void expect_same_proc(pid_t pid, const ProcSnapshot& before, const fs::path& scratch, const json& index)
{
	std::map<uint64_t, uint64_t> pipes;
	expect_same_proc(pid, before, scratch, pipes, external_pipes(index));
}

// --- 1. memory and a counter that continues --------------------------------------------------------------------------

TEST(Restore, CounterAndMemory)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("counter_mem", {"--mem-mib", "256"})) << wl.error();
	const json ready = wl.ready();
	pid_t pid = wl.pid();
	uint64_t counter_addr = ready.at("counter_addr").get<uint64_t>();
	std::this_thread::sleep_for(200ms);
	auto c1 = peek_u64(pid, counter_addr);
	ASSERT_TRUE(c1) << "cannot read the counter of " << pid;
	ASSERT_GT(*c1, 0u);
	auto snap = snapshot(pid);

	fs::path img = tmp / "img";
	ASSERT_TRUE(dump_ok(pid, img));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	auto tids = image_tids(*index);
	EXPECT_EQ(as_set(tids), as_set(ready.at("tids")));
	auto c_img = image_u64(img, *find_process(*index, pid), counter_addr);
	ASSERT_TRUE(c_img) << "the counter's page is not in the image";
	EXPECT_GE(*c_img, *c1);
	reap_dumped(wl, tids);

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, img, *index));
	EXPECT_EQ(as_set(thread_ids(pid)), as_set(tids)) << "threads and their TIDs";
	EXPECT_TRUE(running_untraced(pid));
	auto maps = read_maps(pid);
	bool mem_mapped = std::any_of(maps.begin(), maps.end(), [&](const MapsEntry& m) {
		return m.start <= ready.at("mem_addr").get<uint64_t>() &&
		       m.end >= ready.at("mem_addr").get<uint64_t>() + ready.at("mem_size").get<uint64_t>() &&
		       m.perms == "rw-p" && m.path.empty();
	});
	EXPECT_TRUE(mem_mapped) << "the 256 MiB region is not private anonymous rw memory at its old address";
	expect_same_proc(pid, snap, tmp.path(), *index);

	auto c2 = restored_count(rr, tree, pid);
	ASSERT_TRUE(c2) << "no COUNT from the restored process; its output: " << rr.out.seen();
	EXPECT_GE(*c2, *c_img) << "the counter went back: it did not continue from the dumped value";
	std::this_thread::sleep_for(300ms);
	auto c3 = restored_count(rr, tree, pid);
	ASSERT_TRUE(c3);
	EXPECT_GT(*c3, *c2) << "the restored counter does not advance";
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// --- 2. threads, their TIDs, a mutex between them ------------------------------------------------------------------

TEST(Restore, FourThreadsSharedMutex)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("threads4")) << wl.error();
	const json ready = wl.ready();
	pid_t pid = wl.pid();
	ASSERT_EQ(ready.at("tids").size(), 5u);
	std::this_thread::sleep_for(300ms);
	auto snap = snapshot(pid);

	fs::path img = tmp / "img";
	ASSERT_TRUE(dump_ok(pid, img));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	auto tids = image_tids(*index);
	EXPECT_EQ(as_set(tids), as_set(ready.at("tids")));
	reap_dumped(wl, tids);

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, img, *index));
	EXPECT_EQ(as_set(thread_ids(pid)), as_set(ready.at("tids"))) << "threads and their TIDs";
	EXPECT_TRUE(running_untraced(pid));
	expect_same_proc(pid, snap, tmp.path(), *index);
	// Let them run (and contend) a while after the restore before they check themselves.
	std::this_thread::sleep_for(500ms);
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// --- 3. a tree: sessions, groups, pipes with bytes in flight, files at offsets, a shared file -----------------------

struct Ids {
	pid_t ppid = -1, pgid = -1, sid = -1;
	bool operator==(const Ids&) const = default;
};

std::ostream& operator<<(std::ostream& o, const Ids& i)
{
	return o << "ppid " << i.ppid << " pgid " << i.pgid << " sid " << i.sid;
}

Ids ids_of(pid_t pid)
{
	Ids i;
	auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
	if (!stat)
		return i;
	auto paren = stat->rfind(')');
	std::istringstream in(stat->substr(paren + 2));
	std::string state;
	in >> state >> i.ppid >> i.pgid >> i.sid;
	return i;
}

TEST(Restore, TreeWithPipesFilesSession)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	fs::create_directories(tmp / "data");
	Workload wl;
	ASSERT_TRUE(wl.start("tree", {"--dir", (tmp / "data").string()})) << wl.error();
	const json ready = wl.ready();
	pid_t root = wl.pid();
	std::vector<pid_t> pids;
	for (auto& p : ready.at("pids"))
		pids.push_back(p.get<pid_t>());
	std::map<pid_t, Ids> before;
	std::map<pid_t, ProcSnapshot> snaps;
	for (pid_t p : pids)
		before[p] = ids_of(p), snaps[p] = snapshot(p);
	EXPECT_EQ(before[ready.at("a").get<pid_t>()].sid, ready.at("a").get<pid_t>()) << "A leads a session";
	auto maps_before = read_maps(ready.at("g").get<pid_t>());

	fs::path img = tmp / "img";
	ASSERT_TRUE(dump_ok(root, img));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	EXPECT_EQ(as_set(image_pids(*index)), as_set(pids));
	for (auto& p : index->at("processes")) {
		pid_t pid = p.at("pid").get<pid_t>();
		EXPECT_EQ(p.at("sid").get<pid_t>(), before[pid].sid) << "pid " << pid;
		EXPECT_EQ(p.at("pgid").get<pid_t>(), before[pid].pgid) << "pid " << pid;
	}
	reap_dumped(wl, image_tids(*index));

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, img, *index));
	for (pid_t p : pids) {
		SCOPED_TRACE("pid " + std::to_string(p));
		EXPECT_TRUE(running_untraced(p));
		EXPECT_EQ(ids_of(p), before[p]) << "parent, process group or session differs from before the dump";
	}
	std::map<uint64_t, uint64_t> pipes;  // across the tree: who shares which pipe
	for (pid_t p : pids)
		expect_same_proc(p, snaps[p], tmp.path(), pipes, external_pipes(*index));
	// Pipes: the bytes in flight and the 128 KiB capacity, as the kernel shows them from outside.
	auto a_fds = read_fds(ready.at("a").get<pid_t>());
	size_t pipes_128k = 0;
	for (auto& [n, e] : a_fds) {
		if (!S_ISFIFO(e.mode))
			continue;
		int fd = open(("/proc/" + std::to_string(ready.at("a").get<pid_t>()) + "/fd/" + std::to_string(n)).c_str(),
			      O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			pipes_128k += fcntl(fd, F_GETPIPE_SZ) == 128 * 1024;
			close(fd);
		}
	}
	EXPECT_EQ(pipes_128k, 1u) << "A's read end of p2 should be the one pipe of 128 KiB";
	EXPECT_EQ(read_maps(ready.at("g").get<pid_t>()).size(), maps_before.size()) << "G's memory map";
	EXPECT_EQ(verify_restored(rr, tree, root), "PASS");
	EXPECT_TRUE(all_gone(pids, 10s)) << "the tree did not exit after its verdict";
}

// --- 4. vector, mask, x87 and callee-saved registers ---------------------------------------------------------------

// The byte avx.c puts at byte j of vector register r, and its k registers.
unsigned char avx_pattern(int r, int j)
{
	return (unsigned char)((r * 64 + j) * 37 + 11 + r);
}

uint64_t avx_k_pattern(int k)
{
	return 0x0123456789abcdefULL ^ (0x1111111111111111ULL * uint64_t(k + 1)) ^ (uint64_t(k) << 60);
}

// The saved XSAVE area (standard format, as PTRACE_GETREGSET NT_X86_XSTATE gives it) holds avx.c's patterns: the
// dump half of the round trip, checked on its own. Offsets of the components come from CPUID leaf 0xD.
void expect_xstate_patterns(const fs::path& img, const json& thread, bool avx512)
{
	const json& ref = thread.at("regs").at("xstate");
	auto blob = read_file(img / ref.at("blob").get<std::string>());
	ASSERT_TRUE(blob);
	uint64_t off = ref.at("offset").get<uint64_t>(), size = ref.at("size").get<uint64_t>();
	ASSERT_LE(off + size, blob->size());
	const unsigned char* x = reinterpret_cast<const unsigned char*>(blob->data()) + off;
	auto component = [&](unsigned i) {
		unsigned a, b, c, d;
		asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(i));
		return std::pair<uint64_t, uint64_t>(b, a);  // offset, size
	};
	uint64_t xstate_bv;
	memcpy(&xstate_bv, x + 512, 8);
	std::string bad;
	auto expect_bytes = [&](const char* what, uint64_t at, int reg, int from, int n) {
		if (at + uint64_t(n) > size) {
			bad += std::string(what) + " is past the saved area; ";
			return;
		}
		for (int j = 0; j < n; j++)
			if (x[at + j] != avx_pattern(reg, from + j)) {
				bad += std::string(what) + std::to_string(reg) + " byte " + std::to_string(from + j) + "; ";
				return;
			}
	};
	for (int r = 0; r < 16; r++)
		expect_bytes("xmm", 160 + 16 * r, r, 0, 16);
	EXPECT_TRUE(xstate_bv & 4) << "XSTATE_BV " << std::hex << xstate_bv << ": no AVX state";
	auto [ymm_off, ymm_size] = component(2);
	for (int r = 0; r < 16; r++)
		expect_bytes("ymm_hi128 of ymm", ymm_off + 16 * r, r, 16, 16);
	if (avx512) {
		EXPECT_EQ(xstate_bv & 0xe0, 0xe0u) << "XSTATE_BV " << std::hex << xstate_bv << ": AVX-512 state missing";
		auto [k_off, k_size] = component(5);
		auto [zhi_off, zhi_size] = component(6);
		auto [z16_off, z16_size] = component(7);
		for (int r = 0; r < 16; r++)
			expect_bytes("zmm_hi256 of zmm", zhi_off + 32 * r, r, 32, 32);
		for (int r = 16; r < 32; r++)
			expect_bytes("zmm", z16_off + 64 * (r - 16), r, 0, 64);
		for (int k = 0; k < 8; k++) {
			uint64_t v;
			memcpy(&v, x + k_off + 8 * k, 8);
			if (v != avx_k_pattern(k))
				bad += "k" + std::to_string(k) + "; ";
		}
	}
	uint32_t mxcsr;
	memcpy(&mxcsr, x + 24, 4);
	EXPECT_EQ(mxcsr, 0x5f80u) << "MXCSR in the saved FXSAVE area";
	EXPECT_TRUE(bad.empty()) << "the image's xstate does not hold the workload's patterns: " << bad;
}

TEST(Restore, AvxRegisters)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("avx")) << wl.error();
	const json ready = wl.ready();
	if (ready.at("mode") == "none")
		SKIP_OR_FAIL("this CPU has no AVX: nothing to check");
	std::cerr << "[ NOTE     ] avx workload mode " << ready.at("mode") << "\n";
	pid_t pid = wl.pid();
	std::this_thread::sleep_for(200ms);  // READY is written from inside the spin loop's asm; let it spin
	auto snap = snapshot(pid);

	fs::path img = tmp / "img";
	ASSERT_TRUE(dump_ok(pid, img));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	reap_dumped(wl, image_tids(*index));
	{
		// Caught in the spin loop (in the executable, not in libc or the kernel), registers as loaded.
		const json& thread = find_process(*index, pid)->at("threads").at(0);
		uint64_t rip = thread.at("regs").at("gpr").at("rip").get<uint64_t>();
		bool in_exe = false;
		for (auto& v : find_process(*index, pid)->at("vmas"))
			in_exe |= v.at("path") == workload_path("avx") && v.at("start").get<uint64_t>() <= rip &&
				  rip < v.at("end").get<uint64_t>() && (v.at("prot").get<int>() & 4);
		EXPECT_TRUE(in_exe) << "rip " << std::hex << rip << " is not in avx's code: not dumped while spinning";
		EXPECT_EQ(thread.at("regs").at("gpr").at("r12").get<uint64_t>(), 0xfeedface00000000ULL | (0xc0de0000u + 0x1357u));
		expect_xstate_patterns(img, thread, ready.at("mode") == "avx512");
	}

	RestoreRun rr;
	Restored tree;
	ASSERT_TRUE(restore_detached(rr, tree, img, *index));
	EXPECT_TRUE(running_untraced(pid));
	expect_same_proc(pid, snap, tmp.path(), *index);
	std::this_thread::sleep_for(100ms);
	EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
}

// --- 5. dump -> restore -> dump -> restore, and the two images agree -----------------------------------------------

// What may legitimately differ between an image of a process and an image of the same process restored and dumped
// again. Each removal says why; everything else (pids, tids, tree, ids, creds, limits, sigactions, masks, rseq,
// vma ranges/prots/flags/paths/inodes, fds, file paths/flags/offsets, blob names) must be equal.
json normalize(json j)
{
	j.erase("created");  // when each dump ran
	j.erase("tool");     // same binary, but not what this test is about
	j.erase("id");       // every dump names its image afresh
	j.erase("chain");    // show's view of the image's own place (its directory, its id)
	for (auto& p : j.at("processes")) {
		p.erase("start_time");  // a restored process is a new task, started at restore
		p.erase("mm_key");      // and a new address space
	}
	for (auto& b : j.at("blobs")) {
		// Page blobs hold the counter and the stack that keep changing; thread blobs hold registers.
		b.erase("size");
		b.erase("xxh3");
	}
	// Files are compared through the fds that use them, with who shares each: external files (the other end
	// outside the tree: the test's stdout pipe and whatever else the test left open) are all connected to the
	// restore's stdout by design, so after a restore they are one open file where there were several: for them
	// only the kind and access mode remain. Every pipe is a new pipe object after a restore: no inode, times, or
	// pipe:[ino] names.
	std::map<uint64_t, json> files;
	for (auto& f : j.at("files")) {
		json n = f;
		n.erase("id");
		if (f.value("external", false)) {
			n = {{"external", true},
			     {"kind", f.at("kind")},
			     {"accmode", f.at("flags").get<uint32_t>() & O_ACCMODE}};
		} else if (f.at("kind") == "pipe") {
			for (auto* k : {"ino", "path", "pipe", "external_key", "mtime_sec", "mtime_nsec", "dev"})
				n.erase(k);
		}
		files[f.at("id").get<uint64_t>()] = n;
	}
	j.erase("files");
	std::map<uint64_t, std::string> first_user;
	for (auto& p : j.at("processes"))
		for (auto& fd : p.at("fds")) {
			uint64_t id = fd.at("file").get<uint64_t>();
			json f = files.count(id) ? files[id] : json("missing file " + std::to_string(id));
			std::string me = std::to_string(p.at("pid").get<int64_t>()) + ":" + std::to_string(fd.at("fd").get<int64_t>());
			if (!f.value("external", false)) {
				auto [it, fresh] = first_user.emplace(id, me);
				f["shared_with"] = fresh ? "" : it->second;
			}
			fd["file"] = f;
		}
	for (auto& p : j.at("pipes"))
		p.erase("ino");  // new pipe objects; capacity and buffered bytes stay
	for (auto& p : j.at("processes")) {
		for (auto& t : p.at("threads")) {
			// Where the dump caught each thread: counting in a register, or inside nanosleep/sigwaitinfo.
			t.at("regs").erase("gpr");
			t.erase("syscall");
			t.erase("state");
		}
		for (auto& v : p.at("vmas"))
			// Which pages are present is up to the process between the dumps (a stack or malloc page touched
			// after the first dump, or not yet); the offsets in the blob follow from that.
			v.erase("pages");
	}
	return j;
}

// Paths where two JSON values differ (first `limit`).
void diff_json(const json& a, const json& b, const std::string& path, std::vector<std::string>& out,
	       size_t limit = 40)
{
	if (out.size() >= limit)
		return;
	if (a.type() != b.type()) {
		out.push_back(path + ": " + a.dump().substr(0, 200) + " vs " + b.dump().substr(0, 200));
		return;
	}
	if (a.is_object()) {
		std::set<std::string> keys;
		for (auto& [k, v] : a.items())
			keys.insert(k);
		for (auto& [k, v] : b.items())
			keys.insert(k);
		for (auto& k : keys) {
			if (!a.contains(k) || !b.contains(k))
				out.push_back(path + "." + k + ": only in " + (a.contains(k) ? "the first" : "the second"));
			else
				diff_json(a.at(k), b.at(k), path + "." + k, out, limit);
		}
		return;
	}
	if (a.is_array()) {
		bool flat = std::all_of(a.begin(), a.end(), [](const json& e) { return e.is_primitive(); }) &&
			    std::all_of(b.begin(), b.end(), [](const json& e) { return e.is_primitive(); });
		if (flat) {
			if (a != b)
				out.push_back(path + ": " + a.dump().substr(0, 160) + " vs " + b.dump().substr(0, 160));
			return;
		}
		if (a.size() != b.size())
			out.push_back(path + ": " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
				      " elements");
		for (size_t i = 0; i < std::min(a.size(), b.size()); i++)
			diff_json(a[i], b[i], path + "[" + std::to_string(i) + "]", out, limit);
		return;
	}
	if (a != b)
		out.push_back(path + ": " + a.dump().substr(0, 200) + " vs " + b.dump().substr(0, 200));
}

std::optional<json> show_json(const fs::path& img)
{
	RunResult r = run_bpfckpt({"show", img.string(), "--json"});
	EXPECT_EQ(r.exit_code, kExitOk) << r.describe();
	json j = json::parse(r.out, nullptr, false);
	if (j.is_discarded())
		return std::nullopt;
	return j;
}

TEST(Restore, DumpRestoreDumpRestore)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("counter_mem", {"--mem-mib", "64"})) << wl.error();
	const json ready = wl.ready();
	pid_t pid = wl.pid();
	fs::path img1 = tmp / "img1", img2 = tmp / "img2";
	ASSERT_TRUE(dump_ok(pid, img1));
	auto index1 = load_index(img1);
	ASSERT_TRUE(index1);
	auto tids = image_tids(*index1);
	reap_dumped(wl, tids);

	// Round 1: restore detached, let it run, dump it again (killing it).
	{
		RestoreRun rr;
		Restored tree;
		ASSERT_TRUE(restore_detached(rr, tree, img1, *index1));
		auto c = restored_count(rr, tree, pid);
		ASSERT_TRUE(c) << "no COUNT from the first restore; output: " << rr.out.seen();
		std::this_thread::sleep_for(200ms);
		ASSERT_TRUE(dump_ok(pid, img2));
		EXPECT_TRUE(tree.exited(pid, 5s)) << "dump without -R left the restored process running";
		EXPECT_TRUE(all_gone(tids, 10s));
	}
	auto index2 = load_index(img2);
	ASSERT_TRUE(index2);
	EXPECT_TRUE(validates(img2));

	// Round 2: restore without -d: bpfckpt waits for the root and exits with its status (0 after PASS).
	{
		RestoreRun rr;
		Restored tree;
		ASSERT_TRUE(rr.start({"restore", "-D", img2.string()}));
		ASSERT_TRUE(wait_running(pid, workload_path("counter_mem"), as_set(tids), 60s))
		    << "restore -D " << img2 << " (pid " << rr.pid() << ") output: " << rr.out.seen();
		ASSERT_TRUE(tree.adopt({pid}));
		auto c = restored_count(rr, tree, pid);
		ASSERT_TRUE(c) << "no COUNT from the second restore; output: " << rr.out.seen();
		ASSERT_TRUE(tree.signal(pid, SIGUSR1));
		auto verdict = rr.out.line_starting({"PASS", "FAIL"}, 60s);
		EXPECT_EQ(verdict.value_or("no verdict; output: " + rr.out.seen()), "PASS");
		RunResult r = rr.finish(60s);
		EXPECT_EQ(r.exit_code, kExitOk) << "restore without -d exits with the root's status: " << r.describe();
	}

	auto show1 = show_json(img1), show2 = show_json(img2);
	ASSERT_TRUE(show1 && show2) << "bpfckpt show --json printed no JSON";
	std::vector<std::string> diffs;
	diff_json(normalize(*show1), normalize(*show2), "", diffs);
	std::string all;
	for (auto& d : diffs)
		all += "  " + d + "\n";
	EXPECT_TRUE(diffs.empty()) << "the image of the restored process differs from the original's:\n" << all;
}

// --- 6. a saved PID is taken -----------------------------------------------------------------------------------------

// Processes whose executable is `exe`.
std::set<pid_t> running_exe(const std::string& exe)
{
	std::set<pid_t> out;
	for (auto& name : list_dir("/proc")) {
		if (name.empty() || !isdigit(static_cast<unsigned char>(name[0])))
			continue;
		std::error_code ec;
		auto t = fs::read_symlink("/proc/" + name + "/exe", ec);
		if (!ec && t == exe)
			out.insert(pid_t(std::stoi(name)));
	}
	return out;
}

// bpfckpt processes that are our children: restorers a failed restore left behind get reparented to us (the test
// is a subreaper), so any that survive show up here.
std::set<pid_t> stray_bpfckpt()
{
	std::set<pid_t> out;
	for (pid_t p : running_exe(bpfckpt_bin()))
		if (status_field(p, "PPid").value_or("") == std::to_string(getpid()))
			out.insert(p);
	return out;
}

testing::AssertionResult no_stray_bpfckpt()
{
	auto deadline = Clock::now() + 3s;
	for (;;) {
		auto s = stray_bpfckpt();
		for (pid_t p : s) {
			int st;
			waitpid(p, &st, WNOHANG);  // a zombie that is ours: reaped, not counted
		}
		s = stray_bpfckpt();
		if (s.empty())
			return testing::AssertionSuccess();
		if (Clock::now() > deadline) {
			auto r = testing::AssertionFailure() << "bpfckpt processes left behind:";
			for (pid_t p : s)
				r << " " << p << " (" << proc_state(p) << ")";
			return r;
		}
		std::this_thread::sleep_for(10ms);
	}
}

// The processes whose innermost PID (NSpid's last field) is `inner` while their outermost is not.
std::vector<pid_t> find_in_child_pidns(pid_t inner, const std::string& exe)
{
	std::vector<pid_t> out;
	for (pid_t p : running_exe(exe)) {
		auto ns = status_field(p, "NSpid");
		if (!ns)
			continue;
		std::istringstream in(*ns);
		std::vector<pid_t> v;
		pid_t x;
		while (in >> x)
			v.push_back(x);
		if (v.size() > 1 && v.back() == inner)
			out.push_back(p);
	}
	return out;
}

TEST(Restore, PidTaken)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("counter_mem", {"--mem-mib", "16"})) << wl.error();
	pid_t pid = wl.pid();
	std::string exe = workload_path("counter_mem");
	fs::path img = tmp / "img";
	ASSERT_TRUE(dump_ok(pid, img, true));
	auto index = load_index(img);
	ASSERT_TRUE(index);
	auto before = running_exe(exe);
	ASSERT_EQ(before, std::set<pid_t>{pid});

	{
		RestoreRun rr;
		ASSERT_TRUE(rr.start({"restore", "-D", img.string(), "-d"}));
		RunResult r = rr.finish();
		EXPECT_EQ(r.exit_code, kExitTargetBusy) << r.describe();
		EXPECT_EQ(count_lines(r.err), 1u) << r.err;
		EXPECT_NE(r.err.find(std::to_string(pid)), std::string::npos) << "stderr does not name " << pid << ":\n"
									       << r.err;
		EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
	}
	std::this_thread::sleep_for(100ms);
	EXPECT_EQ(running_exe(exe), before) << "a refused restore left a process behind";
	EXPECT_TRUE(no_stray_bpfckpt());
	EXPECT_TRUE(running_untraced(pid));

	// --pidns restores under a new PID namespace, where the saved PIDs are free.
	{
		RestoreRun rr;
		ASSERT_TRUE(rr.start({"restore", "-D", img.string(), "-d", "--pidns"}));
		RunResult r = rr.finish();
		ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
		auto inside = find_in_child_pidns(pid, exe);
		ASSERT_EQ(inside.size(), 1u) << "no (or several) restored copies of pid " << pid
					     << " in a child PID namespace";
		Restored ns;
		ns.adopt(inside);
		pid_t init = ids_of(inside.front()).ppid;  // the namespace's init: the restored root's parent
		ASSERT_GT(init, 1);
		ns.adopt({init});
		// The init keeps nothing of restore's: stdio on /dev/null, no control pipes, no restored pipe ends.
		for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(init) + "/fd")) {
			int fd = std::stoi(e.path().filename().string());
			EXPECT_LT(fd, 3) << "the --pidns init holds fd " << fd << " -> " << fs::read_symlink(e.path());
			EXPECT_EQ(fs::read_symlink(e.path()), "/dev/null") << "fd " << fd;
		}
		EXPECT_EQ(verify_restored(rr, ns, inside.front()), "PASS");
	}
	EXPECT_TRUE(running_untraced(pid));
	EXPECT_EQ(wl.verify(), "PASS") << "the original must be untouched";
}

// --- 7. bad images are refused before anything is created; a failed restore leaves nothing ----------------------

void copy_image(const fs::path& from, const fs::path& to)
{
	fs::create_directories(to);
	for (auto& e : fs::directory_iterator(from))
		fs::copy_file(e.path(), to / e.path().filename());
}

void write_json(const fs::path& p, const json& j)
{
	std::ofstream(p, std::ios::trunc) << j.dump();
}

// Kills whatever holds one of `pids` and runs bpfckpt or a workload (what a restore that should not have happened
// created), then reaps it.
void kill_leftovers(const std::vector<pid_t>& pids)
{
	Restored left;
	for (pid_t p : pids) {
		std::error_code ec;
		auto exe = fs::read_symlink("/proc/" + std::to_string(p) + "/exe", ec).string();
		if (!ec && (exe == bpfckpt_bin() || exe.rfind(workload_path(""), 0) == 0 ||
			    exe.find("/bpfckpt-test-") != std::string::npos))  // copied into a TempDir
			left.adopt({p});
	}
}

// One corrupted copy of `good`: restore must exit 8 with one line naming the problem, and create nothing.
void expect_bad_image(const std::string& what, const fs::path& good, const fs::path& bad,
		      const std::function<void(json&, const fs::path&)>& corrupt, const std::vector<pid_t>& pids,
		      const std::string& stderr_mentions = "")
{
	SCOPED_TRACE(what);
	copy_image(good, bad);
	auto index = load_index(bad);
	ASSERT_TRUE(index);
	corrupt(*index, bad);
	RestoreRun rr;
	ASSERT_TRUE(rr.start({"restore", "-D", bad.string(), "-d"}));
	RunResult r = rr.finish(60s);
	EXPECT_EQ(r.exit_code, kExitBadImage) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	if (!stderr_mentions.empty()) {
		EXPECT_NE(r.err.find(stderr_mentions), std::string::npos) << "stderr does not mention " << stderr_mentions
									  << ":\n" << r.err;
	}
	// Refused before anything is created: none of the saved PIDs exists, at once (no grace time to die).
	for (pid_t p : pids)
		EXPECT_FALSE(exists(p)) << "pid " << p << " exists after a refused restore (" << proc_state(p) << ")";
	EXPECT_TRUE(all_gone(pids, 2s));
	EXPECT_TRUE(no_stray_bpfckpt());
	kill_leftovers(pids);
	std::cerr << "[ NOTE     ] " << what << ": exit " << r.exit_code << ": " << trim_nl(r.err) << "\n";
}

TEST(Restore, BadImages)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	fs::path bin = tmp / "bin" / "counter_mem";
	fs::create_directories(bin.parent_path());
	fs::copy_file(workload_path("counter_mem"), bin);
	Workload wl;
	ASSERT_TRUE(wl.start(name_for(bin), {"--mem-mib", "16"})) << wl.error();
	pid_t pid = wl.pid();
	fs::path good = tmp / "good";
	ASSERT_TRUE(dump_ok(pid, good));
	auto index = load_index(good);
	ASSERT_TRUE(index);
	auto tids = image_tids(*index);
	reap_dumped(wl, tids);
	const json& proc = index->at("processes").at(0);
	std::string pages_blob = proc.at("pages_blob").get<std::string>();
	ASSERT_FALSE(pages_blob.empty());
	uint64_t pages_size = fs::file_size(good / pages_blob);
	int n = 0;
	auto next = [&] { return tmp / ("bad" + std::to_string(n++)); };

	expect_bad_image("truncated index.json", good, next(), [](json&, const fs::path& d) {
		auto text = read_file(d / "index.json").value_or("");
		std::ofstream(d / "index.json", std::ios::trunc) << text.substr(0, text.size() / 2);
	}, tids);

	expect_bad_image("overlapping vmas", good, next(), [](json& j, const fs::path& d) {
		auto& vmas = j["processes"][0]["vmas"];
		// Stretch the first vma one page into the second.
		vmas[0]["end"] = vmas[1]["start"].get<uint64_t>() + 4096;
		write_json(d / "index.json", j);
	}, tids, "overlap");

	expect_bad_image("page run past the end of its blob", good, next(), [&](json& j, const fs::path& d) {
		for (auto& v : j["processes"][0]["vmas"])
			if (!v["pages"].empty()) {
				v["pages"][0]["blob_offset"] = (pages_size + 16 * 4096) / 4096 * 4096;
				break;
			}
		write_json(d / "index.json", j);
	}, tids);

	// Names that resolve to the real blob: only the name check can refuse them.
	auto rename_blob = [&](const std::string& to) {
		return [to, pages_blob](json& j, const fs::path& d) {
			j["processes"][0]["pages_blob"] = to;
			for (auto& b : j["blobs"])
				if (b["name"] == pages_blob)
					b["name"] = to;
			write_json(d / "index.json", j);
		};
	};
	expect_bad_image("blob name with '/'", good, next(), rename_blob("./" + pages_blob), tids);
	{
		fs::path d = next();
		expect_bad_image("blob name with '..'", good, d, rename_blob("../" + d.filename().string() + "/" + pages_blob),
				 tids);
	}
	expect_bad_image("blob name '..'", good, next(), rename_blob(".."), tids);

	expect_bad_image("checksum mismatch (one byte of the page blob flipped)", good, next(),
			 [&](json&, const fs::path& d) {
				 int fd = open((d / pages_blob).c_str(), O_RDWR | O_CLOEXEC);
				 ASSERT_GE(fd, 0);
				 unsigned char c = 0;
				 off_t at = off_t(pages_size / 2 + 123);
				 ASSERT_EQ(pread(fd, &c, 1, at), 1);
				 c ^= 0x40;
				 ASSERT_EQ(pwrite(fd, &c, 1, at), 1);
				 close(fd);
			 },
			 tids, pages_blob);

	expect_bad_image("absurd page count (npages * 4096 overflows 64 bits)", good, next(), [](json& j, const fs::path& d) {
		for (auto& v : j["processes"][0]["vmas"])
			if (!v["pages"].empty()) {
				v["pages"][0]["npages"] = uint64_t(1) << 52;
				break;
			}
		write_json(d / "index.json", j);
	}, tids);

	expect_bad_image("absurd vma count", good, next(), [](json& j, const fs::path& d) {
		auto& vmas = j["processes"][0]["vmas"];
		json v = vmas[0];
		v["pages"] = json::array();
		json many = json::array();
		uint64_t start = 0x10000;
		for (int i = 0; i < 100001; i++, start += 0x2000) {
			v["start"] = start;
			v["end"] = start + 0x1000;
			many.push_back(v);
		}
		vmas = many;
		write_json(d / "index.json", j);
	}, tids);

	expect_bad_image("absurd blob size in blobs[]", good, next(), [&](json& j, const fs::path& d) {
		for (auto& b : j["blobs"])
			if (b["name"] == pages_blob)
				b["size"] = uint64_t(1) << 62;
		write_json(d / "index.json", j);
	}, tids);

	// A mapped file (the executable) changed since the dump: the restore fails, clearly, and whatever it had
	// created is gone.
	{
		SCOPED_TRACE("executable changed since the dump");
		fs::path d = next();
		copy_image(good, d);
		std::ofstream(bin, std::ios::app | std::ios::binary) << '\0';
		RestoreRun rr;
		ASSERT_TRUE(rr.start({"restore", "-D", d.string(), "-d"}));
		RunResult r = rr.finish(60s);
		EXPECT_NE(r.exit_code, kExitOk) << r.describe();
		EXPECT_NE(r.exit_code, kExitTargetBusy) << r.describe();
		EXPECT_EQ(count_lines(r.err), 1u) << r.err;
		EXPECT_NE(r.err.find(bin.string()), std::string::npos) << "stderr does not name " << bin << ":\n" << r.err;
		EXPECT_NE(r.err.find("changed"), std::string::npos) << r.err;
		EXPECT_TRUE(all_gone(tids, 3s)) << "a failed restore left processes behind";
		EXPECT_TRUE(running_exe(bin.string()).empty());
		EXPECT_TRUE(no_stray_bpfckpt());
		std::cerr << "[ NOTE     ] changed executable: exit " << r.exit_code << ": " << trim_nl(r.err) << "\n";
		// Restore the binary to the same bytes: size matches again but mtime differs, still refused.
		fs::resize_file(bin, fs::file_size(bin) - 1);
	}

	// The pristine image still restores (so the PIDs were free for every refusal above, and the checks meant
	// something) — with a copy of the binary whose mtime is back as dumped.
	{
		SCOPED_TRACE("pristine image after all the refusals");
		const json& exe_vma = [&]() -> const json& {
			for (auto& v : proc.at("vmas"))
				if (v.at("path") == bin.string())
					return v;
			return proc.at("vmas").at(0);
		}();
		timespec times[2] = {{0, UTIME_OMIT},
				     {exe_vma.at("mtime_sec").get<time_t>(), exe_vma.at("mtime_nsec").get<long>()}};
		ASSERT_EQ(utimensat(AT_FDCWD, bin.c_str(), times, 0), 0);
		RestoreRun rr;
		Restored tree;
		ASSERT_TRUE(restore_detached(rr, tree, good, *index));
		EXPECT_EQ(verify_restored(rr, tree, pid), "PASS");
	}

	// A tree's image, for what needs several processes: the parent links must form one tree under the root.
	fs::create_directories(tmp / "data");
	Workload twl;
	ASSERT_TRUE(twl.start("tree", {"--dir", (tmp / "data").string()})) << twl.error();
	fs::path tgood = tmp / "tree-good";
	ASSERT_TRUE(dump_ok(twl.pid(), tgood));
	auto tindex = load_index(tgood);
	ASSERT_TRUE(tindex);
	auto ttids = image_tids(*tindex);
	reap_dumped(twl, ttids);
	const json& tready = twl.ready();
	auto index_of = [&](pid_t pid) {
		for (size_t i = 0; i < tindex->at("processes").size(); i++)
			if (tindex->at("processes")[i].at("pid").get<pid_t>() == pid)
				return i;
		ADD_FAILURE() << "pid " << pid << " is not in the tree's image";
		return size_t(0);
	};
	size_t ia = index_of(tready.at("a")), ib = index_of(tready.at("b")), ig = index_of(tready.at("g"));

	expect_bad_image("parent cycle (A and B each other's parent)", tgood, next(), [&](json& j, const fs::path& d) {
		j["processes"][ia]["ppid"] = j["processes"][ib]["pid"];
		j["processes"][ib]["ppid"] = j["processes"][ia]["pid"];
		write_json(d / "index.json", j);
	}, ttids);

	expect_bad_image("parent outside the image (G's ppid 12345)", tgood, next(), [&](json& j, const fs::path& d) {
		j["processes"][ig]["ppid"] = 12345;
		write_json(d / "index.json", j);
	}, ttids);

	expect_bad_image("xstate too small for the saved features", tgood, next(), [&](json& j, const fs::path& d) {
		j["processes"][0]["threads"][0]["regs"]["xstate"]["size"] = 8;
		write_json(d / "index.json", j);
	}, ttids);
}

}  // namespace
}  // namespace e2e
