// What an image records to recognise a file on another machine, where inode numbers and mtimes differ: a digest of
// its content, written "SCHEME:HEX" (as OCI digests are), with one of two schemes:
//   build_id:HEX    ELF files with a GNU build-id note. The linker computes it over the whole output, so it names
//                   the content; reading it costs a few small reads however large the binary (libLLVM: 100+ MiB).
//                   Caveat: a binary edited in place without relinking (a same-length patch) keeps its build-id;
//                   the size must match too, which catches strip and most edits.
//   xxh3_128:HEX    everything else: XXH3_128bits of the whole file, at page-cache speed.
// Files over kMaxHashedBytes get no digest: hashing a large mapped data set (a model, a database) whole would read
// gigabytes from disk while the dumped tree is frozen, for mappings that often touch a fraction of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace bpfckpt {

inline constexpr uint64_t kMaxHashedBytes = 1ull << 30;

// The digest of the regular file open (readable) at fd; nullopt when it is too large to hash.
Result<std::optional<std::string>> file_digest(int fd);

// The digest of fd by the scheme `recorded` uses (an ELF without a build-id gets "build_id:", which matches no
// recorded id), so that a file is compared with what the image holds for it.
Result<std::string> file_digest_like(int fd, std::string_view recorded);

// "build_id:" + 2..128 lower-case hex digits (an even count), or "xxh3_128:" + 32.
bool is_valid_digest(std::string_view digest);

}  // namespace bpfckpt
