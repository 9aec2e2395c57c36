#include "common/file_digest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "common/elf_build_id.h"
#include "common/xxhash.h"

namespace bpfckpt {

namespace {

constexpr std::string_view kBuildId = "build_id:";
constexpr std::string_view kXxh3 = "xxh3_128:";
// Large reads, but a buffer small enough that its first-touch faults stay negligible.
constexpr size_t kChunk = 1u << 20;

bool lower_hex(std::string_view s)
{
	return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::string> xxh3_128_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fail_sys(errno, "stat");
	std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), XXH3_freeState);
	if (!state || XXH3_128bits_reset(state.get()) != XXH_OK)
		return fail(ExitCode::failure, "xxh3: cannot allocate a hash state");
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	// Not zero-filled, and no larger than the file: a small file must not pay for faulting in a whole chunk.
	size_t len = size_t(std::clamp<off_t>(st.st_size, 4096, kChunk));
	std::unique_ptr<char[]> buf(new char[len]);
	for (off_t at = 0;;) {
		ssize_t n = pread(fd, buf.get(), len, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_sys(errno, "read at {}", at);
		if (n == 0)
			break;
		XXH3_128bits_update(state.get(), buf.get(), size_t(n));
		at += n;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(state.get()));
	std::string hex(kXxh3);
	for (unsigned char b : c.digest)
		hex += fmt::format("{:02x}", b);
	return hex;
}

}  // namespace

Result<std::optional<std::string>> file_digest(int fd)
{
	if (std::string id = elf_build_id(fd); !id.empty())
		return std::string(kBuildId) + id;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fail_sys(errno, "stat");
	if (uint64_t(st.st_size) > kMaxHashedBytes)
		return std::nullopt;
	return BCK_TRY(xxh3_128_of(fd));
}

Result<std::string> file_digest_like(int fd, std::string_view recorded)
{
	if (recorded.starts_with(kBuildId))
		return std::string(kBuildId) + elf_build_id(fd);
	return xxh3_128_of(fd);
}

bool is_valid_digest(std::string_view d)
{
	if (d.starts_with(kXxh3))
		return d.size() == kXxh3.size() + 32 && lower_hex(d.substr(kXxh3.size()));
	if (!d.starts_with(kBuildId))
		return false;
	std::string_view hex = d.substr(kBuildId.size());
	return hex.size() >= 2 && hex.size() <= 128 && hex.size() % 2 == 0 && lower_hex(hex);
}

}  // namespace bpfckpt
