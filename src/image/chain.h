// Incremental images (issue 5; the format is /work/notes/incremental.md): an image may name a parent image, and a
// process's private memory is then what the image saves itself, over what the parent gives for the same addresses
// (recursively), minus what the image marks zero. This file loads such a chain, checks every link, and resolves
// where each page of a process comes from. Restore, show, flatten and core all read memory through resolve().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::image {

// Links followed before a chain is refused: far more than `watch --keep` keeps, few enough to bound the work.
inline constexpr size_t kMaxChainDepth = 4096;
inline constexpr uint32_t kNoProcess = UINT32_MAX;

struct ChainLink {
	std::string dir;  // the image directory, canonical (symlinks and ".." resolved)
	Image image;
	// For each of image.processes: the index of the same process (pid, start_time and mm_key) in the next older
	// link, or kNoProcess (no older link, or no such process there).
	std::vector<uint32_t> parent_process;
};

// Pages [start, start + npages * kPageSize) of a process come from bytes [blob_offset, ...) of the page blob of
// process `process` of link `level` (0 is the newest image). Absent pages (never saved, or zero) are in no run.
struct ResolvedRun {
	uint64_t start = 0;
	uint64_t npages = 0;
	uint32_t level = 0;
	uint32_t process = 0;  // index into that link's image.processes
	uint64_t blob_offset = 0;
};

// Where one process's pages come from, in pages.
struct PageCounts {
	uint64_t own = 0;        // saved in the newest image itself
	uint64_t inherited = 0;  // resolved from an older image
	uint64_t zero = 0;       // marked zero in the newest image (zero runs)
};

class Chain {
public:
	// Loads `dir` and every ancestor (each parent path relative to its child's directory), validating each image
	// as load_image does (and verifying its blob checksums when asked), then every link: the parent exists, its id
	// is the child's parent_id, no image appears twice, at most kMaxChainDepth images, and every process that
	// inherits has the same process (pid, start_time, mm_key) in its parent. Failures are ExitCode::bad_image
	// naming the image and the link (io for a read error). max_depth: a caller may allow fewer images.
	static Result<Chain> load(const std::string& dir, bool verify_checksums, size_t max_depth = kMaxChainDepth);
	// A chain of one: an image that names no parent, already checked as load_image checks it, read from dir.
	static Chain of(Image img, std::string dir) { return Chain({{std::move(dir), std::move(img), {}}}); }

	const Image& newest() const { return links_.front().image; }
	const std::string& newest_dir() const { return links_.front().dir; }
	size_t depth() const { return links_.size(); }
	const ChainLink& link(size_t level) const { return links_.at(level); }
	// The page blob a run reads from: "<dir>/<pages_blob>".
	std::string blob_path(const ResolvedRun& r) const;

	// The pages of process `pid` of the newest image in [start, end) (page-aligned), with inherited pages taken
	// from the ancestors, overlaid by newer pages and cut by zero runs: sorted by address, disjoint, adjacent runs
	// from one blob merged. Cost: proportional to the runs involved, not to the pages.
	Result<std::vector<ResolvedRun>> resolve(uint32_t pid, uint64_t start, uint64_t end) const;
	// The same, appended to `out`: a caller resolving many ranges reuses one vector, whose memory is then already
	// faulted in (a first touch costs more than resolving: 262144 runs are 10 MiB).
	Status resolve_into(uint32_t pid, uint64_t start, uint64_t end, std::vector<ResolvedRun>& out) const;

	// own / inherited / zero pages of process `pid` of the newest image, over all of its vmas.
	Result<PageCounts> count_pages(uint32_t pid) const;

private:
	explicit Chain(std::vector<ChainLink> links) : links_(std::move(links)) {}
	Result<uint32_t> newest_index(uint32_t pid) const;

	std::vector<ChainLink> links_;  // [0] is the image loaded, [i + 1] the parent of [i]
};

}  // namespace bpfckpt::image
