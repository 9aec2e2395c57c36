// Open files for restore. The restore master opens every open file description of the image once (regular files
// at their offsets, devices, both ends of each pipe with its bytes written back) at high fd numbers, before the
// process tree is forked: every restored process inherits them, so fds that shared an open file (one offset) in
// the dump share one again, across processes too. Each process then dup2()s what it needs into place.
#pragma once

#include <map>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "image/model.h"
#include "restore/locate.h"

namespace bpfckpt::restore {

struct MasterFiles {
	int base = 0;                   // every fd the master opens is >= base, above all saved fd numbers
	std::vector<int> by_file;       // image file id -> master fd
	std::vector<int> by_shmem;      // image shmem id -> master fd of the recreated object
	std::vector<int> all;           // every master fd, to close after dup2
};

// Opens everything; `dir` is the image directory (pipe contents live in blobs).
// inherit: external files by key -> the fd of ours that stands for them (--inherit-fd); the rest get our stdin
// (read ends) or stdout. look: where regular files are found, and how they are checked (locate.h).
Result<MasterFiles> open_master_files(const image::Image& img, const std::string& dir,
				      const std::map<std::string, int>& inherit, const FileLookup& look);

// In a restored process: puts its fds in place and closes every master fd it does not keep.
Status install_fds(const image::Process& p, const MasterFiles& mf, const std::vector<int>& keep);

// Reopens a mapped file for the shim, checking it is still the file that was dumped.
Result<UniqueFd> open_mapped_file(const image::Vma& vma, const FileLookup& look);

// Moves fd to a number >= base (F_DUPFD_CLOEXEC), closing the original.
Result<int> move_high(int fd, int base);

}  // namespace bpfckpt::restore
