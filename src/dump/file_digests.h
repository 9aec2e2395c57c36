// Content digests of the files an image names (mapped files, regular files at fds), so that restore can recognise
// them on another machine (restore --root) or after a copy replaced them. Each file is read through the dumped
// process's own handle on it (/proc/PID/map_files, /proc/PID/fd), so a path renamed or replaced since it was opened
// cannot give the digest of another file; and each distinct (dev, ino) is digested once per dump.
#pragma once

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::dump {

// Fills Vma::digest and File::digest. Runs while the tree is frozen: every process still holds its files.
// Returns the seconds it took.
Result<double> add_file_digests(image::Image& img);

}  // namespace bpfckpt::dump
