#include "chain_fixture.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "common/fd.h"
#include "image/image_dir.h"

namespace chain_fixture {

using namespace bpfckpt;
using namespace bpfckpt::image;

namespace {

Thread make_thread(uint32_t tid, const BlobWriter& blob)
{
	Thread t;
	t.tid = tid;
	t.comm = "chain";
	t.state = "sleeping";
	t.regs.gpr = {{"rip", 0x401000}, {"rsp", 0x7ffd00020f00}, {"fs_base", 0x7f0000010000}, {"gs_base", 0}};
	t.regs.fpregs = {blob.name(), 0, 512};
	t.regs.xstate = {blob.name(), 512, 832};
	return t;
}

Process make_process(const ImageSpec& spec)
{
	Process p;
	p.pid = spec.pid;
	p.ppid = 1;
	p.pgid = spec.pid;
	p.sid = spec.pid;
	p.comm = "chain";
	p.state = "alive";
	p.exe = "/usr/bin/chain";
	p.cwd = "/";
	p.root = "/";
	p.start_time = spec.start_time;
	p.mm_key = spec.mm_key;
	return p;
}

// The page words of one run, as the image with `tag` saves them.
std::string run_bytes(uint16_t tag, uint64_t start, uint64_t npages)
{
	std::string out(npages * kPageSize, '\0');
	for (uint64_t off = 0; off < out.size(); off += 8) {
		uint64_t w = page_word(tag, start + off / kPageSize * kPageSize);
		memcpy(out.data() + off, &w, 8);
	}
	return out;
}

// The naive answer for one page, one image at a time down the chain.
std::optional<uint16_t> naive_tag(const std::vector<Written>& chain, size_t level, uint64_t addr)
{
	if (level >= chain.size())
		return std::nullopt;
	const Process* p = nullptr;
	for (const Process& q : chain[level].image.processes)
		if (q.pid == kPid)
			p = &q;
	if (!p)
		return std::nullopt;
	for (const Vma& v : p->vmas) {
		if (addr < v.start || addr >= v.end)
			continue;
		for (const PageRun& r : v.pages)
			if (addr >= r.start && addr < r.start + r.npages * kPageSize)
				return chain[level].tag;
		for (const ZeroRun& z : v.zero)
			if (addr >= z.start && addr < z.start + z.npages * kPageSize)
				return std::nullopt;
		return v.inherit ? naive_tag(chain, level + 1, addr) : std::nullopt;
	}
	return std::nullopt;
}

}  // namespace

std::string id_for(uint16_t tag) { return fmt::format("{:032x}", 0xc0ffee0000ull + tag); }

uint64_t page_word(uint16_t tag, uint64_t addr) { return (uint64_t(tag) << 48) | (addr / kPageSize); }

Written write_image(const std::filesystem::path& dir, const ImageSpec& spec)
{
	Written w{{}, spec.tag};
	Image& img = w.image;
	auto out = ImageDir::create(dir.string());
	EXPECT_TRUE(out) << out.error().describe();
	if (!out)
		return w;
	auto threads = (*out)->open_blob("threads-100.bin");
	auto pages = (*out)->open_blob("pages-100.bin");
	EXPECT_TRUE(threads && pages);
	if (!threads || !pages)
		return w;
	EXPECT_TRUE((*threads)->write(std::string(512 + 832, '\x11').data(), 512 + 832));
	Process p = make_process(spec);
	p.threads = {make_thread(spec.pid, **threads)};
	for (const VmaSpec& s : spec.vmas) {
		Vma v;
		v.start = s.start;
		v.end = s.end;
		v.prot = 3;
		v.kind = "anon";
		v.inherit = s.inherit;
		for (auto [start, n] : s.pages) {
			v.pages.push_back({start, n, (*pages)->offset()});
			std::string bytes = run_bytes(spec.tag, start, n);
			EXPECT_TRUE((*pages)->write(bytes.data(), bytes.size()));
		}
		for (auto [start, n] : s.zero)
			v.zero.push_back({start, n});
		p.vmas.push_back(v);
	}
	p.pages_blob = (*pages)->name();
	img.tool_version = "0.1.0";
	img.created = "2026-11-25T09:00:00Z";
	img.host = {"6.18.0", "x86_64", "test", kPageSize, 0x7, 832, {}};
	img.target = {"pid_tree", spec.pid, "", false};
	img.id = spec.id.empty() ? id_for(spec.tag) : spec.id;
	img.parent = spec.parent;
	img.parent_id = spec.parent && spec.parent_id.empty() ? id_for(spec.parent_tag) : spec.parent_id;
	img.processes = {p};
	img.blobs = {(*threads)->finish(), (*pages)->finish()};
	auto ok = (*out)->commit(img, false);
	EXPECT_TRUE(ok) << ok.error().describe();
	return w;
}

std::map<uint64_t, uint16_t> naive_tags(const std::vector<Written>& newest_first, uint64_t start, uint64_t end)
{
	std::map<uint64_t, uint16_t> out;
	for (uint64_t a = start; a < end; a += kPageSize)
		if (auto t = naive_tag(newest_first, 0, a))
			out[a] = *t;
	return out;
}

std::map<uint64_t, std::string> resolved_bytes(const Chain& chain, uint64_t start, uint64_t end)
{
	std::map<uint64_t, std::string> out;
	auto runs = chain.resolve(kPid, start, end);
	EXPECT_TRUE(runs) << runs.error().describe();
	if (!runs)
		return out;
	for (const ResolvedRun& r : *runs) {
		UniqueFd fd(::open(chain.blob_path(r).c_str(), O_RDONLY | O_CLOEXEC));
		EXPECT_TRUE(fd) << chain.blob_path(r);
		for (uint64_t i = 0; fd && i < r.npages; i++) {
			std::string page(kPageSize, '\0');
			EXPECT_EQ(pread(fd.get(), page.data(), kPageSize, off_t(r.blob_offset + i * kPageSize)),
				  ssize_t(kPageSize));
			out[r.start + i * kPageSize] = page;
		}
	}
	return out;
}

std::map<uint64_t, uint16_t> resolved_tags(const Chain& chain, uint64_t start, uint64_t end)
{
	std::map<uint64_t, uint16_t> out;
	for (const auto& [addr, page] : resolved_bytes(chain, start, end)) {
		uint64_t w;
		memcpy(&w, page.data(), 8);
		uint16_t tag = uint16_t(w >> 48);
		out[addr] = page_word(tag, addr) == w ? tag : 0xffff;
	}
	return out;
}

std::vector<std::string> list_names(const std::filesystem::path& dir)
{
	std::vector<std::string> out;
	for (const auto& e : std::filesystem::directory_iterator(dir))
		out.push_back(e.path().filename().string());
	std::sort(out.begin(), out.end());
	return out;
}

}  // namespace chain_fixture
