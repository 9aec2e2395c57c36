// core::ImagePages, the one place a core's bytes come from: private page runs by address, shared memory runs by
// offset in their object, holes for everything else (and for addresses no vma covers), bytes outside what it holds
// left as they were. Here over a chain of one image; incremental_test.cpp writes the core of an incremental image.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/fs.h"
#include "core/image_pages.h"

using namespace bpfckpt;
using namespace bpfckpt::core;

namespace {

constexpr uint64_t kPage = image::kPageSize;

// Page i of a blob is filled with the byte `first + i`.
std::string pages_of(char first, size_t n)
{
	std::string s;
	for (size_t i = 0; i < n; i++)
		s += std::string(kPage, char(first + i));
	return s;
}

class ImagePagesTest : public testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/bpfckpt-image-pages-XXXXXX";
		ASSERT_TRUE(mkdtemp(tmpl));
		dir_ = tmpl;
		ASSERT_TRUE(write_file(dir_ + "/pages-1", pages_of('a', 3), 0600));
		ASSERT_TRUE(write_file(dir_ + "/shm-0", pages_of('A', 2), 0600));

		image::Vma a;
		a.start = 0x10000;
		a.end = 0x20000;
		a.kind = "anon";
		a.pages = {{0x11000, 2, 0}, {0x15000, 1, 2 * kPage}};
		image::Vma b;  // offset 0x2000 into shmem 0
		b.start = 0x30000;
		b.end = 0x34000;
		b.kind = "shmem";
		b.shared = true;
		b.offset = 0x2000;
		b.shmem = 0;
		proc_.pid = 42;
		proc_.vmas = {a, b};
		proc_.pages_blob = "pages-1";
		image::Shmem obj;
		obj.size = 0x6000;
		obj.blob = "shm-0";
		obj.pages = {{0x2000, 1, 0}, {0x4000, 1, kPage}};
		img_.shmem = {obj};
		img_.processes = {proc_};
	}
	void TearDown() override { std::filesystem::remove_all(dir_); }

	std::string dir_;
	image::Image img_;
	image::Process proc_;
};

std::string page(char c)
{
	return std::string(kPage, c);
}

// The holes read() returned, as {start, end} pairs, for one EXPECT_EQ.
using Spans = std::vector<std::pair<uint64_t, uint64_t>>;

Spans spans(const std::vector<Span>& holes)
{
	Spans out;
	for (const Span& h : holes)
		out.emplace_back(h.start, h.end);
	return out;
}

TEST_F(ImagePagesTest, PrivateRunsAndHoles)
{
	image::Chain chain = image::Chain::of(img_, dir_);
	ImagePages pages(chain);
	std::string out(0x8000, '\xee');
	auto holes = pages.read(proc_, 0x10000, out.size(), out.data());
	ASSERT_TRUE(holes) << holes.error().describe();
	EXPECT_EQ(spans(*holes), (Spans{{0x10000, 0x11000}, {0x13000, 0x15000}, {0x16000, 0x18000}}));
	EXPECT_EQ(out.substr(0x0000, kPage), page('\xee')) << "a hole is left as it was";
	EXPECT_EQ(out.substr(0x1000, kPage), page('a'));
	EXPECT_EQ(out.substr(0x2000, kPage), page('b'));
	EXPECT_EQ(out.substr(0x5000, kPage), page('c'));
	EXPECT_EQ(out.substr(0x6000, kPage), page('\xee'));
}

TEST_F(ImagePagesTest, RangeStartingInsideARun)
{
	image::Chain chain = image::Chain::of(img_, dir_);
	ImagePages pages(chain);
	std::string out(kPage, '\xee');
	auto holes = pages.read(proc_, 0x12000, kPage, out.data());
	ASSERT_TRUE(holes) << holes.error().describe();
	EXPECT_TRUE(holes->empty());
	EXPECT_EQ(out, page('b'));
}

TEST_F(ImagePagesTest, SharedMemoryByOffsetInItsObject)
{
	image::Chain chain = image::Chain::of(img_, dir_);
	ImagePages pages(chain);
	std::string out(0x4000, '\xee');
	auto holes = pages.read(proc_, 0x30000, out.size(), out.data());
	ASSERT_TRUE(holes) << holes.error().describe();
	// Address 0x30000 is offset 0x2000 of the object (held), 0x32000 is 0x4000 (held).
	EXPECT_EQ(spans(*holes), (Spans{{0x31000, 0x32000}, {0x33000, 0x34000}}));
	EXPECT_EQ(out.substr(0x0000, kPage), page('A'));
	EXPECT_EQ(out.substr(0x2000, kPage), page('B'));
}

TEST_F(ImagePagesTest, AcrossVmasAndTheGapBetween)
{
	image::Chain chain = image::Chain::of(img_, dir_);
	ImagePages pages(chain);
	std::string out(0x16000, '\xee');  // [0x1f000, 0x35000)
	auto holes = pages.read(proc_, 0x1f000, out.size(), out.data());
	ASSERT_TRUE(holes) << holes.error().describe();
	// The end of vma a and the gap make one hole; b's last page and what lies past b's end another.
	EXPECT_EQ(spans(*holes), (Spans{{0x1f000, 0x30000}, {0x31000, 0x32000}, {0x33000, 0x35000}}));
	EXPECT_EQ(out.substr(0x11000, kPage), page('A'));
}

TEST_F(ImagePagesTest, TruncatedBlobIsAnError)
{
	ASSERT_EQ(truncate((dir_ + "/pages-1").c_str(), off_t(kPage)), 0);
	image::Chain chain = image::Chain::of(img_, dir_);
	ImagePages pages(chain);
	std::string out(kPage, '\0');
	auto holes = pages.read(proc_, 0x12000, kPage, out.data());
	ASSERT_FALSE(holes);
	EXPECT_EQ(holes.error().exit, ExitCode::bad_image);
	EXPECT_NE(holes.error().msg.find("pages-1"), std::string::npos) << holes.error().msg;
}

}  // namespace
