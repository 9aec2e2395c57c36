// index.json: every field survives C++ -> JSON -> C++, the strict parser refuses what it must, and what we write
// validates against schema/image.schema.json (through tests/tools/validate_image.py) while mutated copies do not.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "image/json.h"
#include "support/temp_dir.h"

using namespace bpfckpt;
using namespace bpfckpt::image;
using nlohmann::json;

namespace {

Thread make_thread(uint32_t tid, const std::string& blob, uint64_t xstate_off)
{
	Thread t;
	t.tid = tid;
	t.comm = "worker";
	t.state = "sleeping";
	t.regs.gpr = {{"rip", 0x401000}, {"rsp", 0x7ffd0000f000}, {"fs_base", 0x7f0000001000}, {"orig_rax", 230},
		      {"rax", uint64_t(-516)}};
	t.regs.xstate = {blob, xstate_off, 2432};
	t.regs.fpregs = {blob, xstate_off + 4096, 512};
	t.syscall = {true, 230, -516};
	t.sigmask = 1ull << 9;
	t.pending = 1ull << 14;
	t.sas_ss_sp = 0x7f0000100000;
	t.sas_ss_size = 8192;
	t.sas_ss_flags = 0;
	t.rseq = 0x7f0000002000;
	t.rseq_len = 32;
	t.rseq_sig = 0x53053053;
	t.clear_child_tid = 0x7f0000003000;
	t.robust_list = 0x7f0000004000;
	t.cpus = {0, 1};
	t.policy = 0;
	t.nice = -5;
	t.rt_priority = 0;
	return t;
}

Process make_process(uint32_t pid, uint32_t ppid, const std::string& pages_blob)
{
	Process p;
	p.pid = pid;
	p.ppid = ppid;
	p.pgid = 100;
	p.sid = 100;
	p.comm = "app";
	p.state = "alive";
	p.exit_code = 0;
	p.exe = "/usr/bin/app";
	p.cwd = "/srv";
	p.root = "/";
	p.personality = 0;
	p.umask = 022;
	p.cgroup_id = 4242;
	p.start_time = 123456789012345;
	p.mm_key = 0xffff888012345678;
	p.creds = {1000, 1000, 1000, 1000, 100, 100, 100, 100, 0, 0x1ff, 0x1ff, ~0ull >> 23, 0, 0, {27, 100, 1001}};
	p.rlimits = {{"nofile", 1024, 4096}, {"stack", 8 << 20, ~0ull}};
	p.sigactions = {{10, 0x401200, 0x04000000, 0x401300, 1ull << 11}};
	p.shared_pending = 1ull << 16;
	p.it_real = {1'000'000, 500'000};
	p.it_prof = {};
	p.it_virt = {7, 0};
	p.posix_timers = {{0, 1, 0, 14, 0, 0xdead, 2'000'000, 1'000'000}};
	p.mm = {0x400000, 0x401000, 0x600000, 0x601000, 0x602000, 0x623000, 0x7ffd00010000,
		0x7ffd00010100, 0x7ffd00010200, 0x7ffd00010200, 0x7ffd00010300, {6, 4096, 0, 0}};
	p.threads = {make_thread(pid, pages_blob, 0), make_thread(pid + 1, pages_blob, 8192)};

	Vma heap;
	heap.start = 0x602000;
	heap.end = 0x623000;
	heap.prot = 3;
	heap.vm_flags = 0x73;
	heap.kind = "heap";
	heap.path = "[heap]";
	heap.pages = {{0x602000, 2, 16384}, {0x610000, 1, 24576}};
	heap.inherit = true;
	heap.zero = {{0x604000, 3}, {0x620000, 1}};

	Vma file;
	file.start = 0x400000;
	file.end = 0x401000;
	file.prot = 5;
	file.vm_flags = 0x875;
	file.offset = 0;
	file.kind = "file";
	file.path = "/usr/bin/app";
	file.dev = (8u << 20) | 1;
	file.ino = 1234;
	file.file_size = 4096;
	file.mtime_sec = 1700000000;
	file.mtime_nsec = 123456789;

	Vma shared;
	shared.start = 0x7f0000200000;
	shared.end = 0x7f0000204000;
	shared.prot = 3;
	shared.shared = true;
	shared.vm_flags = 0xfb;
	shared.kind = "shmem";
	shared.path = "/dev/zero (deleted)";
	shared.shmem = 1;

	p.vmas = {file, heap, shared};
	p.fds = {{0, false, 0}, {1, false, 1}, {5, true, 2}};
	p.pages_blob = pages_blob;
	return p;
}

Image make_image()
{
	Image img;
	img.tool_version = "0.1.0";
	img.created = "2025-01-02T03:04:05Z";
	img.host = {"6.18.0", "x86_64", "box", 4096, 0xe7, 2432, {"avx2", "avx512f"}};
	img.target = {"pid_tree", 100, "", true};
	img.id = "00112233445566778899aabbccddeeff";
	img.parent = "../img-0";
	img.parent_id = "ffeeddccbbaa99887766554433221100";
	img.processes = {make_process(100, 1, "pages-100.bin"), make_process(200, 100, "pages-200.bin")};

	File reg;
	reg.id = 0;
	reg.kind = "regular";
	reg.path = "/srv/data.log";
	reg.flags = 02101;
	reg.pos = 777;
	reg.dev = 8u << 20;
	reg.ino = 99;
	reg.mode = 0100644;
	reg.size = 4096;
	reg.mtime_sec = -1;  // before 1970: the sign must survive
	reg.mtime_nsec = 5;

	File rd;
	rd.id = 1;
	rd.kind = "pipe";
	rd.path = "pipe:[31337]";
	rd.mode = 010600;
	rd.pipe = 31337;

	File wr = rd;
	wr.id = 2;
	wr.flags = 1;
	wr.external = true;
	wr.external_key = "pipe:[31337]";

	img.files = {reg, rd, wr};
	img.pipes = {{31337, 65536, {"pipe-31337.bin", 0, 11}}};
	img.shmem = {{1, "anon_shared", "/dev/zero (deleted)", 5, 6, 16384, {{0, 2, 0}}, "shmem-1.bin"}};
	img.blobs = {{"pages-100.bin", 32768, "0123456789abcdef"},
		     {"pages-200.bin", 32768, "fedcba9876543210"},
		     {"pipe-31337.bin", 11, "00000000000000aa"},
		     {"shmem-1.bin", 8192, "1111111111111111"}};
	return img;
}

using test_support::TempDir;

void write_index(const std::filesystem::path& dir, const json& j)
{
	std::filesystem::create_directories(dir);
	std::ofstream(dir / "index.json") << j.dump(2) << "\n";
}

struct Validation {
	int exit = -1;
	std::string output;
};

// Runs the validator once over all `dirs` (Python's start-up costs half a second here).
Validation validate(const std::vector<std::filesystem::path>& dirs)
{
	std::string cmd = std::string("python3 '") + BPFCKPT_SOURCE_DIR + "/tests/tools/validate_image.py'";
	for (const auto& d : dirs)
		cmd += " '" + d.string() + "'";
	cmd += " 2>&1";
	Validation v;
	FILE* p = ::popen(cmd.c_str(), "r");
	if (!p)
		return v;
	char buf[4096];
	while (size_t n = std::fread(buf, 1, sizeof(buf), p))
		v.output.append(buf, n);
	int st = ::pclose(p);
	v.exit = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return v;
}

void expect_bad_image(const std::string& text, const char* why)
{
	auto r = parse_index(text);
	ASSERT_FALSE(r) << why;
	EXPECT_EQ(r.error().exit, ExitCode::bad_image) << why << ": " << r.error().msg;
}

}  // namespace

TEST(ImageJson, RoundTripKeepsEveryField)
{
	Image a = make_image();
	json ja = to_json_value(a);
	auto b = from_json_value(ja);
	ASSERT_TRUE(b) << b.error().describe();

	// The whole image, compared field by field through its JSON form...
	EXPECT_EQ(to_json_value(*b), ja);
	// ...and the fields most likely to be lost, directly.
	EXPECT_EQ(b->format_version, kFormatVersion);
	EXPECT_EQ(b->tool_version, "0.1.0");
	EXPECT_EQ(b->created, a.created);
	EXPECT_EQ(b->parent, a.parent);
	EXPECT_EQ(b->id, a.id);
	EXPECT_EQ(b->parent_id, a.parent_id);
	EXPECT_EQ(b->host.xcr0, 0xe7u);
	EXPECT_EQ(b->host.cpu_flags, a.host.cpu_flags);
	EXPECT_TRUE(b->target.leave_running);
	ASSERT_EQ(b->processes.size(), 2u);
	const Process& p = b->processes[1];
	EXPECT_EQ(p.pid, 200u);
	EXPECT_EQ(p.ppid, 100u);
	EXPECT_EQ(p.creds.cap_bset, ~0ull >> 23);
	EXPECT_EQ(p.creds.groups, (std::vector<uint32_t>{27, 100, 1001}));
	EXPECT_EQ(p.start_time, 123456789012345u);
	EXPECT_EQ(p.mm_key, 0xffff888012345678u);  // all 64 bits
	EXPECT_EQ(p.rlimits[1].max, ~0ull);  // RLIM_INFINITY needs all 64 bits
	EXPECT_EQ(p.mm.auxv, a.processes[1].mm.auxv);
	ASSERT_EQ(p.threads.size(), 2u);
	EXPECT_EQ(p.threads[1].tid, 201u);
	EXPECT_EQ(p.threads[0].regs.gpr.at("rax"), uint64_t(-516));
	EXPECT_EQ(p.threads[0].syscall.ret, -516);
	EXPECT_EQ(p.threads[0].nice, -5);
	EXPECT_EQ(p.threads[1].regs.xstate.offset, 8192u);
	ASSERT_EQ(p.vmas.size(), 3u);
	EXPECT_FALSE(p.vmas[0].shmem);
	EXPECT_EQ(p.vmas[0].mtime_nsec, 123456789u);
	ASSERT_EQ(p.vmas[1].pages.size(), 2u);
	EXPECT_EQ(p.vmas[1].pages[1].blob_offset, 24576u);
	EXPECT_TRUE(p.vmas[1].inherit);
	EXPECT_FALSE(p.vmas[0].inherit);
	ASSERT_EQ(p.vmas[1].zero.size(), 2u);
	EXPECT_EQ(p.vmas[1].zero[1].start, 0x620000u);
	EXPECT_EQ(p.vmas[1].zero[0].npages, 3u);
	EXPECT_EQ(p.vmas[2].shmem, std::optional<uint32_t>(1));
	EXPECT_EQ(p.fds[2].file, 2u);
	EXPECT_TRUE(p.fds[2].cloexec);
	ASSERT_EQ(b->files.size(), 3u);
	EXPECT_FALSE(b->files[0].pipe);
	EXPECT_EQ(b->files[0].mtime_sec, -1);
	EXPECT_EQ(b->files[1].pipe, std::optional<uint64_t>(31337));
	EXPECT_EQ(b->files[2].external_key, "pipe:[31337]");
	ASSERT_EQ(b->pipes.size(), 1u);
	EXPECT_EQ(b->pipes[0].data.blob, "pipe-31337.bin");
	ASSERT_EQ(b->shmem.size(), 1u);
	EXPECT_EQ(b->shmem[0].pages[0].npages, 2u);
	ASSERT_EQ(b->blobs.size(), 4u);
	EXPECT_EQ(b->blobs[3].xxh3, "1111111111111111");
}

TEST(ImageJson, OptionalKeysAreAbsentNotNull)
{
	Image a = make_image();
	a.parent.reset();
	a.parent_id.clear();
	json j = to_json_value(a);
	EXPECT_FALSE(j.contains("parent"));
	EXPECT_FALSE(j["processes"][0]["vmas"][0].contains("shmem"));
	EXPECT_FALSE(j["files"][0].contains("pipe"));
	auto b = from_json_value(j);
	ASSERT_TRUE(b) << b.error().describe();
	EXPECT_FALSE(b->parent);
}

TEST(ImageJson, ParseIndexRejectsBadInput)
{
	std::string good = to_json_value(make_image()).dump();
	ASSERT_TRUE(parse_index(good));

	expect_bad_image(good.substr(0, good.size() / 2), "truncated JSON");
	expect_bad_image("", "empty file");

	json j = to_json_value(make_image());
	j["format_version"] = kFormatVersion + 1;
	expect_bad_image(j.dump(), "newer format_version");

	j = to_json_value(make_image());
	j["processes"][0]["threads"][0].erase("regs");
	expect_bad_image(j.dump(), "missing regs");

	j = to_json_value(make_image());
	j.erase("blobs");
	expect_bad_image(j.dump(), "missing blobs");

	j = to_json_value(make_image());
	j["processes"][1]["vmas"][0]["start"] = "0x400000";
	expect_bad_image(j.dump(), "string where a number belongs");

	j = to_json_value(make_image());
	j["files"][1]["pipe"] = "31337";
	expect_bad_image(j.dump(), "string in an optional number");

	j = to_json_value(make_image());
	j["processes"][0]["vmas"][1].erase("inherit");
	expect_bad_image(j.dump(), "missing inherit");

	j = to_json_value(make_image());
	j["processes"][0]["vmas"][1]["zero"][0]["blob_offset"] = 0;
	expect_bad_image(j.dump(), "a zero run with a blob offset");

	j = to_json_value(make_image());
	j["processes"][0]["vmas"][1]["inherit"] = 1;
	expect_bad_image(j.dump(), "a number for inherit");

	j = to_json_value(make_image());
	j.erase("parent_id");
	expect_bad_image(j.dump(), "missing parent_id");

	j = to_json_value(make_image());
	j["processes"][0]["start_time"] = -1;
	expect_bad_image(j.dump(), "negative start_time");
}

TEST(ImageJson, WrittenIndexValidatesAgainstSchema)
{
	TempDir tmp;
	ASSERT_FALSE(tmp.path().empty());
	write_index(tmp.path() / "full", to_json_value(make_image()));

	// The smallest image: no parent, nothing optional, empty lists.
	Image empty;
	empty.tool_version = "0.1.0";
	empty.created = "2025-01-02T03:04:05Z";
	empty.target = {"cgroup", 0, "/sys/fs/cgroup/unified/job", false};
	empty.id = "0123456789abcdef0123456789abcdef";
	write_index(tmp.path() / "empty", to_json_value(empty));

	Validation v = validate({tmp.path() / "full", tmp.path() / "empty"});
	EXPECT_EQ(v.exit, 0) << v.output;
}

// The schema is strict: each of these small lies must be caught.
TEST(ImageJson, SchemaRejectsMutations)
{
	TempDir tmp;
	ASSERT_FALSE(tmp.path().empty());
	const std::vector<std::pair<const char*, std::function<void(json&)>>> mutations = {
		{"unknown top-level key", [](json& j) { j["extra"] = 1; }},
		{"unknown key in a vma", [](json& j) { j["processes"][0]["vmas"][1]["huge"] = true; }},
		{"unknown key in a file", [](json& j) { j["files"][0]["fd"] = 3; }},
		{"missing required key", [](json& j) { j["processes"][0].erase("creds"); }},
		{"negative unsigned", [](json& j) { j["processes"][0]["threads"][0]["sigmask"] = -1; }},
		{"u32 overflow", [](json& j) { j["processes"][0]["pid"] = 1ull << 32; }},
		{"string for a number", [](json& j) { j["pipes"][0]["capacity"] = "65536"; }},
		{"unknown vma kind", [](json& j) { j["processes"][0]["vmas"][0]["kind"] = "vsyscall"; }},
		{"unknown file kind", [](json& j) { j["files"][0]["kind"] = "fifo"; }},
		{"unknown process state", [](json& j) { j["processes"][1]["state"] = "running"; }},
		{"hidden blob name", [](json& j) { j["blobs"][0]["name"] = ".pages-100.bin"; }},
		{"blob name with a slash", [](json& j) { j["pipes"][0]["data"]["blob"] = "../etc/passwd"; }},
		{"upper-case checksum", [](json& j) { j["blobs"][1]["xxh3"] = "FEDCBA9876543210"; }},
		{"short checksum", [](json& j) { j["blobs"][1]["xxh3"] = "fedcba"; }},
		{"unaligned page run", [](json& j) { j["processes"][0]["vmas"][1]["pages"][0]["blob_offset"] = 100; }},
		{"wrong format_version", [](json& j) { j["format_version"] = kFormatVersion - 1; }},
		{"null parent", [](json& j) { j["parent"] = nullptr; }},
		{"upper-case id", [](json& j) { j["id"] = "00112233445566778899AABBCCDDEEFF"; }},
		{"missing id", [](json& j) { j.erase("id"); }},
		{"parent without parent_id", [](json& j) { j["parent_id"] = ""; }},
		{"parent_id without parent", [](json& j) { j.erase("parent"); }},
		{"unknown key in a zero run", [](json& j) { j["processes"][0]["vmas"][1]["zero"][0]["blob_offset"] = 0; }},
		{"unaligned zero run", [](json& j) { j["processes"][0]["vmas"][1]["zero"][0]["start"] = 0x604001; }},
		{"empty zero run", [](json& j) { j["processes"][0]["vmas"][1]["zero"][0]["npages"] = 0; }},
		{"inherit not a boolean", [](json& j) { j["processes"][0]["vmas"][1]["inherit"] = 1; }},
		{"missing mm_key", [](json& j) { j["processes"][1].erase("mm_key"); }},
	};
	std::vector<std::filesystem::path> dirs;
	for (const auto& [what, mutate] : mutations) {
		json j = to_json_value(make_image());
		mutate(j);
		dirs.push_back(tmp.path() / std::to_string(dirs.size()));
		write_index(dirs.back(), j);
	}
	Validation v = validate(dirs);
	EXPECT_EQ(v.exit, 1) << v.output;
	// Each mutated image must have drawn at least one complaint of its own.
	for (size_t i = 0; i < dirs.size(); i++)
		EXPECT_NE(v.output.find((dirs[i] / "index.json").string() + ": "), std::string::npos)
		    << mutations[i].first << ": the schema accepted it\n"
		    << v.output;
}
