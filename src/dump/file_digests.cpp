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

// Mappings of files that exist on disk: not memfds or shared anonymous memory (saved as shmem objects).
bool maps_file_on_disk(const image::Vma& v)
{
	return v.kind == "file" && v.path.rfind("/memfd:", 0) != 0 && v.path.rfind("/dev/zero", 0) != 0;
}

}  // namespace

Status FileDigests::open_one(const std::string& handle, const std::string& name, uint64_t dev, uint64_t ino)
{
	Key key{dev, ino};
	if (opened_.count(key))
		return {};
	// O_NONBLOCK: a regular file never blocks, and a handle that is not one must not hang the dump.
	UniqueFd fd(::open(handle.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
	if (!fd)
		return fail_sys(errno, "{} ({}): open to digest", name, handle);
	struct stat st;
	if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_ino) != ino)
		return fail(ExitCode::target_busy, "{} ({}): not the file the iterator saw (inode {})", name, handle, ino);
	opened_.emplace(key, Opened{std::move(fd), name});
	return {};
}

Status FileDigests::open(const image::Image& img)
{
	for (const image::Process& p : img.processes) {
		if (p.state == "zombie")
			continue;
		for (const image::Vma& v : p.vmas)
			if (maps_file_on_disk(v))
				BCK_CHECK(context(open_one(fmt::format("/proc/{}/map_files/{:x}-{:x}", p.pid, v.start, v.end),
							   v.path, v.dev, v.ino),
						  "pid {}", p.pid));
		for (const image::Fd& fd : p.fds) {
			const image::File& f = img.files.at(fd.file);
			if (f.kind == "regular")
				BCK_CHECK(context(open_one(fmt::format("/proc/{}/fd/{}", p.pid, fd.fd), f.path, f.dev, f.ino),
						  "pid {} fd {}", p.pid, fd.fd));
		}
	}
	return {};
}

Result<double> FileDigests::fill(image::Image& img)
{
	double t0 = now_s();
	std::map<Key, std::optional<std::string>> digests;
	uint64_t hashed = 0;
	for (auto& [key, file] : opened_) {
		auto digest = BCK_TRY(context(file_digest(file.fd.get()), "{}: digest", file.name));
		struct stat st;
		if (digest && digest->starts_with("xxh3_128:") && fstat(file.fd.get(), &st) == 0)
			hashed += uint64_t(st.st_size);
		digests.emplace(key, std::move(digest));
	}
	auto digest_of = [&](uint64_t dev, uint64_t ino) {
		auto it = digests.find(Key{dev, ino});
		return it == digests.end() ? std::nullopt : it->second;
	};
	for (image::Process& p : img.processes) {
		for (image::Vma& v : p.vmas)
			if (maps_file_on_disk(v))
				v.digest = digest_of(v.dev, v.ino);
	}
	for (image::File& f : img.files)
		if (f.kind == "regular")
			f.digest = digest_of(f.dev, f.ino);
	double took = now_s() - t0;
	log::debug("file digests: {} files, {} bytes hashed, {:.2f} ms", digests.size(), hashed, took * 1e3);
	return took;
}

}  // namespace bpfckpt::dump
