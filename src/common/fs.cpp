#include "common/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "common/fd.h"

namespace bpfckpt {

Status write_all(int fd, const void* data, size_t len)
{
	const char* p = static_cast<const char*>(data);
	while (len) {
		ssize_t n = ::write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_sys(errno, "write");
		}
		p += n;
		len -= size_t(n);
	}
	return {};
}

Status write_file(const std::string& path, const std::string& data, mode_t mode)
{
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
	if (!fd)
		return fail_sys(errno, "create {}", path);
	return context(write_all(fd.get(), data.data(), data.size()), "{}", path);
}

Result<std::string> read_file(const std::string& path)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {}", path);
	std::string out;
	char buf[65536];
	for (;;) {
		ssize_t n = ::read(fd.get(), buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_sys(errno, "read {}", path);
		}
		if (n == 0)
			break;
		out.append(buf, size_t(n));
	}
	return out;
}

Result<std::string> read_link(const std::string& path)
{
	char buf[4096];
	ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
	if (n < 0)
		return fail_sys(errno, "readlink {}", path);
	return std::string(buf, size_t(n));
}

Status fsync_path(const std::string& path)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return fail_sys(errno, "open {} for fsync", path);
	if (fsync(fd.get()) != 0)
		return fail_sys(errno, "fsync {}", path);
	return {};
}

Status fsync_dir_files(const std::string& dir)
{
	std::error_code ec;
	for (const auto& e : std::filesystem::directory_iterator(dir, ec))
		BCK_CHECK(fsync_path(e.path().string()));
	if (ec)
		return fail_sys(ec.value(), "list {}", dir);
	return fsync_path(dir);
}

}  // namespace bpfckpt
