#include "dump/file_digests.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>

#include "common/clock.h"
#include "common/fd.h"
#include "common/file_digest.h"
#include "common/log.h"

namespace bpfckpt::dump {

namespace {

class DigestCache {
public:
	// The digest of the file `open_path` (a /proc handle) refers to, which the image knows as (dev, ino).
	Result<std::optional<std::string>> get(const std::string& open_path, const std::string& name, uint64_t dev,
					       uint64_t ino)
	{
		auto key = std::make_pair(dev, ino);
		if (auto it = cache_.find(key); it != cache_.end())
			return it->second;
		// O_NONBLOCK: a regular file never blocks, and a handle that is not one must not hang the dump.
		UniqueFd fd(::open(open_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
		if (!fd)
			return fail_sys(errno, "{} ({}): open to digest", name, open_path);
		struct stat st;
		if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_ino) != ino)
			return fail(ExitCode::target_busy, "{} ({}): not the file the iterator saw (inode {})", name,
				    open_path, ino);
		auto digest = BCK_TRY(context(file_digest(fd.get()), "{}: digest", name));
		if (digest && digest->starts_with("xxh3_128:"))
			bytes_ += uint64_t(st.st_size);
		cache_.emplace(key, digest);
		return digest;
	}

	size_t files() const { return cache_.size(); }
	uint64_t bytes() const { return bytes_; }

private:
	std::map<std::pair<uint64_t, uint64_t>, std::optional<std::string>> cache_;
	uint64_t bytes_ = 0;
};

// Mappings of files that exist on disk: not memfds or shared anonymous memory (saved as shmem objects).
bool maps_file_on_disk(const image::Vma& v)
{
	return v.kind == "file" && v.path.rfind("/memfd:", 0) != 0 && v.path.rfind("/dev/zero", 0) != 0;
}

}  // namespace

Result<double> add_file_digests(image::Image& img)
{
	double t0 = now_s();
	DigestCache cache;
	for (image::Process& p : img.processes) {
		if (p.state == "zombie")
			continue;
		for (image::Vma& v : p.vmas)
			if (maps_file_on_disk(v))
				v.digest = BCK_TRY(context(cache.get(fmt::format("/proc/{}/map_files/{:x}-{:x}", p.pid,
										  v.start, v.end),
								      v.path, v.dev, v.ino),
							   "pid {}", p.pid));
		for (const image::Fd& fd : p.fds) {
			image::File& f = img.files.at(fd.file);
			if (f.kind == "regular" && !f.digest)
				f.digest = BCK_TRY(context(cache.get(fmt::format("/proc/{}/fd/{}", p.pid, fd.fd), f.path,
								     f.dev, f.ino),
							   "pid {} fd {}", p.pid, fd.fd));
		}
	}
	double took = now_s() - t0;
	log::debug("file digests: {} files, {} bytes hashed, {:.2f} ms", cache.files(), cache.bytes(), took * 1e3);
	return took;
}

}  // namespace bpfckpt::dump
