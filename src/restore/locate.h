// Finding the files an image names on the machine that restores it, and making sure each is the file that was
// dumped. Without --root a file is where the image says, and a mapped file or the executable must be the same inode
// with the same size and mtime, or else have the same size and content digest (a copy that replaced it). With
// --root DIR a path is first resolved beneath DIR (openat2 RESOLVE_IN_ROOT: symlinks and ".." cannot leave it), then,
// when it is not there, at its own path on this machine (system libraries the copied tree does not hold); either way
// it must have the recorded size and content digest, since inodes and mtimes differ between machines.
// Restore (in the master before it forks, and again in each restorer as it opens) and `restore --check` use this one
// implementation.
#pragma once

#include <sys/stat.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "common/fd.h"
#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::restore {

// What the image says a file is.
struct FileIdentity {
	std::string what;  // "mapped file", "file", "executable", "cwd", "root": the start of every message
	std::string path;
	uint64_t ino = 0, size = 0;
	int64_t mtime_sec = 0;
	uint32_t mtime_nsec = 0;
	std::optional<std::string> digest;
	bool verify = true;      // false: opened by path alone (fds without --root, as restore always did)
	bool directory = false;  // cwd, root, directory fds: must be a directory, nothing more
};

FileIdentity identity_of(const image::Vma& v);
FileIdentity identity_of(const image::File& f, bool under_root);
// The executable, with the identity of the vma that maps it (unverified when none does).
FileIdentity exe_identity(const image::Process& p);
FileIdentity dir_identity(const std::string& what, const std::string& path);
// Mappings of files that exist on disk (not memfds, not shared anonymous memory).
bool maps_file_on_disk(const image::Vma& v);

// How a file was found.
struct Located {
	UniqueFd fd;
	std::string where;        // "under /r" or "on this machine": for messages
	bool outside_root = false;  // --root given, but found at its own path on this machine
	bool by_content = false;    // accepted by size and digest, not by inode and mtime
};

class FileLookup {
public:
	// root: --root, or "" for none.
	static Result<FileLookup> open(const std::string& root);

	bool has_root() const { return root_fd_.get() >= 0; }
	const std::string& root() const { return root_; }

	// Opens id.path with `flags` (O_CLOEXEC added) and checks it is the dumped file; errors name the file and why.
	Result<Located> open(const FileIdentity& id, int flags) const;

private:
	Result<Located> find(const std::string& path, int flags) const;
	Status verify(Located& loc, const FileIdentity& id) const;
	Result<std::string> digest_of(int fd, const struct stat& st, const std::string& recorded) const;

	UniqueFd root_fd_;
	std::string root_;
	// Digests already computed, by (dev, ino, size, mtime, ctime) and scheme: the restore master verifies every
	// file before it forks, and its restorers (which inherit this) verify again as they open, without rehashing.
	mutable std::map<std::tuple<dev_t, ino_t, off_t, int64_t, int64_t, int64_t, int64_t, bool>, std::string> cache_;
};

}  // namespace bpfckpt::restore
