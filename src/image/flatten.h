// Flattening an incremental image: what `watch --keep` does before it deletes the image's ancestors.
#pragma once

#include <string>

#include "common/result.h"

namespace bpfckpt::image {

// Rewrites image `dir` so that it no longer needs its parent: every page its chain resolves to is copied into its
// own page blobs, no vma inherits, zero runs are dropped, parent and parent_id are cleared, and its id is kept (so
// images whose parent is `dir` keep working). Atomic: the new image is built and fsynced in a temporary directory
// beside `dir` (0700, files 0600), swapped in with renameat2(RENAME_EXCHANGE), and the old one removed; on any
// failure `dir` is left as it was. The chain's checksums are verified first. An image without a parent is left
// alone.
Status flatten_image(const std::string& dir);

}  // namespace bpfckpt::image
