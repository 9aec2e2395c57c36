// Acceptance tests for `bpfckpt dump` (issue #2): what the image holds against what /proc and the workloads say, and
// that every bad input fails with its own exit code, one line on stderr, no image, and the target untouched.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include <xxhash.h>

#include "harness.h"
#include "support/page_cache.h"

namespace e2e {
namespace {

// Exit codes of bpfckpt (src/common/exit_codes.h).
constexpr int kExitOk = 0, kExitNoTarget = 3, kExitPermission = 4, kExitTargetBusy = 5, kExitUnsupported = 6,
	      kExitIo = 7;

constexpr uint64_t kPage = 4096;

std::string hex(uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llx", (unsigned long long)v);
	return buf;
}

const json* find_process(const json& index, pid_t pid)
{
	for (auto& p : index.at("processes"))
		if (p.at("pid").get<int64_t>() == pid)
			return &p;
	return nullptr;
}

const json* find_by(const json& array, const char* key, uint64_t value)
{
	for (auto& e : array)
		if (e.contains(key) && e.at(key).get<uint64_t>() == value)
			return &e;
	return nullptr;
}

// --- checks of one image against the live system ------------------------------------------------------------------

uint32_t prot_of(const std::string& perms)
{
	return (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
	       (perms[2] == 'x' ? PROT_EXEC : 0);
}

// vmas[] against /proc/PID/maps, line by line. iter/task_vma does not list [vsyscall], so neither does the image.
void expect_vmas_match(const json& proc, const std::vector<MapsEntry>& maps)
{
	std::map<uint64_t, const json*> by_start;
	for (auto& v : proc.at("vmas"))
		by_start[v.at("start").get<uint64_t>()] = &v;
	size_t compared = 0;
	for (auto& m : maps) {
		if (m.path == "[vsyscall]")
			continue;
		compared++;
		std::string where = hex(m.start) + "-" + hex(m.end) + " " + m.perms + " " + m.path;
		auto it = by_start.find(m.start);
		if (it == by_start.end()) {
			ADD_FAILURE() << "vma " << where << " of /proc/PID/maps is not in the image";
			continue;
		}
		const json& v = *it->second;
		EXPECT_EQ(v.at("end").get<uint64_t>(), m.end) << where;
		EXPECT_EQ(v.at("prot").get<uint32_t>(), prot_of(m.perms)) << where;
		EXPECT_EQ(v.at("shared").get<bool>(), m.perms[3] == 's') << where;
		EXPECT_EQ(v.at("offset").get<uint64_t>(), m.offset) << where;
		EXPECT_EQ(v.at("path").get<std::string>(), m.path) << where;
	}
	EXPECT_EQ(proc.at("vmas").size(), compared) << "the image holds vmas /proc/PID/maps does not";
}

std::string kind_of_mode(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular";
	case S_IFDIR: return "directory";
	case S_IFIFO: return "pipe";
	case S_IFCHR: return "chardev";
	case S_IFSOCK: return "socket";
	default: return "";
	}
}

// fds[] and the files[] they point at against /proc/PID/fd and fdinfo.
void expect_fds_match(const json& index, const json& proc, const std::map<int, FdEntry>& fds)
{
	std::set<int> image_fds;
	for (auto& fd : proc.at("fds")) {
		int n = fd.at("fd").get<int>();
		image_fds.insert(n);
		auto live = fds.find(n);
		if (live == fds.end()) {
			ADD_FAILURE() << "fd " << n << " is in the image but not in /proc/PID/fd";
			continue;
		}
		const FdEntry& e = live->second;
		SCOPED_TRACE("fd " + std::to_string(n) + " -> " + e.target);
		const json* file = find_by(index.at("files"), "id", fd.at("file").get<uint64_t>());
		if (!file) {
			ADD_FAILURE() << "fds[].file " << fd.at("file") << " names no files[] entry";
			continue;
		}
		const uint32_t bits = O_ACCMODE | O_APPEND | O_NONBLOCK;
		EXPECT_EQ(file->at("flags").get<uint32_t>() & bits, e.flags & bits)
		    << "flags (octal): image " << std::oct << file->at("flags").get<uint32_t>() << ", fdinfo " << e.flags
		    << std::dec;
		EXPECT_EQ(fd.at("cloexec").get<bool>(), (e.flags & O_CLOEXEC) != 0);
		EXPECT_EQ(file->at("pos").get<uint64_t>(), e.pos);
		std::string kind = kind_of_mode(e.mode);
		if (!kind.empty()) {
			EXPECT_EQ(file->at("kind").get<std::string>(), kind);
		}
		if (kind == "regular") {
			EXPECT_EQ(file->at("path").get<std::string>(), e.target);
		}
		if (kind == "pipe") {
			ASSERT_TRUE(file->contains("pipe")) << "a pipe's files[] entry has no `pipe` inode";
			EXPECT_EQ("pipe:[" + std::to_string(file->at("pipe").get<uint64_t>()) + "]", e.target);
		}
	}
	for (auto& [n, e] : fds)
		EXPECT_TRUE(image_fds.count(n)) << "fd " << n << " -> " << e.target << " is not in the image";
}

// The bytes of [addr, addr+size) as the image holds them (pages in no run are zeros); counts the pages found.
std::vector<unsigned char> image_memory(const fs::path& dir, const json& proc, uint64_t addr, uint64_t size,
					uint64_t* pages_found)
{
	std::vector<unsigned char> mem(size, 0);
	*pages_found = 0;
	int fd = open((dir / proc.at("pages_blob").get<std::string>()).c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ADD_FAILURE() << "cannot open pages_blob " << proc.at("pages_blob");
		return mem;
	}
	for (auto& v : proc.at("vmas")) {
		for (auto& run : v.at("pages")) {
			uint64_t start = run.at("start").get<uint64_t>();
			uint64_t end = start + run.at("npages").get<uint64_t>() * kPage;
			uint64_t lo = std::max(start, addr), hi = std::min(end, addr + size);
			if (lo >= hi)
				continue;
			uint64_t off = run.at("blob_offset").get<uint64_t>() + (lo - start);
			ssize_t n = pread(fd, mem.data() + (lo - addr), hi - lo, off_t(off));
			EXPECT_EQ(n, ssize_t(hi - lo)) << "short read of the page blob at " << off;
			*pages_found += (hi - lo) / kPage;
		}
	}
	close(fd);
	return mem;
}

void expect_memory_saved(const fs::path& dir, const json& proc, uint64_t addr, uint64_t size, const std::string& xxh3)
{
	SCOPED_TRACE("memory " + hex(addr) + "+" + hex(size) + " of pid " + std::to_string(proc.at("pid").get<int>()));
	ASSERT_FALSE(proc.at("pages_blob").get<std::string>().empty()) << "no pages_blob";
	uint64_t found = 0;
	auto mem = image_memory(dir, proc, addr, size, &found);
	EXPECT_EQ(found, size / kPage) << "every page was written, so every page must be in a run";
	EXPECT_EQ(xxh3_hex(mem.data(), mem.size()), xxh3);
}

// The pipe's buffered bytes, found through the read end's fd -> files[] -> pipes[] -> blob.
void expect_pipe_saved(const fs::path& dir, const json& index, const json& proc, const json& ready)
{
	const json* fd = find_by(proc.at("fds"), "fd", ready.at("pipe_rfd").get<uint64_t>());
	ASSERT_TRUE(fd) << "the pipe's read end is not in fds[]";
	const json* file = find_by(index.at("files"), "id", fd->at("file").get<uint64_t>());
	ASSERT_TRUE(file);
	ASSERT_EQ(file->at("kind"), "pipe");
	ASSERT_TRUE(file->contains("pipe"));
	const json* pipe = find_by(index.at("pipes"), "ino", file->at("pipe").get<uint64_t>());
	ASSERT_TRUE(pipe) << "no pipes[] entry with ino " << file->at("pipe");
	const json& data = pipe->at("data");
	ASSERT_EQ(data.at("size").get<uint64_t>(), ready.at("pipe_bytes").get<uint64_t>());
	auto blob = read_file(dir / data.at("blob").get<std::string>());
	ASSERT_TRUE(blob) << "pipe blob " << data.at("blob") << " is missing";
	uint64_t off = data.at("offset").get<uint64_t>(), size = data.at("size").get<uint64_t>();
	ASSERT_LE(off + size, blob->size());
	EXPECT_EQ(xxh3_hex(blob->data() + off, size), ready.at("pipe_xxh3").get<std::string>());
}

// Modes (dir 0700, files 0600), every blob's size and checksum, and the schema.
void expect_image_whole(const fs::path& dir, const json& index)
{
	struct stat st;
	ASSERT_EQ(stat(dir.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0700u) << "image dir mode " << std::oct << (st.st_mode & 07777);
	for (auto& name : list_dir(dir)) {
		ASSERT_EQ(lstat((dir / name).c_str(), &st), 0);
		EXPECT_TRUE(S_ISREG(st.st_mode)) << name << " is not a regular file";
		EXPECT_EQ(st.st_mode & 07777, 0600u) << name << " mode " << std::oct << (st.st_mode & 07777);
	}
	for (auto& b : index.at("blobs")) {
		std::string name = b.at("name").get<std::string>();
		std::error_code ec;
		EXPECT_EQ(fs::file_size(dir / name, ec), b.at("size").get<uint64_t>()) << "blob " << name;
		EXPECT_EQ(xxh3_file(dir / name).value_or("unreadable"), b.at("xxh3").get<std::string>()) << "blob " << name;
	}
	EXPECT_TRUE(validates(dir));
}

void expect_threads(const json& proc, const json& tids)
{
	std::set<int64_t> image, live;
	for (auto& t : proc.at("threads"))
		image.insert(t.at("tid").get<int64_t>());
	for (auto& t : tids)
		live.insert(t.get<int64_t>());
	EXPECT_EQ(image, live);
}

// Processes form one tree rooted at `root`: unique pids, every other process's parent is in the image.
void expect_tree(const json& index, pid_t root)
{
	std::set<int64_t> pids;
	for (auto& p : index.at("processes"))
		EXPECT_TRUE(pids.insert(p.at("pid").get<int64_t>()).second) << "pid " << p.at("pid") << " twice";
	ASSERT_FALSE(index.at("processes").empty());
	EXPECT_EQ(index.at("processes")[0].at("pid").get<int64_t>(), root) << "the root comes first";
	for (auto& p : index.at("processes")) {
		if (p.at("pid").get<int64_t>() == root)
			continue;
		EXPECT_TRUE(pids.count(p.at("ppid").get<int64_t>()))
		    << "pid " << p.at("pid") << " has parent " << p.at("ppid") << ", not in the image";
	}
}

// --- what every refused dump must leave behind ------------------------------------------------------------------

// Exit code, one line on stderr naming `object`, no index.json anywhere under `scratch`.
void expect_refused(const RunResult& r, int code, const std::string& object, const fs::path& scratch)
{
	EXPECT_EQ(r.exit_code, code) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << "stderr must be one line:\n" << r.err;
	EXPECT_NE(r.err.find(object), std::string::npos) << "stderr does not name " << object << ":\n" << r.err;
	EXPECT_TRUE(find_index_files(scratch).empty()) << "a refused dump left an index.json under " << scratch;
}

std::vector<std::string> dump_args(pid_t pid, const fs::path& dir, bool leave_running)
{
	std::vector<std::string> a{"dump", "-t", std::to_string(pid), "-D", dir.string()};
	if (leave_running)
		a.push_back("-R");
	return a;
}

pid_t unused_pid()
{
	int pid_max = 32768;
	std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
	for (pid_t p = pid_t(pid_max - 1); p > 300; p--)
		if (kill(p, 0) < 0 && errno == ESRCH)
			return p;
	return -1;
}

bool wait_for_tracer(pid_t pid, std::chrono::milliseconds timeout)
{
	auto deadline = std::chrono::steady_clock::now() + timeout;
	while (std::chrono::steady_clock::now() < deadline) {
		auto t = status_field(pid, "TracerPid");
		if (t && *t != "0")
			return true;
		std::this_thread::sleep_for(5ms);
	}
	return false;
}

// A dump_state run with its data files in `tmp`/data.
bool start_dump_state(Workload& wl, const TempDir& tmp, int mem_mib)
{
	fs::create_directories(tmp / "data");
	return wl.start("dump_state", {"--mem-mib", std::to_string(mem_mib), "--dir", (tmp / "data").string()});
}

// --- a) and c): what the image holds ---------------------------------------------------------------------------

TEST(Dump, ImageMatchesProcAndWorkload)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 256)) << wl.error();
	const json& ready = wl.ready();
	pid_t pid = wl.pid(), child = ready.at("child_pid").get<pid_t>();

	auto maps = read_maps(pid), child_maps = read_maps(child);
	auto fds = read_fds(pid), child_fds = read_fds(child);
	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(dump_args(pid, img, true));
	ASSERT_EQ(r.exit_code, kExitOk) << r.describe();

	EXPECT_TRUE(running_untraced(pid));
	EXPECT_TRUE(running_untraced(child));
	auto index = load_index(img);
	ASSERT_TRUE(index) << "no parsable index.json in " << img;
	ASSERT_NO_FATAL_FAILURE(expect_image_whole(img, *index));
	EXPECT_EQ(index->at("target").at("pid").get<int>(), pid);
	EXPECT_EQ(index->at("target").at("leave_running").get<bool>(), true);

	const json* proc = find_process(*index, pid);
	const json* cproc = find_process(*index, child);
	ASSERT_TRUE(proc) << "pid " << pid << " is not in processes[]";
	ASSERT_TRUE(cproc) << "child " << child << " is not in processes[]";
	EXPECT_EQ(index->at("processes").size(), 2u);
	EXPECT_EQ(cproc->at("ppid").get<int>(), pid);
	expect_tree(*index, pid);
	{
		SCOPED_TRACE("parent " + std::to_string(pid));
		expect_vmas_match(*proc, maps);
		expect_fds_match(*index, *proc, fds);
		expect_threads(*proc, ready.at("tids"));
		expect_memory_saved(img, *proc, ready.at("mem_addr"), ready.at("mem_size"), ready.at("mem_xxh3"));
		expect_pipe_saved(img, *index, *proc, ready);
	}
	{
		SCOPED_TRACE("child " + std::to_string(child));
		expect_vmas_match(*cproc, child_maps);
		expect_fds_match(*index, *cproc, child_fds);
		expect_threads(*cproc, json::array({child}));
		expect_memory_saved(img, *cproc, ready.at("child_mem_addr"), ready.at("child_mem_size"),
				    ready.at("child_mem_xxh3"));
	}
	// The pipe still holds its bytes, the file its offset, the child its memory: the workload checks.
	EXPECT_EQ(wl.verify(), "PASS");
}

// --- b): without -R the tree is killed after a good dump ----------------------------------------------------------

// The share of a file's pages that sit in the page cache; -1 when it can't be told.
double cached_share(const fs::path& file)
{
	std::vector<bool> cached = test_support::cached_pages(file.string());
	if (cached.empty())
		return -1;
	return double(std::count(cached.begin(), cached.end(), true)) / double(cached.size());
}

TEST(Dump, KillsTreeWithoutLeaveRunning)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 64)) << wl.error();
	const json& ready = wl.ready();
	PidFd child(ready.at("child_pid").get<pid_t>());
	ASSERT_TRUE(child.valid());

	fs::path img = tmp / "img";
	RunResult r = run_bpfckpt(dump_args(wl.pid(), img, false));
	ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
	EXPECT_TRUE(wl.exited(5s)) << "the workload still runs after a dump without -R";
	EXPECT_TRUE(child.exited(5s)) << "the workload's child still runs after a dump without -R";

	// Nobody waits on a thaw before the fsync, so the pages went around the page cache (BlobWriter::set_direct):
	// 64 MiB of them, looked at before anything below reads them back.
	double cached = cached_share(img / ("pages-" + std::to_string(wl.pid()) + ".bin"));
	EXPECT_GE(cached, 0) << "cannot tell which pages of the parent's blob are cached";
	EXPECT_LT(cached, 0.1) << "the parent's pages blob went through the page cache";
	auto index = load_index(img);
	ASSERT_TRUE(index) << "no parsable index.json in " << img;
	ASSERT_NO_FATAL_FAILURE(expect_image_whole(img, *index));
	EXPECT_EQ(index->at("target").at("leave_running").get<bool>(), false);
	const json* proc = find_process(*index, wl.pid());
	const json* cproc = find_process(*index, ready.at("child_pid").get<pid_t>());
	ASSERT_TRUE(proc);
	ASSERT_TRUE(cproc);
	expect_memory_saved(img, *proc, ready.at("mem_addr"), ready.at("mem_size"), ready.at("mem_xxh3"));
	expect_memory_saved(img, *cproc, ready.at("child_mem_addr"), ready.at("child_mem_size"),
			    ready.at("child_mem_xxh3"));
	expect_pipe_saved(img, *index, *proc, ready);
}

// How much of [addr, addr + size) of pid is in huge pages (AnonHugePages of the mappings inside it), in KiB.
long huge_kib(pid_t pid, uint64_t addr, uint64_t size)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
	long kib = 0;
	bool inside = false;
	for (std::string line; std::getline(in, line);) {
		uint64_t s = 0, e = 0;
		if (std::sscanf(line.c_str(), "%lx-%lx ", &s, &e) == 2)  // a mapping's first line
			inside = s >= addr && e <= addr + size;
		else if (inside && line.rfind("AnonHugePages:", 0) == 0)
			kib += std::strtol(line.c_str() + 14, nullptr, 10);
	}
	return kib;
}

// A -R dump copies after the thaw and lifts the write-protection chunk by chunk. Chunks end on the blob's 2 MiB
// boundaries, which are not the mapping's (the big mapping's pages come after a few small ones in the blob); lifting
// it from part of a huge page would split that page into 4 KiB ones for good, and the target would run on, and be
// frozen the next time, with 4 KiB pages. Its huge pages must come through the dump as they were.
TEST(Dump, LeaveRunningKeepsTheTargetsHugePages)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("counter_mem", {"--mem-mib", "64", "--thp"})) << wl.error();
	uint64_t addr = wl.ready().at("mem_addr"), size = wl.ready().at("mem_size");
	long before = huge_kib(wl.pid(), addr, size);
	if (before == 0)
		SKIP_OR_FAIL("the workload got no huge pages (transparent_hugepage off?)");
	EXPECT_GE(before, 60 << 10) << "most of the 64 MiB should be huge pages";
	for (int i = 0; i < 2; i++) {
		fs::path img = tmp / ("img" + std::to_string(i));
		RunResult r = run_bpfckpt(dump_args(wl.pid(), img, true));
		ASSERT_EQ(r.exit_code, kExitOk) << r.describe();
		auto index = load_index(img);
		ASSERT_TRUE(index);
		const json* proc = find_process(*index, wl.pid());
		ASSERT_TRUE(proc);
		expect_memory_saved(img, *proc, wl.ready().at("mem_addr"), wl.ready().at("mem_size"),
				    wl.ready().at("mem_xxh3"));
		EXPECT_EQ(huge_kib(wl.pid(), addr, size), before) << "dump " << i + 1 << " split huge pages of the target";
	}
	EXPECT_EQ(wl.verify(), "PASS");
}

// --- d): targets that may not be dumped ----------------------------------------------------------------------------

TEST(DumpRefuses, NonexistentPid)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	pid_t pid = unused_pid();
	ASSERT_GT(pid, 0);
	RunResult r = run_bpfckpt(dump_args(pid, tmp / "img", true));
	expect_refused(r, kExitNoTarget, std::to_string(pid), tmp.path());
}

TEST(DumpRefuses, Init)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	RunResult r = run_bpfckpt(dump_args(1, tmp / "img", false));
	expect_refused(r, kExitNoTarget, "1", tmp.path());
	EXPECT_TRUE(running_untraced(1));
}

TEST(DumpRefuses, KernelThread)
{
	REQUIRE_ROOT_OR_SKIP();
	auto comm = read_file("/proc/2/comm");
	if (!comm || comm->rfind("kthreadd", 0) != 0)
		SKIP_OR_FAIL("pid 2 is not kthreadd here");
	TempDir tmp;
	RunResult r = run_bpfckpt(dump_args(2, tmp / "img", false));
	expect_refused(r, kExitNoTarget, "2", tmp.path());
	EXPECT_TRUE(running_untraced(2));
}

TEST(DumpRefuses, Itself)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	// The shell execs bpfckpt in place, so $$ is bpfckpt's own pid.
	Command c;
	ASSERT_TRUE(c.start({"/bin/sh", "-c", "exec \"$0\" dump -t $$ -D \"$1\"", bpfckpt_bin(), (tmp / "img").string()}));
	pid_t self = c.pid();
	RunResult r = c.finish();
	expect_refused(r, kExitNoTarget, std::to_string(self), tmp.path());
}

TEST(DumpRefuses, TreeContainingItself)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	// The target is the shell; bpfckpt runs as its child, so the tree holds bpfckpt.
	Command c;
	ASSERT_TRUE(c.start({"/bin/sh", "-c", "\"$0\" dump -t $$ -D \"$1\"; echo rc=$?", bpfckpt_bin(),
			     (tmp / "img").string()}));
	pid_t shell = c.pid();
	RunResult r = c.finish();
	EXPECT_EQ(r.exit_code, 0) << r.describe();
	EXPECT_EQ(r.out, "rc=" + std::to_string(kExitNoTarget) + "\n") << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_NE(r.err.find(std::to_string(shell)), std::string::npos) << "stderr does not name " << shell << ":\n"
									<< r.err;
	EXPECT_TRUE(find_index_files(tmp.path()).empty());
	EXPECT_NE(r.term_signal, SIGKILL) << "the shell was killed";
}

// --- e) - i): targets and outputs that must be refused --------------------------------------------------------------

TEST(DumpRefuses, AlreadyTraced)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 16)) << wl.error();
	pid_t pid = wl.pid();
	{
		PtraceSeize seize(pid);
		ASSERT_TRUE(seize.ok()) << "PTRACE_SEIZE " << pid << ": " << strerror(errno);
		RunResult r = run_bpfckpt(dump_args(pid, tmp / "img", false));
		expect_refused(r, kExitTargetBusy, std::to_string(pid), tmp.path());
		EXPECT_EQ(status_field(pid, "TracerPid").value_or("gone"), std::to_string(getpid()))
		    << "bpfckpt took over or dropped our ptrace attachment";
		seize.detach();
	}
	EXPECT_TRUE(running_untraced(pid));
	EXPECT_TRUE(running_untraced(wl.ready().at("child_pid").get<pid_t>()));
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(DumpRefuses, Seccomp)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("seccomp_sleeper")) << wl.error();
	RunResult r = run_bpfckpt(dump_args(wl.pid(), tmp / "img", false));
	expect_refused(r, kExitUnsupported, "seccomp", tmp.path());
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(DumpRefuses, OutputDirNotEmpty)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 16)) << wl.error();
	fs::path img = tmp / "img";
	fs::create_directories(img / "sub");
	std::ofstream(img / "keep.txt") << "precious";
	std::ofstream(img / "sub" / "also.txt") << "also precious";

	RunResult r = run_bpfckpt(dump_args(wl.pid(), img, false));
	expect_refused(r, kExitIo, img.string(), tmp.path());
	EXPECT_EQ(list_dir(img), (std::vector<std::string>{"keep.txt", "sub"}));
	EXPECT_EQ(list_dir(img / "sub"), (std::vector<std::string>{"also.txt"}));
	EXPECT_EQ(read_file(img / "keep.txt").value_or(""), "precious");
	EXPECT_EQ(read_file(img / "sub" / "also.txt").value_or(""), "also precious");
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(DumpRefuses, DiskFull)
{
	REQUIRE_ROOT_OR_SKIP();
	TmpfsMount mnt("size=16m,mode=0755");
	if (!mnt.ok())
		SKIP_OR_FAIL(mnt.error());
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 256)) << wl.error();
	pid_t child = wl.ready().at("child_pid").get<pid_t>();

	RunResult r = run_bpfckpt(dump_args(wl.pid(), mnt.path() / "img", false));
	EXPECT_EQ(r.exit_code, kExitIo) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	bool says_why = r.err.find("No space") != std::string::npos || r.err.find("ENOSPC") != std::string::npos ||
			r.err.find("space") != std::string::npos;
	EXPECT_TRUE(says_why) << "stderr does not say the disk is full:\n" << r.err;
	EXPECT_NE(r.err.find(mnt.path().string()), std::string::npos) << "stderr does not name the image:\n" << r.err;
	EXPECT_EQ(list_dir(mnt.path()), std::vector<std::string>{}) << "leftovers on the full filesystem";
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_TRUE(running_untraced(child));
	EXPECT_EQ(wl.verify(), "PASS");
}

TEST(DumpRefuses, Unprivileged)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	// The scratch dir belongs to nobody, so only the missing privilege can stop the dump.
	ASSERT_EQ(chown(tmp.path().c_str(), 65534, 65534), 0);
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 16)) << wl.error();
	RunResult r = run_bpfckpt(dump_args(wl.pid(), tmp / "img", false), {.uid = 65534});
	EXPECT_EQ(r.exit_code, kExitPermission) << r.describe();
	EXPECT_EQ(count_lines(r.err), 1u) << r.err;
	EXPECT_TRUE(find_index_files(tmp.path()).empty());
	EXPECT_TRUE(running_untraced(wl.pid()));
	EXPECT_EQ(wl.verify(), "PASS");
}

// --- j) - k): the target changes during the dump -------------------------------------------------------------------

TEST(DumpRace, ChildKilledWhileFrozen)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(start_dump_state(wl, tmp, 256)) << wl.error();
	pid_t pid = wl.pid(), child_pid = wl.ready().at("child_pid").get<pid_t>();
	PidFd child(child_pid);
	ASSERT_TRUE(child.valid());

	Command dump;
	RunOptions opt;
	opt.env = {{"BPFCKPT_TEST_STALL_FROZEN_MS", "2000"}};
	ASSERT_TRUE(dump.start({bpfckpt_bin(), "dump", "-t", std::to_string(pid), "-D", (tmp / "img").string(), "-R"},
			       opt));
	// Frozen means seized here; give it a moment to reach the stall, which lasts 2 s.
	if (!wait_for_tracer(child_pid, 1500ms))
		std::cerr << "[ NOTE     ] child never showed a tracer; killing it blind\n";
	std::this_thread::sleep_for(300ms);
	child.kill();
	RunResult r = dump.finish();

	expect_refused(r, kExitTargetBusy, std::to_string(child_pid), tmp.path());
	EXPECT_TRUE(child.exited(1s));
	EXPECT_TRUE(running_untraced(pid));
	// Everything but the child is intact: the workload's checks run in order and stop at the dead child.
	EXPECT_EQ(wl.verify(), "FAIL child killed by a signal");
}

TEST(DumpRace, TargetForksDuringDump)
{
	REQUIRE_ROOT_OR_SKIP();
	TempDir tmp;
	Workload wl;
	ASSERT_TRUE(wl.start("forker")) << wl.error();
	for (int i = 0; i < 3; i++) {
		SCOPED_TRACE("run " + std::to_string(i));
		fs::path img = tmp / ("img" + std::to_string(i));
		RunResult r = run_bpfckpt(dump_args(wl.pid(), img, true));
		std::cerr << "[ NOTE     ] run " << i << ": exit " << r.exit_code << " " << r.err
			  << (r.err.empty() || r.err.back() != '\n' ? "\n" : "");
		if (r.exit_code == kExitOk) {
			auto index = load_index(img);
			ASSERT_TRUE(index) << "no parsable index.json in " << img;
			expect_tree(*index, wl.pid());
			expect_image_whole(img, *index);
		} else {
			EXPECT_EQ(r.exit_code, kExitTargetBusy) << r.describe();
			EXPECT_EQ(count_lines(r.err), 1u) << r.err;
			EXPECT_TRUE(find_index_files(img).empty());
		}
		EXPECT_TRUE(running_untraced(wl.pid()));
	}
	EXPECT_EQ(wl.verify(), "PASS");
}

}  // namespace
}  // namespace e2e
