// libFuzzer target: the input is index.json text. Whatever it holds, parsing and validation must return an error
// or an image, never crash, hang or allocate without bound; and every image validate_image accepts must also pass
// the separately written image_invariants_hold, or validate_image let something through that restore would trust.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "image/json.h"
#include "image/validate.h"

using namespace bpfckpt::image;

namespace {

// Real indexes are far larger than this only for huge trees; 1 MiB is plenty to reach every check and keeps each
// run's memory and time bounded.
constexpr size_t kMaxInput = 1u << 20;

// Blobs "on disk" without a disk: the sizes blobs[] claims, so that the bounds checks are what gets explored. The
// xxh3 field, unused here, lets the fuzzer reach the other paths: a blob whose xxh3 starts with "00" is missing,
// one whose xxh3 starts with "ff" is a byte longer than listed.
BlobSizes blob_sizes_for(const Image& img)
{
	BlobSizes sizes;
	for (const Blob& b : img.blobs) {
		if (b.xxh3.starts_with("00"))
			continue;
		sizes[b.name] = b.xxh3.starts_with("ff") ? b.size + 1 : b.size;
	}
	return sizes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	if (size > kMaxInput)
		return -1;  // not added to the corpus
	auto img = parse_index(std::string(reinterpret_cast<const char*>(data), size));
	if (!img)
		return 0;
	BlobSizes sizes = blob_sizes_for(*img);
	if (!validate_image(*img, sizes))
		return 0;
	if (!image_invariants_hold(*img, sizes)) {
		std::fputs("fuzz_image: validate_image accepted an image that breaks the invariants\n", stderr);
		std::abort();
	}
	return 0;
}
