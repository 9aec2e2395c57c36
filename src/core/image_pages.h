// Where a process's memory comes from when a core is written: the one place that turns "the bytes of
// [addr, addr+len) of process P" into reads of the image's blobs. Everything else in src/core asks through
// ImagePages::read, so that incremental images (pages from a chain of parent images) only have to change this file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::core {

// An address range [start, end).
struct Span {
	uint64_t start = 0;
	uint64_t end = 0;
};

class ImagePages {
public:
	// img must have passed image::load_image: every page run lies inside its vma and its blob.
	ImagePages(const image::Image& img, std::string dir) : img_(img), dir_(std::move(dir)) {}

	// Whether read() can serve this image: not yet one that takes pages from a parent image (incremental).
	static Status can_read(const image::Image& img, const std::string& dir);

	// Copies what the image holds for [addr, addr+len) of p into out[0, len): its private pages and, for shared
	// memory, the pages of the object it maps. Returns the ranges the image does not hold, in address order; their
	// bytes in out are left as they were. Addresses outside every vma are such ranges too.
	Result<std::vector<Span>> read(const image::Process& p, uint64_t addr, uint64_t len, char* out);

private:
	Result<int> blob_fd(const std::string& name);
	Status copy_runs(const std::vector<image::PageRun>& runs, const std::string& blob, uint64_t key_shift,
			 Span want, uint64_t out_base, char* out, std::vector<Span>& holes);

	const image::Image& img_;
	std::string dir_;
	std::map<std::string, UniqueFd> blobs_;  // opened once each
};

}  // namespace bpfckpt::core
