// pread until `len` bytes or end of file, for the core writer's two readers (image blobs, backing files).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "common/result.h"

namespace bpfckpt::core {

// Bytes read: fewer than len only at end of file.
inline Result<size_t> read_at(int fd, char* out, size_t len, off_t offset)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = ::pread(fd, out + done, len - done, offset + off_t(done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_sys(errno, "read at {}", offset + off_t(done));
		if (n == 0)
			break;
		done += size_t(n);
	}
	return done;
}

}  // namespace bpfckpt::core
