#include "common/address_ranges.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace bpfckpt {
namespace {

// The same sets as bitmaps over [0, 64): the reference the range operations are checked against.
std::set<uint64_t> points(const AddressRanges& r)
{
	std::set<uint64_t> out;
	for (auto [s, e] : r)
		for (uint64_t x = s; x < e; x++)
			out.insert(x);
	return out;
}

AddressRanges random_set(std::mt19937& rng)
{
	AddressRanges out;
	for (uint64_t x = 0; x < 64; x++)
		if (rng() % 3 == 0)
			append_range(out, x, x + 1);
	return out;
}

bool well_formed(const AddressRanges& r)
{
	for (size_t i = 0; i < r.size(); i++)
		if (r[i].first >= r[i].second || (i && r[i - 1].second >= r[i].first))
			return false;
	return true;
}

TEST(AddressRanges, OperationsMatchSetsOfPoints)
{
	std::mt19937 rng(7);
	for (int round = 0; round < 2000; round++) {
		AddressRanges a = random_set(rng), b = random_set(rng);
		std::set<uint64_t> pa = points(a), pb = points(b), want_u = pa, want_i, want_d;
		want_u.insert(pb.begin(), pb.end());
		for (uint64_t x : pa)
			(pb.count(x) ? want_i : want_d).insert(x);
		AddressRanges u = unite(a, b), i = intersect(a, b), d = subtract(a, b);
		ASSERT_TRUE(well_formed(u) && well_formed(i) && well_formed(d)) << "round " << round;
		ASSERT_EQ(points(u), want_u) << "round " << round;
		ASSERT_EQ(points(i), want_i) << "round " << round;
		ASSERT_EQ(points(d), want_d) << "round " << round;
	}
}

TEST(AddressRanges, AdjacentRangesMerge)
{
	AddressRanges r;
	append_range(r, 0, 4096);
	append_range(r, 4096, 8192);
	append_range(r, 8192, 8192);  // empty: ignored
	EXPECT_EQ(r, (AddressRanges{{0, 8192}}));
	EXPECT_EQ(subtract({{0, 100}}, {{10, 20}, {30, 40}}), (AddressRanges{{0, 10}, {20, 30}, {40, 100}}));
}

}  // namespace
}  // namespace bpfckpt
