#include "dump/pipes.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fd.h"

namespace bpfckpt::dump {

namespace {

// A file of our own on the same pipe, with read access: tee() reads from it without consuming. For a read end
// pidfd_getfd duplicates the holder's fd; tee() refuses a write end (EBADF), so then the pipe is opened anew for
// reading through /proc/PID/fd, which anonymous pipes allow.
Result<UniqueFd> open_reader(int pidfd, const FileTable::PipeHolder& h)
{
	if (h.read_end) {
		int fd = int(syscall(SYS_pidfd_getfd, pidfd, h.fd, 0));
		if (fd < 0)
			return fail_sys(errno, "pid {} fd {}: pidfd_getfd", h.pid, h.fd);
		return UniqueFd(fd);
	}
	std::string path = fmt::format("/proc/{}/fd/{}", h.pid, h.fd);
	int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fail_sys(errno, "open {} for reading", path);
	return UniqueFd(fd);
}

}  // namespace

Result<std::string> peek_pipe(int pidfd, const FileTable::PipeHolder& h)
{
	UniqueFd src = BCK_TRY(open_reader(pidfd, h));
	int avail = 0;
	if (ioctl(src.get(), FIONREAD, &avail) != 0)
		return fail_sys(errno, "pid {} fd {}: FIONREAD", h.pid, h.fd);
	if (avail == 0)
		return std::string();

	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return fail_sys(errno, "pipe2");
	UniqueFd rd(p[0]), wr(p[1]);
	if (fcntl(wr.get(), F_SETPIPE_SZ, int(std::max<uint64_t>(h.capacity, uint64_t(avail)))) < 0)
		return fail_sys(errno, "size a pipe for {} bytes", avail);
	std::string out;
	ssize_t n = tee(src.get(), wr.get(), size_t(avail), SPLICE_F_NONBLOCK);
	if (n < 0)
		return fail_sys(errno, "pid {} fd {}: tee", h.pid, h.fd);
	if (n != avail)
		return fail(ExitCode::target_busy, "pid {} fd {}: pipe held {} bytes, tee copied {}", h.pid, h.fd, avail, n);
	out.resize(size_t(n));
	if (::read(rd.get(), out.data(), out.size()) != n)
		return fail_sys(errno, "read peeked pipe bytes");
	return out;
}

}  // namespace bpfckpt::dump
