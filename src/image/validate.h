// What restore runs before it trusts an image: index.json is parsed strictly (json.h), then every count, range,
// reference between objects and blob is checked, so that nothing later has to: a vma that restore maps is aligned,
// sorted and in user space, a page run it reads lies inside its vma and inside its blob, an index it follows points
// at an object that exists. Any failure is ExitCode::bad_image with a message naming the object.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "bpfckpt/records.h"
#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::image {

// Blob name -> size in bytes, as found in the image directory (or made up, for the fuzz target).
using BlobSizes = std::map<std::string, uint64_t>;

// Bounds no real image comes near; beyond them an index is hostile or corrupt, and refused before anything
// allocates or loops in proportion to its numbers.
inline constexpr uint64_t kMaxIndexBytes = 64ull << 20;
inline constexpr size_t kMaxProcesses = 32768;
inline constexpr size_t kMaxVmasPerProcess = 100000;
inline constexpr size_t kMaxThreadsPerProcess = 65536;
inline constexpr size_t kMaxFdsOrFiles = 1u << 20;  // fds per process, files, pipes, shmem objects, blobs
inline constexpr uint32_t kMaxPid = 4194304;        // PID_MAX_LIMIT on 64-bit kernels
inline constexpr uint64_t kUserAddressEnd = 0x800000000000;  // x86_64, 4-level page tables
inline constexpr uint64_t kMaxPipeCapacity = 1ull << 30;
inline constexpr uint64_t kMaxRegsetBytes = 1ull << 16;  // xstate, fpregs
inline constexpr size_t kMaxParentPath = 4096;
inline constexpr size_t kMaxPosixTimers = BCK_MAX_POSIX_TIMERS;  // what a dump reports at most
inline constexpr size_t kMaxGroups = BCK_MAX_GROUPS;  // supplementary groups: what a dump saves at most
inline constexpr size_t kMaxQueuedSignals = 1024;  // per queue: the restore shim carries them in its plan
inline constexpr uint64_t kSiginfoBytes = 128;     // sizeof(siginfo_t)

// Reads DIR/index.json (refusing one over kMaxIndexBytes), parses it, validates it against the blobs in DIR and
// verifies every blob's checksum.
Result<Image> load_image(const std::string& dir);

// The same, but without reading the blobs: every check except the checksums. For callers that verify later, or
// only look (show).
Result<Image> load_image_unverified(const std::string& dir);

// Every check but the checksums, against the blobs found in DIR (regular files, not symlinks).
Status validate_image(const Image& img, const std::string& dir);

// The same checks against blob sizes given by the caller; touches no disk.
Status validate_image(const Image& img, const BlobSizes& blob_sizes);

// XXH3_64bits of every blob in blobs[] equals its recorded xxh3. Reads every byte, so callers that trust the
// storage may skip it; run it only on an image validate_image accepted.
Status verify_blob_checksums(const Image& img, const std::string& dir);

// A second, deliberately naive check of the invariants restore's memory code relies on (vmas sorted and disjoint,
// every page run inside its vma and inside its blob), written apart from validate_image so that the fuzz target can
// hold one against the other.
bool image_invariants_hold(const Image& img, const BlobSizes& blob_sizes);

}  // namespace bpfckpt::image
