// Image chains (src/image/chain.h): synthetic chains on disk are loaded and resolved, and the resolution is held
// against a page-by-page reading of the contract (chain_fixture.h), with the bytes read back from the blobs the runs
// name; broken links (a missing parent, an id or process that does not match, a cycle) are refused as bad_image.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "chain_fixture.h"
#include "common/fd.h"
#include "common/fs.h"
#include "image/json.h"
#include "image/validate.h"

using namespace bpfckpt;
using namespace bpfckpt::image;
using namespace chain_fixture;

namespace {

constexpr uint64_t kA = 0x600000, kB = 0x700000, kC = 0x800000;
constexpr uint64_t P = kPageSize;

#define EXPECT_MENTIONS(msg, text) EXPECT_NE((msg).find(text), std::string::npos) << "message: " << (msg)

Chain load_ok(const std::filesystem::path& dir, bool verify = true, size_t max_depth = kMaxChainDepth)
{
	auto c = Chain::load(dir.string(), verify, max_depth);
	EXPECT_TRUE(c) << c.error().describe();
	if (!c)
		std::abort();  // every caller needs the chain; a clear message is already out
	return std::move(*c);
}

std::string refused(const std::filesystem::path& dir)
{
	auto c = Chain::load(dir.string(), true);
	EXPECT_FALSE(c) << dir << " loaded";
	if (c)
		return {};
	EXPECT_EQ(c.error().exit, ExitCode::bad_image) << c.error().describe();
	return c.error().describe();
}

// A full image: vma A of 64 pages all saved, vma B of 16 pages with two runs.
ImageSpec full_spec()
{
	ImageSpec s;
	s.tag = 1;
	s.vmas = {{kA, kA + 64 * P, false, {{kA, 64}}, {}},
		  {kB, kB + 16 * P, false, {{kB, 4}, {kB + 8 * P, 4}}, {}}};
	return s;
}

ImageSpec child_of(uint16_t tag, uint16_t parent_tag, const std::string& parent)
{
	ImageSpec s;
	s.tag = tag;
	s.parent = parent;
	s.parent_tag = parent_tag;
	return s;
}

void expect_matches_contract(const Chain& chain, const std::vector<Written>& images, uint64_t start, uint64_t end)
{
	auto want = naive_tags(images, start, end);
	auto got = resolved_tags(chain, start, end);
	EXPECT_EQ(got, want) << "range " << std::hex << start << "-" << end;
}

std::vector<uint32_t> levels(const std::vector<ResolvedRun>& runs)
{
	std::vector<uint32_t> out;
	for (const auto& r : runs)
		out.push_back(r.level);
	return out;
}

TEST(Chain, FullImageIsAChainOfOne)
{
	TempDir tmp;
	Written full = write_image(tmp / "full", full_spec());
	Chain chain = load_ok(tmp / "full");
	EXPECT_EQ(chain.depth(), 1u);
	EXPECT_EQ(chain.newest().id, full.image.id);
	auto runs = chain.resolve(kPid, kB, kB + 16 * P);
	ASSERT_TRUE(runs);
	ASSERT_EQ(runs->size(), 2u);
	EXPECT_EQ((*runs)[1].start, kB + 8 * P);
	EXPECT_EQ((*runs)[1].blob_offset, (64 + 4) * P);
	expect_matches_contract(chain, {full}, kA, kB + 16 * P);
}

TEST(Chain, NewerPagesOverlayInheritedOnes)
{
	TempDir tmp;
	Written full = write_image(tmp / "full", full_spec());
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 64 * P, true, {{kA + 4 * P, 2}, {kA + 32 * P, 1}}, {}},
		  {kB, kB + 16 * P, true, {{kB + 3 * P, 2}}, {}}};
	Written inc = write_image(tmp / "inc", s);
	Chain chain = load_ok(tmp / "inc");
	ASSERT_EQ(chain.depth(), 2u);
	expect_matches_contract(chain, {inc, full}, kA, kB + 16 * P);

	// Runs, not pages: the parent's one run is cut where the child's pages sit, and nowhere else.
	auto a = chain.resolve(kPid, kA, kA + 64 * P);
	ASSERT_TRUE(a);
	EXPECT_EQ(levels(*a), (std::vector<uint32_t>{1, 0, 1, 0, 1}));
	EXPECT_EQ((*a)[2].start, kA + 6 * P);
	EXPECT_EQ((*a)[2].npages, 26u);
	EXPECT_EQ((*a)[2].blob_offset, 6 * P);
	// B: the child's run straddles the end of the parent's first run and the hole after it.
	auto tags = resolved_tags(chain, kB, kB + 16 * P);
	EXPECT_EQ(tags.at(kB + 2 * P), 1);
	EXPECT_EQ(tags.at(kB + 4 * P), 2);
	EXPECT_FALSE(tags.count(kB + 5 * P)) << "a page no image saved must stay absent";
	// A range that starts and ends inside runs.
	expect_matches_contract(chain, {inc, full}, kA + 5 * P, kA + 33 * P);
}

TEST(Chain, ZeroRunsCutInheritedPages)
{
	TempDir tmp;
	Written full = write_image(tmp / "full", full_spec());
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 64 * P, true, {{kA + 20 * P, 1}}, {{kA, 2}, {kA + 16 * P, 4}, {kA + 63 * P, 1}}},
		  {kB, kB + 16 * P, true, {}, {{kB + 2 * P, 8}}}};
	Written inc = write_image(tmp / "inc", s);
	Chain chain = load_ok(tmp / "inc");
	expect_matches_contract(chain, {inc, full}, kA, kB + 16 * P);
	auto tags = resolved_tags(chain, kA, kB + 16 * P);
	for (uint64_t a : {kA, kA + P, kA + 16 * P, kA + 19 * P, kA + 63 * P, kB + 2 * P, kB + 9 * P})
		EXPECT_FALSE(tags.count(a)) << std::hex << a << " is zero in the child";
	EXPECT_EQ(tags.at(kA + 20 * P), 2);
	EXPECT_EQ(tags.at(kA + 21 * P), 1);
	EXPECT_EQ(tags.at(kB + 10 * P), 1);

	auto counts = chain.count_pages(kPid);
	ASSERT_TRUE(counts);
	EXPECT_EQ(counts->own, 1u);
	EXPECT_EQ(counts->zero, 2 + 4 + 1 + 8u);
	EXPECT_EQ(counts->inherited, (64 - 7 - 1) + 4u);  // B: the parent's pages 0-1 and 10-11 are left
}

// Three images; the middle one splits the parent's vma in two and the newest joins them again, the newest stops
// inheriting B and adds a vma C the older images never had.
TEST(Chain, ThreeDeep)
{
	TempDir tmp;
	Written full = write_image(tmp / "full", full_spec());
	ImageSpec s1 = child_of(2, 1, "../full");
	s1.vmas = {{kA, kA + 32 * P, true, {{kA + 8 * P, 8}}, {{kA + 30 * P, 2}}},
		   {kA + 32 * P, kA + 64 * P, true, {}, {{kA + 48 * P, 4}}},
		   {kB, kB + 16 * P, true, {{kB + 12 * P, 2}}, {}}};
	Written inc1 = write_image(tmp / "inc1", s1);
	ImageSpec s2 = child_of(3, 2, "../inc1");
	s2.vmas = {{kA, kA + 64 * P, true, {{kA + 12 * P, 8}, {kA + 50 * P, 1}}, {{kA + 9 * P, 1}}},
		   {kB, kB + 16 * P, false, {{kB, 1}}, {}},
		   {kC, kC + 4 * P, true, {{kC + P, 1}}, {}}};
	Written inc2 = write_image(tmp / "inc2", s2);
	Chain chain = load_ok(tmp / "inc2");
	ASSERT_EQ(chain.depth(), 3u);
	expect_matches_contract(chain, {inc2, inc1, full}, kA, kC + 4 * P);
	auto tags = resolved_tags(chain, kA, kC + 4 * P);
	EXPECT_EQ(tags.at(kA + 8 * P), 2);    // inc1's
	EXPECT_FALSE(tags.count(kA + 9 * P));  // zero in inc2
	EXPECT_EQ(tags.at(kA + 12 * P), 3);   // inc2's over inc1's
	EXPECT_EQ(tags.at(kA + 16 * P), 3);   // inc2's over full's
	EXPECT_EQ(tags.at(kA + 20 * P), 1);   // through inc1, which has nothing there, to full
	EXPECT_FALSE(tags.count(kA + 31 * P));  // zero in inc1
	EXPECT_EQ(tags.at(kA + 32 * P), 1);   // across inc1's vma boundary
	EXPECT_EQ(tags.at(kA + 50 * P), 3);   // inc2's own amid inc1's zero run
	EXPECT_FALSE(tags.count(kA + 51 * P));
	EXPECT_EQ(tags.at(kB), 3);
	EXPECT_FALSE(tags.count(kB + 12 * P)) << "B does not inherit in inc2";
	EXPECT_FALSE(tags.count(kC)) << "C is new: nothing to inherit";
	EXPECT_EQ(tags.at(kC + P), 3);
	EXPECT_EQ(chain.link(1).image.id, inc1.image.id);
	EXPECT_EQ(chain.link(2).dir, std::filesystem::canonical(tmp / "full").string());
}

// Random chains against the page-by-page reading: vmas with random boundaries in each image, random own and zero
// runs, random inheritance, random ranges.
TEST(Chain, RandomChainsMatchTheContract)
{
	std::mt19937_64 rng(20261125);
	auto chance = [&](double p) { return std::uniform_real_distribution<>(0, 1)(rng) < p; };
	for (int round = 0; round < 25; round++) {
		TempDir tmp;
		std::vector<Written> images;  // oldest first while building
		size_t depth = 1 + rng() % 6;
		for (size_t level = 0; level < depth; level++) {
			ImageSpec s = level ? child_of(uint16_t(level + 1), uint16_t(level), "../" + std::to_string(level - 1))
					    : ImageSpec{};
			s.tag = uint16_t(level + 1);
			uint64_t at = kA + (rng() % 4) * P;
			while (at < kA + 120 * P) {
				uint64_t end = std::min(at + (1 + rng() % 60) * P, kA + 128 * P);
				VmaSpec v{at, end, level > 0 && chance(0.8), {}, {}};
				for (uint64_t a = at; a < end; a += P) {
					double x = std::uniform_real_distribution<>(0, 1)(rng);
					auto* runs = x < 0.3 ? &v.pages : (v.inherit && x < 0.45) ? &v.zero : nullptr;
					if (!runs)
						continue;
					// Mostly longer runs, sometimes two runs back to back.
					if (!runs->empty() && runs->back().first + runs->back().second * P == a && chance(0.8))
						runs->back().second++;
					else
						runs->push_back({a, 1});
				}
				s.vmas.push_back(v);
				at = end + (rng() % 3) * P;
			}
			images.push_back(write_image(tmp / std::to_string(level), s));
		}
		std::reverse(images.begin(), images.end());
		Chain chain = load_ok(tmp / std::to_string(depth - 1));
		ASSERT_EQ(chain.depth(), depth);
		SCOPED_TRACE("round " + std::to_string(round) + ", depth " + std::to_string(depth));
		expect_matches_contract(chain, images, kA - 4 * P, kA + 132 * P);
		for (int r = 0; r < 10; r++) {
			uint64_t a = kA + (rng() % 130) * P, b = kA + (rng() % 130) * P;
			expect_matches_contract(chain, images, std::min(a, b), std::max(a, b));
		}
	}
}

TEST(Chain, MovedChainStillResolves)
{
	TempDir tmp;
	std::filesystem::create_directories(tmp / "snaps");
	write_image(tmp / "snaps" / "full", full_spec());
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 64 * P, true, {{kA + 4 * P, 2}}, {{kA + 10 * P, 3}}}};
	write_image(tmp / "snaps" / "inc", s);
	auto before = resolved_bytes(load_ok(tmp / "snaps" / "inc"), kA, kA + 64 * P);
	ASSERT_EQ(before.size(), 64u - 3);

	std::filesystem::rename(tmp / "snaps", tmp / "moved");
	Chain moved = load_ok(tmp / "moved" / "inc");
	EXPECT_EQ(moved.link(1).dir, std::filesystem::canonical(tmp / "moved" / "full").string());
	EXPECT_EQ(resolved_bytes(moved, kA, kA + 64 * P), before);

	// And through a symlink to the image: its parent is found beside the real directory.
	std::filesystem::create_directory_symlink(tmp / "moved" / "inc", tmp / "link");
	EXPECT_EQ(resolved_bytes(load_ok(tmp / "link"), kA, kA + 64 * P), before);
}

TEST(Chain, MissingParent)
{
	TempDir tmp;
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 4 * P, true, {}, {}}};
	write_image(tmp / "inc", s);
	std::string msg = refused(tmp / "inc");
	EXPECT_MENTIONS(msg, "parent ../full: no such directory");
	EXPECT_MENTIONS(msg, (tmp / "inc").string());
}

TEST(Chain, ParentIdMismatch)
{
	TempDir tmp;
	write_image(tmp / "full", full_spec());
	ImageSpec s = child_of(2, 7, "../full");  // parent_id names image 7
	s.vmas = {{kA, kA + 4 * P, true, {}, {}}};
	write_image(tmp / "inc", s);
	std::string msg = refused(tmp / "inc");
	EXPECT_MENTIONS(msg, "has id " + id_for(1) + ", but parent_id is " + id_for(7));
}

TEST(Chain, ProcessIdentityMismatch)
{
	TempDir tmp;
	write_image(tmp / "full", full_spec());
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 4 * P, true, {}, {}}};
	s.start_time = 2000;  // another process under the same pid
	write_image(tmp / "t", s);
	EXPECT_MENTIONS(refused(tmp / "t"), "pid 100 inherits memory from parent image");
	EXPECT_MENTIONS(refused(tmp / "t"), "start_time 2000 vs 1000");

	s.start_time = 1000;
	s.mm_key = 0xdef;  // the same process after an exec
	write_image(tmp / "m", s);
	EXPECT_MENTIONS(refused(tmp / "m"), "mm_key 0xdef vs 0xabc");

	s.mm_key = 0xabc;
	s.pid = 101;
	write_image(tmp / "p", s);
	EXPECT_MENTIONS(refused(tmp / "p"), "pid 101 inherits memory, but its parent image");

	// A process that inherits nothing needs no match: it is complete in its own image.
	s.vmas[0].inherit = false;
	s.vmas[0].pages = {{kA, 1}};
	write_image(tmp / "own", s);
	Chain chain = load_ok(tmp / "own");
	auto runs = chain.resolve(101, kA, kA + 4 * P);
	ASSERT_TRUE(runs);
	ASSERT_EQ(runs->size(), 1u);
	EXPECT_EQ((*runs)[0].level, 0u);
}

TEST(Chain, Cycles)
{
	TempDir tmp;
	ImageSpec a = child_of(1, 2, "../b"), b = child_of(2, 1, "../a");
	write_image(tmp / "a", a);
	write_image(tmp / "b", b);
	EXPECT_MENTIONS(refused(tmp / "a"), "is already in the chain (a cycle)");

	ImageSpec self = child_of(3, 3, ".");
	write_image(tmp / "self", self);
	EXPECT_MENTIONS(refused(tmp / "self"), "is already in the chain (a cycle)");
}

// restore verifies every image of the chain: a flipped byte in the parent's pages is caught from the child.
TEST(Chain, ParentChecksumsAreVerified)
{
	TempDir tmp;
	write_image(tmp / "full", full_spec());
	ImageSpec s = child_of(2, 1, "../full");
	s.vmas = {{kA, kA + 64 * P, true, {}, {}}};
	write_image(tmp / "inc", s);
	{
		UniqueFd fd(::open((tmp / "full" / "pages-100.bin").c_str(), O_WRONLY | O_CLOEXEC));
		ASSERT_TRUE(fd);
		ASSERT_EQ(pwrite(fd.get(), "X", 1, 5 * P), 1);
	}
	std::string msg = refused(tmp / "inc");
	EXPECT_MENTIONS(msg, "blob pages-100.bin: checksum");
	EXPECT_MENTIONS(msg, "parent");
	EXPECT_TRUE(Chain::load((tmp / "inc").string(), false)) << "without verification the chain still loads";
}

TEST(Chain, ResolveArguments)
{
	TempDir tmp;
	write_image(tmp / "full", full_spec());
	Chain chain = load_ok(tmp / "full");
	EXPECT_FALSE(chain.resolve(999, kA, kA + P));
	EXPECT_FALSE(chain.resolve(kPid, kA + 1, kA + P));
	auto empty = chain.resolve(kPid, kA + P, kA + P);
	ASSERT_TRUE(empty);
	EXPECT_TRUE(empty->empty());
	auto none = chain.resolve(kPid, 0x10000, 0x20000);  // no vma there
	ASSERT_TRUE(none);
	EXPECT_TRUE(none->empty());
}

// A long chain loads (at a measured cost per image) and resolves through every link; one image more than the
// limit is refused. The limit is lowered here: kMaxChainDepth (4096) tiny images take a minute to write on these
// VMs.
TEST(Chain, LongChainAndDepthLimit)
{
	constexpr size_t kDepth = 256;
	TempDir tmp;
	ImageSpec s = full_spec();
	s.vmas = {{kA, kA + 2 * P, false, {{kA, 2}}, {}}};
	write_image(tmp / "0", s);
	for (size_t i = 1; i < kDepth; i++) {
		ImageSpec c = child_of(uint16_t(i + 1), uint16_t(i), "../" + std::to_string(i - 1));
		c.vmas = {{kA, kA + 2 * P, true, i == kDepth / 2 ? std::vector<std::pair<uint64_t, uint64_t>>{{kA + P, 1}}
								  : std::vector<std::pair<uint64_t, uint64_t>>{},
			   {}}};
		write_image(tmp / std::to_string(i), c);
	}
	auto newest = tmp / std::to_string(kDepth - 1);
	auto t0 = std::chrono::steady_clock::now();
	Chain chain = load_ok(newest, true, kDepth);
	auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
	std::cerr << "[ NOTE     ] loading a chain of " << kDepth << " images, checksums verified: " << ms << " ms\n";
	EXPECT_EQ(chain.depth(), kDepth);
	auto tags = resolved_tags(chain, kA, kA + 2 * P);
	EXPECT_EQ(tags.at(kA), 1) << "from the bottom of the chain";
	EXPECT_EQ(tags.at(kA + P), kDepth / 2 + 1) << "from the middle";
	EXPECT_MENTIONS(Chain::load(newest.string(), false, kDepth - 1).error().describe(),
			"more than 255 images in its chain");
}

// Rewrites a written image's index so that one vma's page runs are `runs` over a page blob of `pages` pages: a
// sparse file (the bytes are not what this is about), loaded without checksums.
void make_big(const std::filesystem::path& dir, uint64_t pages, const std::vector<PageRun>& runs, bool inherit)
{
	auto text = bpfckpt::read_file((dir / "index.json").string());
	ASSERT_TRUE(text);
	auto img = parse_index(*text);
	ASSERT_TRUE(img) << img.error().describe();
	Vma& v = img->processes[0].vmas[0];
	v.end = v.start + (1ull << 30);
	v.pages = runs;
	v.inherit = inherit;
	for (Blob& b : img->blobs)
		if (b.name == "pages-100.bin") {
			b.size = pages * P;
			ASSERT_EQ(truncate((dir / b.name).c_str(), off_t(b.size)), 0);
		}
	ASSERT_TRUE(bpfckpt::write_file((dir / "index.json").string(), to_json_value(*img).dump(), 0600));
}

// Into `out`, cleared first: with its capacity kept from an earlier call, what is timed is the resolution, not the
// first touch of the output's memory.
double resolve_ms(const Chain& chain, std::vector<ResolvedRun>& out)
{
	out.clear();
	auto t0 = std::chrono::steady_clock::now();
	auto st = chain.resolve_into(kPid, kA, kA + (1ull << 30), out);
	double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
	EXPECT_TRUE(st);
	return ms;
}

// 1 GiB (262144 pages) resolves in a few milliseconds, whatever the overlay looks like.
TEST(Chain, ResolvesOneGiBInMilliseconds)
{
	constexpr uint64_t kPages = (1ull << 30) / P;
	TempDir tmp;
	ImageSpec s = full_spec();
	s.vmas = {{kA, kA + P, false, {{kA, 1}}, {}}};
	write_image(tmp / "full", s);
	make_big(tmp / "full", kPages, {{kA, kPages, 0}}, false);
	ImageSpec c = child_of(2, 1, "../full");
	c.vmas = {{kA, kA + P, true, {{kA, 1}}, {}}};
	write_image(tmp / "sparse", c);
	write_image(tmp / "dense", c);
	// 1% of the pages written since the parent, spread out; then every other page (the worst case for runs).
	std::vector<PageRun> sparse, dense;
	for (uint64_t i = 0; i < kPages; i += 100)
		sparse.push_back({kA + i * P, 1, sparse.size() * P});
	for (uint64_t i = 0; i < kPages; i += 2)
		dense.push_back({kA + i * P, 1, dense.size() * P});
	make_big(tmp / "sparse", sparse.size(), sparse, true);
	make_big(tmp / "dense", dense.size(), dense, true);

	for (const char* name : {"sparse", "dense"}) {
		Chain chain = load_ok(tmp / name, false);
		std::vector<ResolvedRun> out;
		double cold = resolve_ms(chain, out);
		double warm = 1e9;
		for (int i = 0; i < 5; i++)
			warm = std::min(warm, resolve_ms(chain, out));
		std::cerr << "[ NOTE     ] resolve 1 GiB, " << name << " overlay: " << out.size() << " runs in " << warm
			  << " ms (" << cold << " ms into fresh memory)\n";
		EXPECT_EQ(out.size(), std::string(name) == "sparse" ? 2 * sparse.size() : kPages);
		EXPECT_LT(warm, 20.0) << "target: a few ms";
	}
}

}  // namespace
