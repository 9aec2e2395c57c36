#include "core/backing_pages.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cstring>
#include <sstream>
#include <tuple>

#include "common/fs.h"
#include "common/log.h"
#include "core/read_at.h"

namespace bpfckpt::core {

namespace {

// Our own [vdso] mapping from /proc/self/maps: start and size; {nullptr, 0} when there is none.
std::pair<const char*, uint64_t> own_vdso()
{
	auto maps = read_file("/proc/self/maps");
	if (!maps)
		return {nullptr, 0};
	std::istringstream in(*maps);
	std::string line;
	while (std::getline(in, line)) {
		if (line.find("[vdso]") == std::string::npos)
			continue;
		unsigned long long start = 0, end = 0;
		if (std::sscanf(line.c_str(), "%llx-%llx", &start, &end) != 2 || end <= start)
			return {nullptr, 0};
		return {reinterpret_cast<const char*>(start), end - start};
	}
	return {nullptr, 0};
}

}  // namespace

BackingPages::File& BackingPages::open_file(const std::string& path)
{
	auto it = files_.find(path);
	if (it != files_.end())
		return it->second;
	File f;
	f.fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	struct stat st {};
	if (f.fd && ::fstat(f.fd.get(), &st) == 0 && S_ISREG(st.st_mode)) {
		f.size = uint64_t(st.st_size);
		f.mtime_sec = st.st_mtim.tv_sec;
		f.mtime_nsec = uint32_t(st.st_mtim.tv_nsec);
	} else {
		f.fd.reset();
	}
	return files_.emplace(path, std::move(f)).first->second;
}

bool BackingPages::vdso_available(const image::Vma& v)
{
	if (!vdso_looked_up_) {
		vdso_looked_up_ = true;
		struct utsname u {};
		// The vDSO is part of the kernel image: the same release is the same code.
		if (::uname(&u) == 0 && img_.host.kernel == u.release)
			std::tie(vdso_, vdso_size_) = own_vdso();
	}
	return vdso_ && vdso_size_ == v.end - v.start;
}

bool BackingPages::available(const image::Vma& v)
{
	if (v.kind == "vdso")
		return vdso_available(v);
	if (v.kind != "file" || v.path.empty())
		return false;
	File& f = open_file(v.path);
	std::string why;
	if (!f.fd)
		why = "it cannot be opened here";
	else if (f.size != v.file_size)
		why = fmt::format("{} bytes, the dump saw {}", f.size, v.file_size);
	else if (f.mtime_sec != v.mtime_sec || f.mtime_nsec != v.mtime_nsec)
		why = "modified since the dump";
	if (why.empty())
		return true;
	if (!f.warned) {
		f.warned = true;
		log::warn("{}: {}: the pages of it the process never wrote are not in the core", v.path, why);
	}
	return false;
}

Status BackingPages::fill(const image::Vma& v, const std::vector<Span>& holes, uint64_t out_base, char* out)
{
	for (const Span& h : holes) {
		char* dst = out + (h.start - out_base);
		uint64_t len = h.end - h.start;
		if (v.kind == "vdso") {
			std::memcpy(dst, vdso_ + (h.start - v.start), len);
			continue;
		}
		File& f = open_file(v.path);
		off_t at = off_t(v.offset + (h.start - v.start));
		size_t n = BCK_TRY(context(read_at(f.fd.get(), dst, len, at), "{}", v.path));
		std::memset(dst + n, 0, len - n);
	}
	return {};
}

}  // namespace bpfckpt::core
