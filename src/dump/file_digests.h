// Content digests of the files an image names (mapped files, regular files at fds), so that restore can recognise
// them on another machine (restore --root) or after a copy replaced them. Each file is read through the dumped
// process's own handle on it (/proc/PID/map_files, /proc/PID/fd), so a path renamed or replaced since it was opened
// cannot give the digest of another file; and each distinct (dev, ino) is digested once per dump.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "common/fd.h"
#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::dump {

class FileDigests {
public:
	// While the tree is frozen, when every process still holds its files: opens each distinct file once. Cheap
	// (an open per file), so that reading and hashing them, up to 1 GiB a file, can wait for the thaw.
	Status open(const image::Image& img);
	// Digests what open() opened (the same files, whatever the processes did since) and fills Vma::digest and
	// File::digest. Returns the seconds it took.
	Result<double> fill(image::Image& img);

private:
	using Key = std::pair<uint64_t, uint64_t>;  // (dev, ino)
	Status open_one(const std::string& handle, const std::string& name, uint64_t dev, uint64_t ino);

	struct Opened {
		UniqueFd fd;
		std::string name;  // for messages
	};
	std::map<Key, Opened> opened_;
};

}  // namespace bpfckpt::dump
