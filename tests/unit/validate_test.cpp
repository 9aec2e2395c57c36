// The image validator: a small but complete image written with ImageDir loads, and each hostile change to it (in
// index.json or in the blobs beside it) is refused as bad_image with a message that names the object at fault.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/fs.h"
#include "image/image_dir.h"
#include "image/json.h"
#include "image/validate.h"

using namespace bpfckpt;
using namespace bpfckpt::image;

namespace {

constexpr uint64_t kHeap = 0x600000;
constexpr uint64_t kStack = 0x7ffd00000000;
constexpr uint64_t kShm = 0x7f0000000000;

#define EXPECT_MENTIONS(msg, text) EXPECT_NE((msg).find(text), std::string::npos) << "message: " << (msg)

std::string pattern(size_t len, char seed)
{
	std::string s(len, '\0');
	for (size_t i = 0; i < len; i++)
		s[i] = char(seed + i * 7);
	return s;
}

Thread make_thread(uint32_t tid, const BlobWriter& blob)
{
	Thread t;
	t.tid = tid;
	t.comm = "app";
	t.state = "sleeping";
	t.regs.gpr = {{"rip", 0x401000}, {"rsp", kStack + 0x20f00}, {"fs_base", kShm + 0x10000}, {"gs_base", 0},
		      {"orig_rax", uint64_t(-1)}};
	t.regs.fpregs = {blob.name(), blob.offset(), 512};
	t.regs.xstate = {blob.name(), blob.offset() + 512, 2432};
	return t;
}

Process make_process(uint32_t pid, uint32_t ppid)
{
	Process p;
	p.pid = pid;
	p.ppid = ppid;
	p.pgid = 100;
	p.sid = 100;
	p.comm = "app";
	p.state = "alive";
	p.exe = "/usr/bin/app";
	p.cwd = "/";
	p.root = "/";
	p.rlimits = {{"nofile", 1024, 4096}, {"stack", 8 << 20, ~0ull}};
	p.sigactions = {{10, 0x401200, 0x04000000, 0x401300, 0}};
	return p;
}

Vma make_vma(uint64_t start, uint64_t end, const std::string& kind)
{
	Vma v;
	v.start = start;
	v.end = end;
	v.prot = 3;
	v.kind = kind;
	return v;
}

class ValidateTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		std::string tmpl = (std::filesystem::temp_directory_path() / "bpfckpt-validate-XXXXXX").string();
		ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
		base_ = tmpl;
		dir_ = base_ + "/img";
		build();
	}
	void TearDown() override { std::filesystem::remove_all(base_); }

	// Two live processes (one with threads, private pages, shared memory, a pipe and an external socket), one zombie.
	void build()
	{
		auto dir = ImageDir::create(dir_);
		ASSERT_TRUE(dir) << dir.error().describe();
		auto blob = [&](const std::string& name) {
			auto b = (*dir)->open_blob(name);
			EXPECT_TRUE(b) << b.error().describe();
			return std::move(*b);
		};
		auto put = [](BlobWriter& b, size_t len, char seed) { ASSERT_TRUE(b.write(pattern(len, seed).data(), len)); };

		Process leader = make_process(100, 1);
		auto threads = blob("threads-100.bin");
		for (uint32_t tid : {100u, 101u}) {
			leader.threads.push_back(make_thread(tid, *threads));
			put(*threads, 512 + 2432, char(tid));
		}
		auto pages = blob("pages-100.bin");
		put(*pages, 4 * kPageSize, 'p');
		Vma text = make_vma(0x400000, 0x401000, "file");
		text.prot = 5;
		text.path = "/usr/bin/app";
		Vma heap = make_vma(kHeap, kHeap + 0x10000, "heap");
		heap.pages = {{kHeap, 2, 0}, {kHeap + 0x5000, 1, 2 * kPageSize}};
		Vma shm = make_vma(kShm, kShm + 0x4000, "shmem");
		shm.shared = true;
		shm.shmem = 0;
		Vma stack = make_vma(kStack, kStack + 0x21000, "stack");
		stack.pages = {{kStack + 0x20000, 1, 3 * kPageSize}};
		leader.vmas = {text, heap, shm, stack};
		leader.pages_blob = pages->name();
		leader.fds = {{0, false, 0}, {1, false, 1}, {2, false, 2}, {7, true, 3}};

		Process child = make_process(200, 100);
		auto child_threads = blob("threads-200.bin");
		child.threads.push_back(make_thread(200, *child_threads));
		put(*child_threads, 512 + 2432, 'c');
		auto child_pages = blob("pages-200.bin");  // written even when empty, as dump does
		child.vmas = {make_vma(kHeap, kHeap + 0x1000, "anon")};
		child.pages_blob = child_pages->name();
		child.fds = {{0, false, 0}};

		Process zombie = make_process(300, 100);
		zombie.state = "zombie";

		Image& img = img_;
		img.tool_version = "0.1.0";
		img.created = "2025-01-02T03:04:05Z";
		img.host = {"6.1.0", "x86_64", "host", kPageSize, 0x7, 2432, {"avx2"}};
		img.target = {"pid_tree", 100, "", false};
		img.id = "0123456789abcdef0123456789abcdef";
		img.processes = {leader, child, zombie};

		File null{0, "chardev", "/dev/null"};
		File rd{1, "pipe", "pipe:[5000]"};
		rd.pipe = 5000;
		File wr = rd;
		wr.id = 2;
		File sock{3, "socket", "socket:[6000]"};
		sock.external = true;
		sock.external_key = "socket:[6000]";
		img.files = {null, rd, wr, sock};

		auto pipes = blob("pipes.bin");
		img.pipes = {{5000, 65536, {pipes->name(), 0, 11}}};
		ASSERT_TRUE(pipes->write("hello pipe\n", 11));

		auto shmem = blob("shmem.bin");
		put(*shmem, 3 * kPageSize, 's');
		img.shmem = {{0, "anon_shared", "/dev/zero (deleted)", 5, 77, 0x4000, {{0, 1, 0}, {0x2000, 2, kPageSize}},
			      shmem->name()}};

		for (auto* b : {threads.get(), pages.get(), child_threads.get(), child_pages.get(), pipes.get(),
				shmem.get()})
			img.blobs.push_back(b->finish());
		auto ok = (*dir)->commit(img, false);
		ASSERT_TRUE(ok) << ok.error().describe();
	}

	void write_index(const Image& img)
	{
		ASSERT_TRUE(write_file(dir_ + "/index.json", to_json_value(img).dump(1, '\t'), 0600));
	}

	// Loads the image as it is on disk; it must be refused as bad_image. Returns the message.
	std::string refused_on_disk()
	{
		auto r = load_image(dir_);
		EXPECT_FALSE(r) << "accepted";
		if (r)
			return {};
		EXPECT_EQ(r.error().exit, ExitCode::bad_image) << r.error().describe();
		return r.error().msg;
	}

	// Writes img as index.json, then the same.
	std::string refused(const Image& img)
	{
		write_index(img);
		return refused_on_disk();
	}

	std::string blob_path(const std::string& name) const { return dir_ + "/" + name; }

	std::string base_, dir_;
	Image img_;
};

TEST_F(ValidateTest, ValidImageLoads)
{
	auto r = load_image(dir_);
	ASSERT_TRUE(r) << r.error().describe();
	EXPECT_EQ(r->processes.size(), 3u);
	EXPECT_EQ(r->blobs.size(), 6u);

	BlobSizes sizes;
	for (const Blob& b : img_.blobs)
		sizes[b.name] = b.size;
	EXPECT_TRUE(validate_image(img_, sizes));
	EXPECT_TRUE(image_invariants_hold(img_, sizes));
	EXPECT_TRUE(verify_blob_checksums(img_, dir_));
}

TEST_F(ValidateTest, ParentMayNameASibling)
{
	img_.parent = "../snap-0001";
	img_.parent_id = "fedcba9876543210fedcba9876543210";
	write_index(img_);
	auto r = load_image(dir_);
	EXPECT_TRUE(r) << r.error().describe();
}

TEST_F(ValidateTest, OverlappingVmas)
{
	img_.processes[0].vmas[1].end = kShm + 0x1000;  // the heap now runs into the shared mapping
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 7f0000000000-7f0000004000");
	EXPECT_MENTIONS(msg, "overlaps");
}

TEST_F(ValidateTest, UnsortedVmas)
{
	std::swap(img_.processes[0].vmas[0], img_.processes[0].vmas[1]);
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 400000-401000");
}

TEST_F(ValidateTest, VmaEndBeforeStart)
{
	img_.processes[1].vmas[0].end = kHeap - 0x1000;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: vma 600000-5ff000: end before start");
}

TEST_F(ValidateTest, VmaStartUnaligned)
{
	img_.processes[1].vmas[0].start = kHeap + 0x10;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: vma 600010-601000: not page-aligned");
}

TEST_F(ValidateTest, VmaInKernelSpace)
{
	img_.processes[1].vmas[0] = make_vma(0xffff800000000000, 0xffff800000001000, "anon");
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: vma ffff800000000000-ffff800000001000: beyond user space");
}

TEST_F(ValidateTest, PageRunPastVmaEnd)
{
	img_.processes[0].vmas[1].pages[1] = {kHeap + 0xf000, 2, 2 * kPageSize};
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 600000-610000: page run 60f000+2: outside");
}

TEST_F(ValidateTest, PageRunBlobOffsetPastBlob)
{
	img_.processes[0].vmas[3].pages[0].blob_offset = 4 * kPageSize;  // the blob holds 4 pages
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 7ffd00000000-7ffd00021000: page run 7ffd00020000+1");
	EXPECT_MENTIONS(msg, "past the end of blob pages-100.bin");
}

TEST_F(ValidateTest, PageRunSizeOverflows)
{
	img_.processes[0].vmas[1].pages[0].npages = 1ull << 52;  // * 4096 wraps to 0
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 600000-610000: page run 600000+4503599627370496: length overflows");

	img_.processes[0].vmas[1].pages[0] = {kHeap, 1, ~0ull & ~(kPageSize - 1)};  // blob_offset + size wraps
	msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 600000-610000: page run 600000+1");
	EXPECT_MENTIONS(msg, "overflows");
}

TEST_F(ValidateTest, OverlappingPageRuns)
{
	img_.processes[0].vmas[1].pages[1].start = kHeap + 0x1000;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 600000-610000: page run 601000+1: overlaps");
}

TEST_F(ValidateTest, BlobNameWithSlash)
{
	std::string bad_name = "../" + img_.blobs[1].name;
	img_.processes[0].pages_blob = bad_name;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100");
	EXPECT_MENTIONS(msg, bad_name);

	img_.blobs[1].name = "sub/pages-100.bin";
	img_.processes[0].pages_blob = "sub/pages-100.bin";
	msg = refused(img_);
	EXPECT_MENTIONS(msg, "blob \"sub/pages-100.bin\": not a plain file name");
}

TEST_F(ValidateTest, BlobNameDotDot)
{
	img_.blobs[4].name = "..";
	img_.pipes[0].data.blob = "..";
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "blob \"..\": not a plain file name");
}

TEST_F(ValidateTest, BlobListedTwice)
{
	img_.blobs.push_back(img_.blobs[0]);
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "blob threads-100.bin: listed twice");
}

TEST_F(ValidateTest, BlobMissing)
{
	ASSERT_EQ(unlink(blob_path("shmem.bin").c_str()), 0);
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "blob shmem.bin: missing");
}

TEST_F(ValidateTest, BlobIsASymlink)
{
	std::string outside = base_ + "/elsewhere.bin";
	ASSERT_EQ(rename(blob_path("pipes.bin").c_str(), outside.c_str()), 0);
	ASSERT_EQ(symlink(outside.c_str(), blob_path("pipes.bin").c_str()), 0);
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "blob pipes.bin: not a regular file");
}

TEST_F(ValidateTest, BlobSizeMismatch)
{
	ASSERT_EQ(truncate(blob_path("pages-100.bin").c_str(), 3 * kPageSize), 0);
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "blob pages-100.bin: 12288 bytes, index.json says 16384");
}

TEST_F(ValidateTest, ChecksumMismatch)
{
	int fd = open(blob_path("pages-100.bin").c_str(), O_WRONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(pwrite(fd, "X", 1, 5000), 1);
	close(fd);
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "blob pages-100.bin: checksum");

	// Callers that trust the storage skip the checksums: the structure is still fine.
	EXPECT_TRUE(validate_image(img_, dir_));
	auto v = verify_blob_checksums(img_, dir_);
	ASSERT_FALSE(v);
	EXPECT_EQ(v.error().exit, ExitCode::bad_image);
}

TEST_F(ValidateTest, FdReferencesMissingFile)
{
	img_.processes[0].fds[3].file = 4;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: fd 7: file 4 does not exist");
}

TEST_F(ValidateTest, FdsUnsortedOrDuplicate)
{
	img_.processes[0].fds[2].fd = 1;
	EXPECT_MENTIONS(refused(img_), "pid 100: fd 1: listed twice");
	img_.processes[0].fds[2].fd = 0;
	EXPECT_MENTIONS(refused(img_), "pid 100: fd 0: out of order");
}

TEST_F(ValidateTest, DuplicatePid)
{
	img_.processes[2].pid = 200;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: listed twice");
}

TEST_F(ValidateTest, DuplicateTid)
{
	img_.processes[1].threads.push_back(img_.processes[0].threads[1]);  // tid 101 in two processes
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: tid 101 listed twice");
}

TEST_F(ValidateTest, LeaderIsNotFirst)
{
	std::swap(img_.processes[0].threads[0], img_.processes[0].threads[1]);
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: first thread is tid 101");
}

TEST_F(ValidateTest, LiveProcessWithoutThreads)
{
	img_.processes[1].threads.clear();
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200: no threads");
}

TEST_F(ValidateTest, PidOutOfRange)
{
	img_.processes[2].pid = kMaxPid + 1;
	EXPECT_MENTIONS(refused(img_), "pid 4194305: out of range");
	img_.processes[2].pid = 300;
	img_.processes[2].sid = kMaxPid + 1;
	EXPECT_MENTIONS(refused(img_), "pid 300: sid 4194305 out of range");
}

// Processes that never left init's session (a CI container's) have sid and pgid 0: a valid image.
TEST_F(ValidateTest, BootSessionIsValid)
{
	for (auto& p : img_.processes)
		p.sid = p.pgid = 0;
	EXPECT_TRUE(validate_image(img_, dir_)) << "sid/pgid 0 refused";
}

// Too big to be worth a JSON round trip: the in-memory model goes straight to validate_image.
TEST_F(ValidateTest, AbsurdCounts)
{
	Image img = img_;
	img.processes[1].vmas.resize(kMaxVmasPerProcess + 1);
	auto r = validate_image(img, dir_);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.error().exit, ExitCode::bad_image);
	EXPECT_MENTIONS(r.error().msg, "pid 200: 100001 vmas, more than 100000");

	img = img_;
	img.processes[0].threads.resize(kMaxThreadsPerProcess + 1);
	r = validate_image(img, dir_);
	ASSERT_FALSE(r);
	EXPECT_MENTIONS(r.error().msg, "pid 100: 65537 threads");

	img = img_;
	img.files.resize(kMaxFdsOrFiles + 1);
	r = validate_image(img, dir_);
	ASSERT_FALSE(r);
	EXPECT_MENTIONS(r.error().msg, "image: 1048577 files");
}

TEST_F(ValidateTest, TruncatedJson)
{
	std::string text = to_json_value(img_).dump();
	ASSERT_TRUE(write_file(dir_ + "/index.json", text.substr(0, text.size() / 2), 0600));
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "index.json");
}

TEST_F(ValidateTest, IndexTooLarge)
{
	ASSERT_EQ(truncate((dir_ + "/index.json").c_str(), off_t(kMaxIndexBytes) + 1), 0);  // sparse: costs nothing
	std::string msg = refused_on_disk();
	EXPECT_MENTIONS(msg, "index.json: 67108865 bytes, more than");
}

TEST_F(ValidateTest, ParentWithControlCharacters)
{
	img_.parent = "../snap\x1b[2J";
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "parent \"../snap\\x1b[2J\": control character");

	img_.parent = std::string("../snap\0/x", 10);
	EXPECT_MENTIONS(refused(img_), "parent \"../snap\\x00/x\": control character");

	img_.parent = "/etc/snap";
	EXPECT_MENTIONS(refused(img_), "parent \"/etc/snap\": absolute path");
}

TEST_F(ValidateTest, PipeDataPastBlob)
{
	img_.pipes[0].data = {"pipes.bin", 4, 11};
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pipe:[5000]: data: bytes 4..15 past the end of blob pipes.bin (11 bytes)");
}

TEST_F(ValidateTest, PipeNotInPipes)
{
	img_.files[2].pipe = 5001;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "file 2: pipe:[5001] is not in pipes");
}

TEST_F(ValidateTest, MissingRip)
{
	img_.processes[0].threads[1].regs.gpr.erase("rip");
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100 tid 101: register rip missing");
}

TEST_F(ValidateTest, XstatePastBlob)
{
	img_.processes[1].threads[0].regs.xstate.offset = 1024;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 200 tid 200: xstate: bytes 1024..3456 past the end of blob threads-200.bin");
}

TEST_F(ValidateTest, ShmemRunPastSize)
{
	img_.shmem[0].pages[1].npages = 3;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "shmem 0: page run 2000+3: outside 0-4000");
}

TEST_F(ValidateTest, VmaShmemIndexOutOfRange)
{
	img_.processes[0].vmas[2].shmem = 1;
	std::string msg = refused(img_);
	EXPECT_MENTIONS(msg, "pid 100: vma 7f0000000000-7f0000004000: shmem 1 does not exist");
}

TEST_F(ValidateTest, BadProtAndKind)
{
	img_.processes[1].vmas[0].prot = 0x10;
	EXPECT_MENTIONS(refused(img_), "pid 200: vma 600000-601000: prot 0x10");
	img_.processes[1].vmas[0].prot = 1;
	img_.processes[1].vmas[0].kind = "hugetlb";
	EXPECT_MENTIONS(refused(img_), "pid 200: vma 600000-601000: unknown kind \"hugetlb\"");
}

TEST_F(ValidateTest, DuplicateSigactionAndRlimit)
{
	img_.processes[0].sigactions.push_back(img_.processes[0].sigactions[0]);
	EXPECT_MENTIONS(refused(img_), "pid 100: sigaction for signal 10 listed twice");
	img_.processes[0].sigactions.back().signo = 65;
	EXPECT_MENTIONS(refused(img_), "pid 100: sigaction for signal 65, out of range");
	img_.processes[0].sigactions.pop_back();
	img_.processes[0].rlimits.push_back(img_.processes[0].rlimits[0]);
	EXPECT_MENTIONS(refused(img_), "pid 100: rlimit \"nofile\" listed twice");
}

TEST_F(ValidateTest, TimersGroupsAndQueuedSignals)
{
	Process& p = img_.processes[0];
	p.posix_timers = {{3, 1, 4 /* SIGEV_THREAD_ID */, 35, 101, 0x1111, 1000, 1000}, {5, 2, 1, 0, 0, 0, 0, 0}};
	write_index(img_);
	auto ok = load_image(dir_);
	ASSERT_TRUE(ok) << ok.error().describe();

	p.posix_timers[1].id = 3;
	EXPECT_MENTIONS(refused(img_), "pid 100: POSIX timer 3: negative or listed twice");
	p.posix_timers[1] = {5, 3 /* CLOCK_THREAD_CPUTIME_ID */, 1, 0, 0, 0, 0, 0};
	EXPECT_MENTIONS(refused(img_), "pid 100: POSIX timer 5: clock 3 is not one restore can re-create");
	p.posix_timers[1] = {5, 1, 0, 0, 0, 0, 0, 0};
	EXPECT_MENTIONS(refused(img_), "pid 100: POSIX timer 5: signal 0 out of range");
	p.posix_timers[1] = {5, 1, 4, 34, 999, 0, 0, 0};
	EXPECT_MENTIONS(refused(img_), "pid 100: POSIX timer 5: target thread 999 is not one of the process's");
	p.posix_timers.pop_back();

	p.threads[0].siginfo = {"threads-100.bin", 0, 100};
	EXPECT_MENTIONS(refused(img_), "pid 100 tid 100: siginfo: 100 bytes, not up to 1024 records of 128");
	p.threads[0].siginfo = {};
	p.shared_siginfo = {"threads-100.bin", 1 << 20, 128};
	EXPECT_MENTIONS(refused(img_), "pid 100: shared_siginfo: bytes 1048576..1048704 past the end of blob");
	p.shared_siginfo = {};

	p.creds.groups.assign(65, 100);
	EXPECT_MENTIONS(refused(img_), "pid 100: 65 supplementary groups, more than 64");
}

// The fuzz target's oracle must itself catch what it is there to catch.
TEST_F(ValidateTest, InvariantsOracle)
{
	BlobSizes sizes;
	for (const Blob& b : img_.blobs)
		sizes[b.name] = b.size;
	Image img = img_;
	img.processes[0].vmas[1].end = kShm + 0x1000;
	EXPECT_FALSE(image_invariants_hold(img, sizes));
	img = img_;
	img.processes[0].vmas[1].pages[0].npages = 1ull << 52;
	EXPECT_FALSE(image_invariants_hold(img, sizes));
	img = img_;
	img.processes[0].vmas[3].pages[0].blob_offset = 4 * kPageSize;
	EXPECT_FALSE(image_invariants_hold(img, sizes));
	img = img_;
	img.shmem[0].pages[1].npages = 3;
	EXPECT_FALSE(image_invariants_hold(img, sizes));
	img = img_;
	img.processes[0].vmas[1].zero = {{kHeap + 0xf000, 2}};  // one page past the heap's end
	EXPECT_FALSE(image_invariants_hold(img, sizes));
}

// Incremental images (/work/notes/incremental.md): ids, and inherit/zero on vmas.
TEST_F(ValidateTest, ImageIds)
{
	img_.id = "0123456789ABCDEF0123456789ABCDEF";
	EXPECT_MENTIONS(refused(img_), "id \"0123456789ABCDEF0123456789ABCDEF\": not 32 lower-case hex digits");
	img_.id = "0123456789abcdef";
	EXPECT_MENTIONS(refused(img_), "not 32 lower-case hex digits");
	img_.id = "0123456789abcdef0123456789abcdef";
	img_.parent_id = "fedcba9876543210fedcba9876543210";
	EXPECT_MENTIONS(refused(img_), "parent_id fedcba9876543210fedcba9876543210: set, but the image has no parent");
	img_.parent = "../full";
	img_.parent_id = "";
	EXPECT_MENTIONS(refused(img_), "parent_id \"\": not 32 lower-case hex digits");
}

TEST_F(ValidateTest, InheritAndZeroRuns)
{
	Vma& heap = img_.processes[0].vmas[1];  // pages at +0 (2 pages) and +0x5000 (1 page), end +0x10000
	heap.inherit = true;
	EXPECT_MENTIONS(refused(img_), "pid 100: vma 600000-610000: inherits, but the image has no parent");

	img_.parent = "../full";
	img_.parent_id = "fedcba9876543210fedcba9876543210";
	heap.zero = {{kHeap + 0x2000, 3}, {kHeap + 0x6000, 10}};
	write_index(img_);
	auto ok = load_image(dir_);
	EXPECT_TRUE(ok) << ok.error().describe();

	heap.zero = {{kHeap + 0x4000, 2}};
	EXPECT_MENTIONS(refused(img_), "pid 100: vma 600000-610000: zero run 604000+2: overlaps page run 605000+1");
	heap.zero = {{kHeap + 0x6000, 1}, {kHeap + 0x3000, 1}};
	EXPECT_MENTIONS(refused(img_), "zero run 603000+1: overlaps or precedes the run before it");
	heap.zero = {{kHeap + 0xf000, 2}};
	EXPECT_MENTIONS(refused(img_), "zero run 60f000+2: outside 600000-610000");
	heap.zero = {{kHeap + 0x2800, 1}};
	EXPECT_MENTIONS(refused(img_), "zero run 602800+1: start not page-aligned");
	heap.zero = {{kHeap + 0x2000, 0}};
	EXPECT_MENTIONS(refused(img_), "zero run 602000+0: no pages");

	heap.zero.clear();
	img_.processes[0].vmas[2].inherit = true;  // the shared mapping
	EXPECT_MENTIONS(refused(img_), "pid 100: vma 7f0000000000-7f0000004000: a shared or special mapping cannot inherit");
}

// Content digests (restore --root trusts them): well-formed, and only on files.
TEST_F(ValidateTest, Digests)
{
	Vma& text = img_.processes[0].vmas[0];
	text.digest = "build_id:93ac61ec5a8eb1396f9fbd350e3169a558528a40";
	img_.files.push_back({4, "regular", "/data/x"});
	img_.files.back().digest = "xxh3_128:0123456789abcdef0123456789abcdef";
	write_index(img_);
	auto ok = load_image(dir_);
	ASSERT_TRUE(ok) << ok.error().describe();
	EXPECT_EQ(ok->processes[0].vmas[0].digest, text.digest);
	EXPECT_EQ(ok->files.back().digest, img_.files.back().digest);

	for (const char* bad : {"build_id:", "build_id:abc", "build_id:ABCD", "sha256:00", "xxh3_128:0123",
				"xxh3_128:0123456789abcdef0123456789abcdeg"}) {
		SCOPED_TRACE(bad);
		text.digest = bad;
		EXPECT_MENTIONS(refused(img_), "pid 100: vma 400000-401000: digest");
	}
	text.digest.reset();
	img_.processes[0].vmas[1].digest = "build_id:00";
	EXPECT_MENTIONS(refused(img_), "pid 100: vma 600000-610000: a digest on something that is not a file");
	img_.processes[0].vmas[1].digest.reset();
	img_.files[0].digest = "build_id:00";  // /dev/null
	EXPECT_MENTIONS(refused(img_), "file 0: a digest on something that is not a file");
}

}  // namespace
