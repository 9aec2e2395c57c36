// Pages an image leaves out on purpose because they can be had again where the core is written: the pages of a file
// mapping the process never wrote are the file's, and the vDSO is the kernel's. A core without them would show
// zeros for the program's code and constants (x/i, x/s of a string literal), so they are filled in when the file
// (or the kernel) is still the one the dump saw.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "core/image_pages.h"
#include "image/model.h"

namespace bpfckpt::core {

class BackingPages {
public:
	explicit BackingPages(const image::Image& img) : img_(img) {}

	// Whether v's left-out pages can be filled here: a file mapping whose path holds a regular file of the size and
	// mtime the dump recorded, or the vDSO when this kernel is the image's (same release, same vDSO size).
	// Warns once per file that cannot serve.
	bool available(const image::Vma& v);

	// Fills the holes (inside v, from ImagePages::read) into out, where out[0] is address out_base. Only for a
	// vma available() accepted. Past the end of the file, pages read as zeros, as the mapping would show them.
	Status fill(const image::Vma& v, const std::vector<Span>& holes, uint64_t out_base, char* out);

private:
	struct File {
		UniqueFd fd;
		uint64_t size = 0;
		int64_t mtime_sec = 0;
		uint32_t mtime_nsec = 0;
		bool warned = false;
	};
	File& open_file(const std::string& path);
	bool vdso_available(const image::Vma& v);

	const image::Image& img_;
	std::map<std::string, File> files_;
	bool vdso_looked_up_ = false;
	const char* vdso_ = nullptr;  // our own [vdso], when it can stand in for the image's
	uint64_t vdso_size_ = 0;
};

}  // namespace bpfckpt::core
