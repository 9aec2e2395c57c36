#include "dump/memory.h"

#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

namespace bpfckpt::dump {
namespace {

constexpr uint64_t kPage = 4096, kTwoMiB = 2u << 20;

// Random pieces over a few vmas, in address order, page-aligned, some far larger than a chunk.
std::vector<PagePiece> random_pieces(std::mt19937& rng)
{
	std::vector<PagePiece> out;
	uint64_t addr = 0x7f0000000000;
	for (size_t vma = 0; vma < 4; vma++)
		for (int n = int(rng() % 4); n > 0; n--) {
			addr += kPage * (1 + rng() % 8);
			uint64_t len = kPage * (1 + rng() % 1500);
			out.push_back({vma, addr, addr + len});
			addr += len;
		}
	return out;
}

// What a plan must be whatever the layout: the planned bytes in order, each chunk a run of whole pieces within the
// buffer and IOV_MAX, laid back to back from `at`, and none across a 2 MiB boundary of the blob. The planned pieces
// must not touch one another, so that the check can glue what the plan split.
void check_plan(const std::vector<PagePiece>& planned, uint64_t at, size_t room)
{
	CopyPlan plan = plan_copy(planned, at, room);

	std::vector<std::pair<uint64_t, uint64_t>> want, got;
	for (const PagePiece& p : planned)
		want.push_back({p.start, p.end});
	for (const PagePiece& p : plan.pieces) {
		ASSERT_LT(p.start, p.end);
		if (!got.empty() && got.back().second == p.start)
			got.back().second = p.end;  // a piece the plan split (planned pieces never touch here): glued back
		else
			got.push_back({p.start, p.end});
	}
	EXPECT_EQ(got, want);

	size_t next = 0;
	uint64_t off = at;
	for (const CopyChunk& c : plan.chunks) {
		EXPECT_EQ(c.first, next);
		EXPECT_GT(c.count, 0u);
		EXPECT_LE(c.count, 1024u);
		EXPECT_EQ(c.at, off);
		uint64_t bytes = 0;
		for (size_t i = c.first; i < c.first + c.count; i++)
			bytes += plan.pieces[i].end - plan.pieces[i].start;
		EXPECT_EQ(c.bytes, bytes);
		EXPECT_LE(c.bytes, room);
		EXPECT_EQ(c.at / kTwoMiB, (c.at + c.bytes - 1) / kTwoMiB) << "chunk at " << c.at << " crosses 2 MiB";
		next = c.first + c.count;
		off += c.bytes;
	}
	EXPECT_EQ(next, plan.pieces.size());
	EXPECT_EQ(off - at, total_bytes(planned));
}

TEST(CopyPlanTest, ChunksEndOnTheBlobsTwoMiBBoundaries)
{
	// A big mapping whose pages start 16 KiB into the blob, after four pages of small mappings: its chunks must
	// be the 2 MiB - 16 KiB up to the first boundary, then whole aligned 2 MiB.
	std::vector<PagePiece> planned = {{0, 0x1000, 0x2000}, {1, 0x5000, 0x8000}, {2, 0x40000000, 0x40000000 + 8 * kTwoMiB}};
	CopyPlan plan = plan_copy(planned, 0, kTwoMiB);
	ASSERT_EQ(plan.chunks.size(), 9u);
	EXPECT_EQ(plan.chunks[0].bytes, kTwoMiB);  // both small pieces and the big one's first 2 MiB - 16 KiB
	for (size_t i = 1; i < 8; i++) {
		EXPECT_EQ(plan.chunks[i].at, i * kTwoMiB);
		EXPECT_EQ(plan.chunks[i].bytes, kTwoMiB);
		EXPECT_EQ(plan.chunks[i].count, 1u);
	}
	EXPECT_EQ(plan.chunks[8].bytes, 4 * kPage);
	check_plan(planned, 0, kTwoMiB);
}

TEST(CopyPlanTest, AnyLayoutKeepsTheBytesAndTheLimits)
{
	std::mt19937 rng(7);
	for (int round = 0; round < 300; round++) {
		std::vector<PagePiece> planned = random_pieces(rng);
		uint64_t at = kPage * (rng() % 2048);
		uint64_t total = total_bytes(planned);
		size_t room = total >= kTwoMiB ? kTwoMiB : size_t((total + kPage - 1) & ~(kPage - 1));
		SCOPED_TRACE(testing::Message() << "round " << round << " at " << at);
		check_plan(planned, at, room);
	}
}

TEST(CopyPlanTest, SinglePagesFillWholeChunks)
{
	std::vector<PagePiece> planned;
	for (uint64_t i = 0; i < 3000; i++)  // single pages two apart
		planned.push_back({0, 0x10000000 + 2 * i * kPage, 0x10000000 + (2 * i + 1) * kPage});
	check_plan(planned, 0, kTwoMiB);
	CopyPlan plan = plan_copy(planned, 0, kTwoMiB);
	ASSERT_EQ(plan.chunks.size(), 6u);  // 3000 pages: five chunks of 512, then 440
	EXPECT_EQ(plan.chunks[0].count, 512u);
	EXPECT_EQ(plan.chunks[5].count, 440u);
}

}  // namespace
}  // namespace bpfckpt::dump
