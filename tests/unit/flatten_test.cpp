// flatten_image (src/image/flatten.h): the middle of a chain of three is flattened, the oldest image is deleted,
// and the newest still resolves to the same bytes; the flattened image stands alone, keeps its id, and was written
// the way images are (0700, 0600); a flatten that cannot be done leaves the image as it was.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "chain_fixture.h"
#include "common/fs.h"
#include "image/flatten.h"
#include "image/validate.h"

using namespace bpfckpt;
using namespace bpfckpt::image;
using namespace chain_fixture;

namespace {

constexpr uint64_t kA = 0x600000, kB = 0x700000;
constexpr uint64_t P = kPageSize;
constexpr uint64_t kLo = kA, kHi = kB + 16 * P;

// full <- mid <- newest, with overlays and zero runs at every level, and a vma of `mid` that does not inherit.
void write_chain(const TempDir& tmp)
{
	ImageSpec full;
	full.tag = 1;
	full.vmas = {{kA, kA + 64 * P, false, {{kA, 40}, {kA + 48 * P, 16}}, {}},
		     {kB, kB + 16 * P, false, {{kB, 16}}, {}}};
	write_image(tmp / "full", full);
	ImageSpec mid;
	mid.tag = 2;
	mid.parent = "../full";
	mid.parent_tag = 1;
	mid.vmas = {{kA, kA + 64 * P, true, {{kA + 8 * P, 8}, {kA + 44 * P, 2}}, {{kA + 20 * P, 4}}},
		    {kB, kB + 16 * P, false, {{kB + 4 * P, 2}}, {}}};
	write_image(tmp / "mid", mid);
	ImageSpec newest;
	newest.tag = 3;
	newest.parent = "../mid";
	newest.parent_tag = 2;
	newest.vmas = {{kA, kA + 64 * P, true, {{kA + 12 * P, 1}}, {{kA + 30 * P, 2}}},
		       {kB, kB + 16 * P, true, {{kB + 8 * P, 1}}, {}}};
	write_image(tmp / "newest", newest);
}

std::map<uint64_t, std::string> bytes_of(const std::filesystem::path& dir)
{
	auto c = Chain::load(dir.string(), true);
	EXPECT_TRUE(c) << c.error().describe();
	return c ? resolved_bytes(*c, kLo, kHi) : std::map<uint64_t, std::string>{};
}

mode_t mode_of(const std::filesystem::path& p)
{
	struct stat st {};
	stat(p.c_str(), &st);
	return st.st_mode & 07777;
}

TEST(Flatten, MiddleOfThreeThenDeleteTheOldest)
{
	TempDir tmp;
	write_chain(tmp);
	auto newest_before = bytes_of(tmp / "newest");
	auto mid_before = bytes_of(tmp / "mid");
	ASSERT_FALSE(newest_before.empty());
	std::string mid_id = load_image((tmp / "mid").string())->id;

	auto st = flatten_image((tmp / "mid").string());
	ASSERT_TRUE(st) << st.error().describe();
	std::filesystem::remove_all(tmp / "full");

	EXPECT_EQ(bytes_of(tmp / "newest"), newest_before) << "the newest image resolves to other bytes";
	EXPECT_EQ(bytes_of(tmp / "mid"), mid_before) << "the flattened image holds other bytes";

	auto mid = load_image((tmp / "mid").string());
	ASSERT_TRUE(mid) << mid.error().describe();
	EXPECT_EQ(mid->id, mid_id) << "its children name it by id";
	EXPECT_FALSE(mid->parent);
	EXPECT_EQ(mid->parent_id, "");
	for (const Vma& v : mid->processes.at(0).vmas) {
		EXPECT_FALSE(v.inherit);
		EXPECT_TRUE(v.zero.empty());
	}
	// Runs the chain gave back to back are one run in the flattened blob: A is full's 0-8, mid's 8-16 and full's
	// 16-20 as one run, then (after mid's zero run) full's 24-40, mid's 44-46, full's 48-64.
	EXPECT_EQ(mid->processes.at(0).vmas.at(0).pages.size(), 4u);
	EXPECT_EQ(mode_of(tmp / "mid"), 0700u);
	for (const auto& e : std::filesystem::directory_iterator(tmp / "mid"))
		EXPECT_EQ(mode_of(e.path()), 0600u) << e.path();
	EXPECT_EQ(list_names(tmp.path()), (std::vector<std::string>{"mid", "newest"})) << "a temporary directory is left";
}

TEST(Flatten, FullImageIsLeftAlone)
{
	TempDir tmp;
	write_chain(tmp);
	auto before = bpfckpt::read_file((tmp / "full" / "index.json").string());
	ASSERT_TRUE(before);
	ASSERT_TRUE(flatten_image((tmp / "full").string()));
	EXPECT_EQ(bpfckpt::read_file((tmp / "full" / "index.json").string()).value_or(""), *before);
}

TEST(Flatten, BrokenChainLeavesTheImageAsItWas)
{
	TempDir tmp;
	write_chain(tmp);
	std::filesystem::remove_all(tmp / "full");
	auto before = bpfckpt::read_file((tmp / "newest" / "index.json").string());
	ASSERT_TRUE(before);
	auto st = flatten_image((tmp / "newest").string());
	ASSERT_FALSE(st);
	EXPECT_EQ(st.error().exit, ExitCode::bad_image) << st.error().describe();
	EXPECT_EQ(bpfckpt::read_file((tmp / "newest" / "index.json").string()).value_or(""), *before);
	EXPECT_EQ(list_names(tmp.path()), (std::vector<std::string>{"mid", "newest"}));
}

}  // namespace
