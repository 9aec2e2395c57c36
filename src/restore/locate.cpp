#include "restore/locate.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/file_digest.h"

namespace bpfckpt::restore {

namespace {

bool same_inode(const struct stat& st, const FileIdentity& id)
{
	return uint64_t(st.st_ino) == id.ino && uint64_t(st.st_size) == id.size && st.st_mtim.tv_sec == id.mtime_sec &&
	       uint32_t(st.st_mtim.tv_nsec) == id.mtime_nsec;
}

// openat2 with RESOLVE_IN_ROOT: the path is resolved as if `root` were "/", so absolute symlinks and ".." stay
// beneath it; magic links (/proc/self/...) are refused, since they point wherever the kernel says.
int open_in_root(int root, const std::string& path, int flags)
{
	open_how how{};
	how.flags = uint64_t(flags);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	return int(syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how)));
}

}  // namespace

bool maps_file_on_disk(const image::Vma& v)
{
	return v.kind == "file" && v.path.rfind("/memfd:", 0) != 0 && v.path.rfind("/dev/zero", 0) != 0;
}

FileIdentity identity_of(const image::Vma& v)
{
	return {"mapped file", v.path, v.ino, v.file_size, v.mtime_sec, v.mtime_nsec, v.digest, true, false};
}

FileIdentity identity_of(const image::File& f, bool under_root)
{
	FileIdentity id{"file", f.path, f.ino, f.size, f.mtime_sec, f.mtime_nsec, f.digest, false, false};
	// A file a process has open may legitimately have changed (it writes to it): without --root it is reopened as
	// it is now, as always. Elsewhere the copy must be what was dumped.
	id.verify = under_root && f.kind == "regular";
	id.directory = f.kind == "directory";
	return id;
}

FileIdentity exe_identity(const image::Process& p)
{
	for (const image::Vma& v : p.vmas)
		if (maps_file_on_disk(v) && v.path == p.exe) {
			FileIdentity id = identity_of(v);
			id.what = "executable";
			return id;
		}
	FileIdentity id;
	id.what = "executable";
	id.path = p.exe;
	id.verify = false;
	return id;
}

FileIdentity dir_identity(const std::string& what, const std::string& path)
{
	FileIdentity id;
	id.what = what;
	id.path = path;
	id.verify = false;
	id.directory = true;
	return id;
}

Result<FileLookup> FileLookup::open(const std::string& root)
{
	FileLookup l;
	if (root.empty())
		return l;
	l.root_fd_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!l.root_fd_)
		return fail_errno(ExitCode::usage, errno, "--root {}: not a directory we can open", root);
	l.root_ = root;
	return l;
}

// Beneath the root first; at the path itself when --root is not given, or the root does not hold it.
Result<Located> FileLookup::find(const std::string& path, int flags) const
{
	Located loc;
	if (has_root()) {
		loc.fd.reset(open_in_root(root_fd_.get(), path, flags));
		if (loc.fd) {
			loc.where = "under " + root_;
			return loc;
		}
		if (errno != ENOENT)
			return fail_sys(errno, "{} under {}: open", path, root_);
	}
	loc.fd.reset(::open(path.c_str(), flags));
	if (!loc.fd) {
		if (errno == ENOENT && has_root())
			return fail(ExitCode::failure, "not found under {}, nor at its own path on this machine", root_);
		if (errno == ENOENT)
			return fail(ExitCode::failure, "not found on this machine");
		return fail_sys(errno, "open");
	}
	loc.where = "on this machine";
	loc.outside_root = has_root();
	return loc;
}

Result<std::string> FileLookup::digest_of(int fd, const struct stat& st, const std::string& recorded) const
{
	bool build_id = recorded.starts_with("build_id:");
	auto key = std::make_tuple(st.st_dev, st.st_ino, st.st_size, int64_t(st.st_mtim.tv_sec),
				   int64_t(st.st_mtim.tv_nsec), int64_t(st.st_ctim.tv_sec), int64_t(st.st_ctim.tv_nsec),
				   build_id);
	if (auto it = cache_.find(key); it != cache_.end())
		return it->second;
	// A write-only fd cannot be read: hash through a read-only reopening of the very same file.
	UniqueFd readable;
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
		readable.reset(::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_RDONLY | O_CLOEXEC));
		if (!readable)
			return fail_sys(errno, "reopen to read its content");
		fd = readable.get();
	}
	std::string d = BCK_TRY(file_digest_like(fd, recorded));
	cache_.emplace(key, d);
	return d;
}

Status FileLookup::verify(Located& loc, const FileIdentity& id) const
{
	struct stat st;
	if (fstat(loc.fd.get(), &st) != 0)
		return fail_sys(errno, "stat");
	if (id.directory)
		return S_ISDIR(st.st_mode) ? Status{} : fail(ExitCode::failure, "not a directory {}", loc.where);
	if (!id.verify)
		return {};
	if (!S_ISREG(st.st_mode))
		return fail(ExitCode::failure, "changed since the dump: not a regular file {}", loc.where);
	bool same = same_inode(st, id);
	if (same && !has_root())
		return {};
	if (uint64_t(st.st_size) != id.size)
		return fail(ExitCode::failure, "changed since the dump: size differs ({} bytes in the image, {} {})",
			    id.size, st.st_size, loc.where);
	if (!id.digest) {
		if (same)
			return {};
		return fail(ExitCode::failure, "changed since the dump (inode, size or mtime differ) {}, and the image "
			    "records no content digest to compare (a file over 1 GiB, or an image of an older bpfckpt)",
			    loc.where);
	}
	std::string here = BCK_TRY(digest_of(loc.fd.get(), st, *id.digest));
	if (here != *id.digest)
		return fail(ExitCode::failure, "changed since the dump: content differs ({} in the image, {} {})",
			    *id.digest, here.back() == ':' ? "none" : here, loc.where);
	loc.by_content = !same;
	return {};
}

Result<Located> FileLookup::open(const FileIdentity& id, int flags) const
{
	auto r = [&]() -> Result<Located> {
		Located loc = BCK_TRY(find(id.path, flags | O_CLOEXEC));
		BCK_CHECK(verify(loc, id));
		return loc;
	}();
	return context(std::move(r), "{} {}", id.what, id.path);
}

}  // namespace bpfckpt::restore
