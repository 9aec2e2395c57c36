// Where a process's memory comes from when a core is written: the one place that turns "the bytes of
// [addr, addr+len) of process P" into reads of blobs. Private pages are resolved through the image's chain (an
// incremental image takes what it did not save from its parents); shared memory comes from the newest image.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "image/chain.h"
#include "image/model.h"

namespace bpfckpt::core {

// An address range [start, end).
struct Span {
	uint64_t start = 0;
	uint64_t end = 0;
};

class ImagePages {
public:
	explicit ImagePages(const image::Chain& chain) : chain_(chain) {}

	// Copies what the image holds for [addr, addr+len) of p (a process of the newest image) into out[0, len): its
	// private pages and, for shared memory, the pages of the object it maps. Returns the ranges the image does not
	// hold, in address order; their bytes in out are left as they were. Addresses outside every vma are such
	// ranges too.
	Result<std::vector<Span>> read(const image::Process& p, uint64_t addr, uint64_t len, char* out);

private:
	Result<int> blob_fd(const std::string& path);
	Status read_blob(const std::string& path, uint64_t offset, char* out, uint64_t len);
	Status copy_private(const image::Process& p, Span want, uint64_t out_base, char* out, std::vector<Span>& holes);
	Status copy_shared(const image::Shmem& obj, uint64_t key_shift, Span want, uint64_t out_base, char* out,
			   std::vector<Span>& holes);

	const image::Chain& chain_;
	std::map<std::string, UniqueFd> blobs_;  // by path, opened once each
	std::vector<image::ResolvedRun> runs_;   // reused: resolving many chunks allocates once
};

}  // namespace bpfckpt::core
