// Writes the fuzz target's seed corpus: small index.json files built from the model (so they follow the current
// format) that validate_image accepts against the blob sizes they list. Usage: make_seeds DIR. The copies in
// tests/fuzz/seeds/ were written by it; the smoke test regenerates them in the build tree. Compact JSON: whitespace
// would only be something for the mutator to waste effort on.
#include <cstdio>
#include <string>

#include "common/fs.h"
#include "image/json.h"
#include "image/validate.h"

using namespace bpfckpt;
using namespace bpfckpt::image;

namespace {

// Any 16 hex digits: the fuzz target reads none as a checksum (but see blob_sizes_for there for "00" and "ff").
constexpr const char* kSum = "5eed5eed5eed5eed";

Image base_image()
{
	Image img;
	img.tool_version = "0.1.0";
	img.created = "2025-01-01T00:00:00Z";
	img.host = {"6.1.0", "x86_64", "seed", kPageSize, 0x7, 832, {"sse2"}};
	img.target = {"pid_tree", 100, "", false};
	img.id = "5eed5eed5eed5eed5eed5eed5eed5eed";
	return img;
}

Thread thread(uint32_t tid, const std::string& blob, uint64_t off)
{
	Thread t;
	t.tid = tid;
	t.comm = "seed";
	t.state = "sleeping";
	t.regs.gpr = {{"rip", 0x401000}, {"rsp", 0x7ffd00020f00}, {"fs_base", 0x7f0000010000}, {"gs_base", 0},
		      {"orig_rax", 230}, {"rax", uint64_t(-4)}};
	if (!blob.empty()) {
		t.regs.fpregs = {blob, off, 512};
		t.regs.xstate = {blob, off + 512, 832};
	}
	t.syscall = {true, 230, -4};
	return t;
}

Process process(uint32_t pid, uint32_t ppid)
{
	Process p;
	p.pid = pid;
	p.ppid = ppid;
	p.pgid = 100;
	p.sid = 100;
	p.comm = "seed";
	p.state = "alive";
	p.exe = "/usr/bin/seed";
	p.cwd = "/";
	p.root = "/";
	p.rlimits = {{"nofile", 1024, 4096}};
	p.sigactions = {{15, 0x401200, 0x04000000, 0x401300, 0}};
	return p;
}

Vma vma(uint64_t start, uint64_t end, const std::string& kind, std::vector<PageRun> pages = {})
{
	Vma v;
	v.start = start;
	v.end = end;
	v.prot = 3;
	v.kind = kind;
	v.pages = std::move(pages);
	return v;
}

Image minimal()
{
	Image img = base_image();
	Process p = process(100, 1);
	p.threads = {thread(100, "threads-100.bin", 0)};
	p.vmas = {vma(0x600000, 0x601000, "heap")};
	img.processes = {p};
	img.blobs = {{"threads-100.bin", 1344, kSum}};
	return img;
}

Image two_processes()
{
	Image img = base_image();
	Process parent = process(100, 1);
	parent.threads = {thread(100, "threads-100.bin", 0), thread(102, "threads-100.bin", 1344)};
	parent.vmas = {vma(0x400000, 0x401000, "file"),
		       vma(0x600000, 0x610000, "heap", {{0x600000, 2, 0}, {0x608000, 1, 8192}}),
		       vma(0x7f0000000000, 0x7f0000004000, "shmem"),
		       vma(0x7ffd00000000, 0x7ffd00021000, "stack", {{0x7ffd00020000, 1, 12288}})};
	parent.vmas[0].prot = 5;
	parent.vmas[0].path = "/usr/bin/seed";
	parent.vmas[0].digest = "build_id:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
	parent.vmas[2].shared = true;
	parent.vmas[2].shmem = 0;
	parent.pages_blob = "pages-100.bin";
	Process child = process(101, 100);
	child.threads = {thread(101, "threads-101.bin", 0)};
	child.vmas = {vma(0x600000, 0x602000, "heap", {{0x601000, 1, 0}}),
		      vma(0x7f0000000000, 0x7f0000004000, "shmem")};
	child.vmas[1].shared = true;
	child.vmas[1].shmem = 0;
	child.pages_blob = "pages-101.bin";
	Process zombie = process(103, 100);
	zombie.state = "zombie";
	img.processes = {parent, child, zombie};
	img.shmem = {{0, "anon_shared", "/dev/zero (deleted)", 5, 77, 0x3800, {{0, 1, 0}, {0x2000, 2, 4096}},
		      "shmem.bin"}};
	img.blobs = {{"threads-100.bin", 2688, kSum}, {"pages-100.bin", 16384, kSum},
		     {"threads-101.bin", 1344, kSum}, {"pages-101.bin", 4096, kSum}, {"shmem.bin", 12288, kSum}};
	return img;
}

Image pipes()
{
	Image img = base_image();
	Process p = process(100, 1);
	p.threads = {thread(100, "threads-100.bin", 0)};
	p.vmas = {vma(0x600000, 0x601000, "heap")};
	p.fds = {{0, false, 0}, {3, true, 1}, {4, true, 2}, {9, false, 3}, {10, false, 4}};
	img.processes = {p};
	File tty{0, "chardev", "/dev/pts/0"};
	tty.external = true;
	tty.external_key = "/dev/pts/0";
	File rd{1, "pipe", "pipe:[5000]"};
	rd.pipe = 5000;
	File wr = rd;
	wr.id = 2;
	File outside{3, "pipe", "pipe:[5001]"};
	outside.pipe = 5001;
	outside.external = true;
	outside.external_key = "pipe:[5001]";
	File log{4, "regular", "/var/log/seed.log"};
	log.size = 11;
	log.digest = "xxh3_128:5eed5eed5eed5eed5eed5eed5eed5eed";
	img.files = {tty, rd, wr, outside, log};
	img.pipes = {{5000, 65536, {"pipes.bin", 0, 11}}, {5002, 4096, {"", 0, 0}}};
	img.blobs = {{"threads-100.bin", 1344, kSum}, {"pipes.bin", 11, kSum}};
	return img;
}

// Everything flush against its limit: vmas back to back from the first page, page runs that end exactly at their
// vma's end and at their blob's end, small numbers. One mutation of one number (a doubling, a halving, a +1 page)
// then breaks an invariant, which is what the fuzzer needs to test the checks that guard it.
Image tight()
{
	Image img = base_image();
	Process p = process(100, 1);
	p.threads = {thread(100, "t.bin", 0)};
	p.vmas = {vma(0x1000, 0x2000, "anon", {{0x1000, 1, 0}}), vma(0x2000, 0x4000, "anon", {{0x2000, 2, 4096}}),
		  vma(0x4000, 0x8000, "heap", {{0x5000, 1, 12288}, {0x6000, 2, 16384}}),
		  vma(0x8000, 0x9000, "shmem")};
	p.vmas[3].shared = true;
	p.vmas[3].shmem = 0;
	p.pages_blob = "p.bin";
	p.fds = {{0, false, 0}, {1, false, 1}};
	img.processes = {p};
	File rd{0, "pipe", "pipe:[1]"};
	rd.pipe = 1;
	File wr = rd;
	wr.id = 1;
	img.files = {rd, wr};
	img.pipes = {{1, 4096, {"d.bin", 0, 4096}}};
	img.shmem = {{0, "memfd", "/memfd:x (deleted)", 1, 2, 0x1001, {{0, 1, 0}, {0x1000, 1, 4096}}, "d.bin"}};
	img.blobs = {{"t.bin", 1344, kSum}, {"p.bin", 24576, kSum}, {"d.bin", 8192, kSum}};
	return img;
}

// An incremental image: a parent, a vma that inherits with zero runs between and around its own pages (one flush
// against the vma's end), a process identity for the chain link, and a vma that does not inherit.
Image incremental()
{
	Image img = base_image();
	img.parent = "../20250101T000000.000Z";
	img.parent_id = "0123456789abcdef0123456789abcdef";
	Process p = process(100, 1);
	p.start_time = 4200000000;
	p.mm_key = 0xffff888001234000;
	p.threads = {thread(100, "t.bin", 0)};
	Vma heap = vma(0x600000, 0x610000, "heap", {{0x601000, 2, 0}, {0x608000, 1, 8192}});
	heap.inherit = true;
	heap.zero = {{0x600000, 1}, {0x603000, 3}, {0x60f000, 1}};
	Vma stack = vma(0x7ffd00000000, 0x7ffd00021000, "stack", {{0x7ffd00020000, 1, 12288}});
	stack.inherit = true;
	p.vmas = {heap, vma(0x7f0000000000, 0x7f0000001000, "anon"), stack};
	p.pages_blob = "p.bin";
	img.processes = {p};
	img.blobs = {{"t.bin", 1344, kSum}, {"p.bin", 16384, kSum}};
	return img;
}

}  // namespace

int main(int argc, char** argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: make_seeds DIR\n");
		return 2;
	}
	std::string dir = argv[1];
	struct Seed {
		const char* name;
		Image img;
	};
	for (const Seed& s : {Seed{"minimal.json", minimal()}, Seed{"two_processes.json", two_processes()},
			      Seed{"pipes.json", pipes()}, Seed{"tight.json", tight()},
			      Seed{"incremental.json", incremental()}}) {
		BlobSizes sizes;
		for (const Blob& b : s.img.blobs)
			sizes[b.name] = b.size;
		if (auto ok = validate_image(s.img, sizes); !ok) {
			std::fprintf(stderr, "make_seeds: %s is not valid: %s\n", s.name, ok.error().describe().c_str());
			return 1;
		}
		std::string path = dir + "/" + s.name;
		if (auto ok = write_file(path, to_json_value(s.img).dump() + "\n", 0644); !ok) {
			std::fprintf(stderr, "make_seeds: %s\n", ok.error().describe().c_str());
			return 1;
		}
	}
	return 0;
}
