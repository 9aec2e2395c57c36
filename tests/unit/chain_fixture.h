// Synthetic incremental image chains on disk, for chain_test and flatten_test. Every image holds one process (pid
// 100) whose vmas and page runs a test spells out; each saved page is filled with 64-bit words (tag << 48 | page
// number), the tag naming the image that saved it, so that a test can tell from the bytes which image a resolved
// page came from and that its blob offset was right.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "image/chain.h"
#include "image/model.h"
#include "support/temp_dir.h"

namespace chain_fixture {

using bpfckpt::image::Image;

inline constexpr uint32_t kPid = 100;

struct VmaSpec {
	uint64_t start = 0, end = 0;
	bool inherit = false;
	std::vector<std::pair<uint64_t, uint64_t>> pages;  // own runs: (start, npages)
	std::vector<std::pair<uint64_t, uint64_t>> zero;   // zero runs: (start, npages)
};

struct ImageSpec {
	uint16_t tag = 1;                   // written into every page this image saves
	std::string id;                     // empty: derived from the tag
	std::optional<std::string> parent;  // relative to the image's own directory
	std::string parent_id;              // empty with a parent: the id derived from parent_tag
	uint16_t parent_tag = 0;
	uint32_t pid = kPid;
	uint64_t start_time = 1000;
	uint64_t mm_key = 0xabc;
	std::vector<VmaSpec> vmas;
};

// The id an image with this tag gets when ImageSpec::id is empty.
std::string id_for(uint16_t tag);

// The word every 8 bytes of a page saved by image `tag` at `addr` holds.
uint64_t page_word(uint16_t tag, uint64_t addr);

// An image as written, with the tag its pages carry.
struct Written {
	Image image;
	uint16_t tag = 0;
};

// Writes the image to `dir` (which must not exist) with ImageDir: 0700, blobs checksummed, index.json last.
Written write_image(const std::filesystem::path& dir, const ImageSpec& spec);

// The tag of the image each present page of pid kPid in [start, end) comes from, computed page by page from the
// images' models (newest first), the naive way the contract reads: a page is the newest image's own, or absent if
// zero, or the parent's if the vma inherits, or absent.
std::map<uint64_t, uint16_t> naive_tags(const std::vector<Written>& newest_first, uint64_t start, uint64_t end);

// What resolve() gives, page by page, as the tag read from the first word of each page's bytes in its blob; a word
// that is not page_word(tag, addr) for its address is reported as tag 0xffff.
std::map<uint64_t, uint16_t> resolved_tags(const bpfckpt::image::Chain& chain, uint64_t start, uint64_t end);

// Every resolved page's bytes by address, for comparing two chains that must give the same memory.
std::map<uint64_t, std::string> resolved_bytes(const bpfckpt::image::Chain& chain, uint64_t start, uint64_t end);

// The names in a directory, hidden ones too, sorted.
std::vector<std::string> list_names(const std::filesystem::path& dir);

// A temporary directory removed with what it holds.
using TempDir = test_support::TempDir;

}  // namespace chain_fixture
