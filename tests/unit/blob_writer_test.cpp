// BlobWriter with set_direct(true): whole pages from page-aligned buffers at page-aligned offsets go around the page
// cache, everything else through it, and the blob reads back (and checksums) exactly as if all of it had gone one
// way. Written under /var/tmp, which is on disk here (on tmpfs the page cache is the file, and nothing goes around).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "common/fs.h"
#include "common/xxhash.h"
#include "image/image_dir.h"
#include "support/page_cache.h"
#include "support/temp_dir.h"

using namespace bpfckpt;
using namespace bpfckpt::image;
using test_support::cached_pages;

namespace {

// `pages` whole pages of bytes made from `seed` (no two neighbouring pages alike), in a page-aligned allocation
// (what O_DIRECT needs).
struct Pages {
	explicit Pages(size_t pages, char seed) : len(pages * kPageSize)
	{
		p = static_cast<char*>(aligned_alloc(kPageSize, len));
		for (size_t i = 0; i < len; i++)
			p[i] = char(seed + i * 7 / kPageSize + i % 13);
	}
	~Pages() { free(p); }
	Pages(const Pages&) = delete;
	Pages& operator=(const Pages&) = delete;
	std::string str(size_t from = 0, size_t n = std::string::npos) const
	{
		return std::string(p, len).substr(from, n);
	}
	char* p;
	size_t len;
};

class BlobWriterTest : public testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_FALSE(root_.path().empty()) << "mkdtemp under /var/tmp failed";
		auto dir = ImageDir::create(root_ / "img");
		ASSERT_TRUE(dir) << dir.error().describe();
		dir_ = std::move(*dir);
	}
	void TearDown() override { dir_.reset(); }  // before root_ goes

	test_support::TempDir root_{"/var/tmp"};
	std::unique_ptr<ImageDir> dir_;
};

TEST_F(BlobWriterTest, DirectAndCachedWritesMakeOneBlob)
{
	auto opened = dir_->open_blob("pages-1.bin");
	ASSERT_TRUE(opened) << opened.error().describe();
	BlobWriter& blob = **opened;
	blob.set_direct(true);

	Pages big(16, 'a'), more(4, 'k'), over(2, 'x');
	std::string expect;
	// Pages 0-15: direct. Then 100 bytes (cached), padding to page 17 (cached), pages 17-20 (direct).
	ASSERT_TRUE(blob.write(big.p, big.len));
	expect += big.str();
	ASSERT_TRUE(blob.write(more.p + 5, 100));
	expect += more.str(5, 100);
	ASSERT_TRUE(blob.pad_to(kPageSize));
	expect.resize(17 * kPageSize, '\0');
	ASSERT_TRUE(blob.write(more.p, more.len));
	expect += more.str();
	// Over a direct page (direct) and over the cached tail, unaligned (cached).
	ASSERT_TRUE(blob.rewrite(3 * kPageSize, over.p, over.len));
	expect.replace(3 * kPageSize, over.len, over.str());
	ASSERT_TRUE(blob.rewrite(16 * kPageSize + 50, over.p + 1, 30));
	expect.replace(16 * kPageSize + 50, 30, over.str(1, 30));
	ASSERT_EQ(blob.offset(), expect.size());

	std::string path = dir_->temp_path() + "/pages-1.bin";
	std::vector<bool> cached = cached_pages(path);
	ASSERT_EQ(cached.size(), 21u);
	EXPECT_FALSE(cached[0]) << "an aligned write went through the page cache";
	EXPECT_FALSE(cached[3]) << "an aligned rewrite went through the page cache";
	EXPECT_FALSE(cached[20]) << "an aligned write after the cached ones went through the page cache";

	auto read = read_file(path);
	ASSERT_TRUE(read) << read.error().describe();
	EXPECT_TRUE(*read == expect) << "the blob's bytes differ from what was written";
	ASSERT_TRUE(blob.rehash());
	Blob done = blob.finish();
	EXPECT_EQ(done.size, expect.size());
	EXPECT_EQ(done.xxh3, fmt::format("{:016x}", XXH3_64bits(expect.data(), expect.size())));
}

TEST_F(BlobWriterTest, OffWritesThroughThePageCache)
{
	auto opened = dir_->open_blob("pages-2.bin");
	ASSERT_TRUE(opened) << opened.error().describe();
	BlobWriter& blob = **opened;
	blob.set_direct(true);
	blob.set_direct(false);
	Pages big(8, 'q');
	ASSERT_TRUE(blob.write(big.p, big.len));
	std::vector<bool> cached = cached_pages(dir_->temp_path() + "/pages-2.bin");
	ASSERT_EQ(cached.size(), 8u);
	EXPECT_TRUE(cached[0] && cached[7]) << "set_direct(false) still wrote around the page cache";
	EXPECT_EQ(blob.finish().xxh3, fmt::format("{:016x}", XXH3_64bits(big.p, big.len)));
}

// What the dump's two copy workers do: the blob extended up front, its new range written out of order from two
// threads, hashed in blob order by the caller. The blob is the same as one written in order.
TEST_F(BlobWriterTest, ExtendedRangeWrittenFromTwoThreads)
{
	auto opened = dir_->open_blob("pages-3.bin");
	ASSERT_TRUE(opened) << opened.error().describe();
	BlobWriter& blob = **opened;
	blob.set_direct(true);
	Pages head(1, 'h');
	ASSERT_TRUE(blob.write(head.p, head.len));
	constexpr size_t kParts = 8, kPartPages = 4;
	Pages data(kParts * kPartPages, 'd');
	uint64_t base = blob.offset();
	ASSERT_EQ(base, head.len);
	ASSERT_TRUE(blob.extend_to(base + data.len));
	ASSERT_EQ(blob.offset(), head.len + data.len);
	auto part = [&](size_t i) {
		size_t off = i * kPartPages * kPageSize;
		return std::pair{base + off, data.p + off};
	};
	// One thread writes the odd parts from the last down, this one the even parts from the first up.
	Status odd;
	std::thread other([&] {
		for (size_t i = kParts - 1; i < kParts && odd; i -= 2)
			odd = blob.rewrite(part(i).first, part(i).second, kPartPages * kPageSize);
	});
	for (size_t i = 0; i < kParts; i += 2)
		ASSERT_TRUE(blob.rewrite(part(i).first, part(i).second, kPartPages * kPageSize));
	other.join();
	ASSERT_TRUE(odd) << odd.error().describe();
	blob.hash(data.p, data.len);

	std::string expect = head.str() + data.str();
	auto read = read_file(dir_->temp_path() + "/pages-3.bin");
	ASSERT_TRUE(read) << read.error().describe();
	EXPECT_TRUE(*read == expect) << "the blob's bytes differ from what was written";
	EXPECT_EQ(blob.finish().xxh3, fmt::format("{:016x}", XXH3_64bits(expect.data(), expect.size())));
}

TEST_F(BlobWriterTest, WritePastTheExtendedEndIsRefused)
{
	auto opened = dir_->open_blob("pages-4.bin");
	ASSERT_TRUE(opened) << opened.error().describe();
	BlobWriter& blob = **opened;
	Pages data(2, 'r');
	uint64_t at = blob.offset();
	ASSERT_TRUE(blob.extend_to(at + kPageSize));
	Status past = blob.rewrite(at, data.p, data.len);
	ASSERT_FALSE(past);
	EXPECT_NE(past.error().describe().find("past the end of pages-4.bin"), std::string::npos)
		<< past.error().describe();
	EXPECT_TRUE(blob.rewrite(at, data.p, kPageSize));
}

}  // namespace
