// xxHash, with the bulk functions dispatched at run time to the widest vector unit the CPU has (AVX-512 or AVX2,
// else SSE2). Debian's libxxhash exports the dispatching variants; plain XXH3_*_update is its SSE2 build: 65 ms
// per GiB here against 15-19 with AVX2/AVX-512, and blob checksums sit on the path of every dump and restore.
// The hashes are the same either way.
#pragma once

#include <xxhash.h>
#include <xxh_x86dispatch.h>  // redefines XXH3_64bits, XXH3_64bits_update, XXH3_128bits_update, ... to *_dispatch
