// Writing an image directory so that it is whole or absent: everything goes into a hidden temp directory beside
// the destination (same filesystem), every file is fsynced, then one rename publishes it. An ImageDir destroyed
// before commit() removes what it wrote. Directories are 0700 and files 0600: images hold process memory.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "common/xxhash.h"
#include "image/model.h"

namespace bpfckpt::image {

// One blob file, written sequentially (or, once extended, by several threads at once), checksummed in blob order.
class BlobWriter {
public:
	BlobWriter(std::string image, std::string name, UniqueFd fd);  // image: the destination, for messages
	~BlobWriter();
	BlobWriter(const BlobWriter&) = delete;
	BlobWriter& operator=(const BlobWriter&) = delete;

	Status write(const void* data, size_t len);
	// write() in two halves, for a pipeline where one thread checksums a chunk while another writes the one
	// before: hash() every byte exactly once and in blob order, write_unhashed() the same bytes in the same order.
	void hash(const void* data, size_t len);
	Status write_unhashed(const void* data, size_t len);
	// Pads with zeros up to the next multiple of `align` (page blobs keep every run page-aligned).
	Status pad_to(uint64_t align);
	// Writes below offset(), over bytes written or made by extend_to(), without checksumming: over bytes already
	// hashed the running checksum no longer matches (rehash() before finish()); into a range extend_to() made, the
	// caller hash()es the same bytes in blob order. Safe from several threads at once for ranges that do not
	// overlap.
	Status rewrite(uint64_t at, const void* data, size_t len);
	// Makes the blob `end` bytes long (when it is shorter), for rewrite() to fill: bytes past what was written
	// read as zeros until then.
	Status extend_to(uint64_t end);
	// Reads the whole blob back and checksums it anew.
	Status rehash();
	// Empties the blob, to be written again from the start.
	Status restart();
	// From now on, page-aligned writes go around the page cache (O_DIRECT), when the filesystem allows it: for a
	// blob fsync'd anyway, one pass to the disk instead of filling the page cache and flushing it again, at the
	// disk's speed instead of the speed at which this VM gets memory back from the host (1 GiB: 0.5-0.6 s, against
	// 0.7-2.9 s for write + fsync). rehash() then reads from the disk. The dumper decides when.
	void set_direct(bool on);
	uint64_t offset() const { return offset_; }
	const std::string& name() const { return name_; }
	Blob finish();  // the checksum entry for index.json

private:
	Status write_at(uint64_t at, const char* data, size_t len);
	Status write_failed(int err);

	std::string image_;
	std::string name_;
	UniqueFd fd_;
	UniqueFd direct_fd_;  // the same file opened O_DIRECT, while set_direct(true) and the filesystem takes it
	// The filesystem refused an O_DIRECT write once: not asked again. Set by whichever writer saw it, while others
	// may still be writing through direct_fd_, which is why the fd stays open until set_direct(false).
	std::atomic<bool> direct_refused_ = false;
	uint64_t offset_ = 0;
	XXH3_state_t* hash_;
};

class ImageDir {
public:
	// Refuses a destination that exists and is not an empty directory.
	static Result<std::unique_ptr<ImageDir>> create(const std::string& dest);
	~ImageDir();

	const std::string& temp_path() const { return tmp_; }
	const std::string& dest_path() const { return dest_; }
	Result<std::unique_ptr<BlobWriter>> open_blob(const std::string& name);
	// Writes index.json, fsyncs (unless told not to), renames into place.
	Status commit(const Image& img, bool fsync_data);

private:
	ImageDir(std::string dest, std::string tmp) : dest_(std::move(dest)), tmp_(std::move(tmp)) {}
	std::string dest_;
	std::string tmp_;
	bool committed_ = false;
};

// Reads the bytes a BlobRef names from an image directory (already validated: the ref lies inside its blob).
Result<std::string> read_blob_ref(const std::string& dir, const BlobRef& ref);

// Validates a blob or file name read from an image: no path separators, no dot-dot, no control characters.
bool is_safe_name(const std::string& name);

}  // namespace bpfckpt::image
