#include "image/image_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "common/fs.h"
#include "image/json.h"

namespace bpfckpt::image {

namespace fs = std::filesystem;

BlobWriter::BlobWriter(std::string image, std::string name, UniqueFd fd)
	: image_(std::move(image)), name_(std::move(name)), fd_(std::move(fd))
{
	hash_ = XXH3_createState();
	XXH3_64bits_reset(hash_);
}

BlobWriter::~BlobWriter() { XXH3_freeState(hash_); }

Status BlobWriter::write(const void* data, size_t len)
{
	hash(data, len);
	return write_unhashed(data, len);
}

void BlobWriter::hash(const void* data, size_t len) { XXH3_64bits_update(hash_, data, len); }

Status BlobWriter::write_unhashed(const void* data, size_t len)
{
	BCK_CHECK(write_at(offset_, static_cast<const char*>(data), len));
	offset_ += len;
	return {};
}

Status BlobWriter::pad_to(uint64_t align)
{
	alignas(kPageSize) static const char zeros[kPageSize] = {};
	uint64_t rem = offset_ % align;
	while (rem) {
		uint64_t n = std::min<uint64_t>(align - rem, sizeof(zeros));
		BCK_CHECK(write(zeros, n));
		rem = offset_ % align;
	}
	return {};
}

Status BlobWriter::rewrite(uint64_t at, const void* data, size_t len)
{
	if (at + len > offset_)
		return fail(ExitCode::failure, "image {}: rewrite of {} bytes at {} past the end of {} ({} bytes)", image_,
			    len, at, name_, offset_);
	return write_at(at, static_cast<const char*>(data), len);
}

void BlobWriter::set_direct(bool on)
{
	if (!on || direct_refused_) {
		direct_fd_.reset();
		return;
	}
	if (direct_fd_)
		return;
	// Reopened through /proc: the same open file's path may be renamed meanwhile, the inode stays.
	std::string self = fmt::format("/proc/self/fd/{}", fd_.get());
	direct_fd_.reset(::open(self.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
	direct_refused_ = !direct_fd_;
}

// Whole pages from a page-aligned buffer to a page-aligned offset through direct_fd_, the rest (and everything when
// it is off) through the page cache. The kernel keeps the two coherent: a direct write first writes back and drops
// cached pages of its range. A filesystem that takes the open but not the write (EINVAL) gets the page cache.
Status BlobWriter::write_at(uint64_t at, const char* data, size_t len)
{
	auto aligned = [](uint64_t v) { return v % kPageSize == 0; };
	while (len) {
		bool direct = direct_fd_ && !direct_refused_ && aligned(at) &&
			      aligned(reinterpret_cast<uintptr_t>(data)) && len >= kPageSize;
		size_t want = direct ? len & ~(kPageSize - 1) : len;
		ssize_t n = pwrite(direct ? direct_fd_.get() : fd_.get(), data, want, off_t(at));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && direct) {
			direct_refused_ = true;
			continue;
		}
		if (n <= 0)
			return write_failed(n < 0 ? errno : EIO);
		data += n;
		at += uint64_t(n);
		len -= size_t(n);
	}
	return {};
}

Status BlobWriter::write_failed(int err)
{
	return fail_errno(exit_for_errno(err), err, "image {}: write {}", image_, name_);
}

Status BlobWriter::extend_to(uint64_t end)
{
	if (end <= offset_)
		return {};
	if (ftruncate(fd_.get(), off_t(end)) != 0)
		return fail_errno(exit_for_errno(errno), errno, "image {}: extend {} to {} bytes", image_, name_, end);
	offset_ = end;
	return {};
}

Status BlobWriter::rehash()
{
	constexpr size_t kChunk = size_t(8) << 20;
	std::unique_ptr<char[]> buf(new char[kChunk]);
	XXH3_64bits_reset(hash_);
	for (uint64_t at = 0; at < offset_;) {
		ssize_t n = pread(fd_.get(), buf.get(), std::min<uint64_t>(kChunk, offset_ - at), off_t(at));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail_errno(ExitCode::failure, n < 0 ? errno : EIO, "image {}: read back {}", image_, name_);
		hash(buf.get(), size_t(n));
		at += uint64_t(n);
	}
	return {};
}

Status BlobWriter::restart()
{
	if (ftruncate(fd_.get(), 0) != 0)
		return fail_errno(ExitCode::failure, errno, "image {}: empty {}", image_, name_);
	XXH3_64bits_reset(hash_);
	offset_ = 0;
	return {};
}

Blob BlobWriter::finish()
{
	return Blob{name_, offset_, fmt::format("{:016x}", XXH3_64bits_digest(hash_))};
}

Result<std::string> read_blob_ref(const std::string& dir, const BlobRef& ref)
{
	if (ref.size == 0)
		return std::string();
	UniqueFd fd(::open((dir + "/" + ref.blob).c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open blob {}", ref.blob);
	std::string out(ref.size, '\0');
	if (pread(fd.get(), out.data(), out.size(), off_t(ref.offset)) != ssize_t(out.size()))
		return fail(ExitCode::bad_image, "blob {}: short read at {}", ref.blob, ref.offset);
	return out;
}

bool is_safe_name(const std::string& name)
{
	if (name.empty() || name.size() > 255 || name == "." || name == "..")
		return false;
	for (unsigned char c : name)
		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	return true;
}

static Result<bool> is_empty_dir(const std::string& path)
{
	std::error_code ec;
	auto it = fs::directory_iterator(path, ec);
	if (ec)
		return fail_errno(ExitCode::io, ec.value(), "image directory {}", path);
	return it == fs::directory_iterator();
}

Result<std::unique_ptr<ImageDir>> ImageDir::create(const std::string& dest_in)
{
	std::string dest = fs::absolute(dest_in).lexically_normal().string();
	if (dest.size() > 1 && dest.back() == '/')
		dest.pop_back();
	struct stat st;
	if (lstat(dest.c_str(), &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return fail(ExitCode::io, "image directory {}: exists and is not a directory", dest);
		if (!BCK_TRY(is_empty_dir(dest)))
			return fail(ExitCode::io, "image directory {}: exists and is not empty", dest);
	} else if (errno != ENOENT) {
		return fail_sys(errno, "image directory {}", dest);
	}
	fs::path d(dest);
	std::string parent = d.parent_path().string();
	std::string tmpl = (d.parent_path() / ("." + d.filename().string() + ".tmp-XXXXXX")).string();
	if (!mkdtemp(tmpl.data()))
		return fail_sys(errno, "create a temporary image directory in {}", parent);
	chmod(tmpl.c_str(), 0700);
	return std::unique_ptr<ImageDir>(new ImageDir(dest, tmpl));
}

ImageDir::~ImageDir()
{
	if (!committed_) {
		std::error_code ec;
		fs::remove_all(tmp_, ec);
	}
}

Result<std::unique_ptr<BlobWriter>> ImageDir::open_blob(const std::string& name)
{
	std::string path = tmp_ + "/" + name;
	int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);  // read back by rehash()
	if (fd < 0)
		return fail_sys(errno, "create {}", path);
	return std::make_unique<BlobWriter>(dest_, name, UniqueFd(fd));
}

Status ImageDir::commit(const Image& img, bool fsync_data)
{
	std::string index = to_json_value(img).dump(1, '\t') + "\n";
	BCK_CHECK(context(write_file(tmp_ + "/index.json", index, 0600), "image {}", dest_));
	if (fsync_data) {
		BCK_CHECK(fsync_dir_files(tmp_));
	}
	struct stat st;
	if (lstat(dest_.c_str(), &st) == 0 && rmdir(dest_.c_str()) != 0)
		return fail_sys(errno, "image directory {}: replace the empty directory", dest_);
	if (rename(tmp_.c_str(), dest_.c_str()) != 0)
		return fail_sys(errno, "rename {} to {}", tmp_, dest_);
	committed_ = true;
	if (fsync_data)
		BCK_CHECK(fsync_path(fs::path(dest_).parent_path().string()));
	return {};
}

}  // namespace bpfckpt::image
