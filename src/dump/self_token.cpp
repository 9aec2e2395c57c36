#include "dump/self_token.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "common/log.h"
#include "self/token.h"

namespace bpfckpt::dump {

namespace {

Result<UniqueFd> open_pidfd(pid_t pid)
{
	int fd = int(syscall(SYS_pidfd_open, pid, 0));
	if (fd < 0)
		return fail_sys(errno, "self token: pid {}: pidfd_open", pid);
	return UniqueFd(fd);
}

// Ours on the caller's fd: the same open file, so reads and writes act on the caller's pipe.
Result<UniqueFd> take_fd(int pidfd, pid_t pid, int fd)
{
	int ours = int(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
	if (ours < 0)
		return fail_sys(errno, "self token: pid {} fd {}: pidfd_getfd", pid, fd);
	return UniqueFd(ours);
}

Result<ino_t> pipe_ino(int fd, pid_t pid, int their_fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fail_sys(errno, "self token: pid {} fd {}: fstat", pid, their_fd);
	if (!S_ISFIFO(st.st_mode))
		return fail(ExitCode::usage, "self token: pid {} fd {}: not a pipe", pid, their_fd);
	return st.st_ino;
}

Result<int> buffered(int fd, pid_t pid)
{
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) != 0)
		return fail_sys(errno, "self token: pid {}: FIONREAD", pid);
	return n;
}

// bpfckpt's exit classes as errnos, for errors that carry none (include/bpfckpt/self.h lists them).
int errno_for(const Error& e)
{
	if (e.err)
		return e.err;
	switch (e.exit) {
	case ExitCode::usage:
		return EINVAL;
	case ExitCode::no_target:
		return ESRCH;
	case ExitCode::permission:
		return EPERM;
	case ExitCode::target_busy:
		return EBUSY;
	case ExitCode::unsupported:
		return ENOTSUP;
	case ExitCode::kernel:
		return ENOSYS;
	default:
		return EIO;
	}
}

}  // namespace

Result<SelfToken> SelfToken::arm(const std::optional<SelfTokenFds>& fds, pid_t caller)
{
	SelfToken t;
	if (!fds)
		return t;
	UniqueFd pidfd = BCK_TRY(open_pidfd(caller));
	UniqueFd rd = BCK_TRY(take_fd(pidfd.get(), caller, fds->first));
	UniqueFd wr = BCK_TRY(take_fd(pidfd.get(), caller, fds->second));
	ino_t r_ino = BCK_TRY(pipe_ino(rd.get(), caller, fds->first));
	ino_t w_ino = BCK_TRY(pipe_ino(wr.get(), caller, fds->second));
	if (r_ino != w_ino)
		return fail(ExitCode::usage, "self token: pid {}: fds {} and {} are not the two ends of one pipe", caller,
			    fds->first, fds->second);
	// The caller writes nothing into it: bytes there mean another writer, whose bytes the caller would misread.
	if (int n = BCK_TRY(buffered(rd.get(), caller)); n != 0)
		return fail(ExitCode::target_busy, "self token: pid {} fd {}: the pipe already holds {} bytes", caller,
			    fds->first, n);
	const char byte = BCK_SELF_RESTORED;
	if (::write(wr.get(), &byte, 1) != 1)
		return fail_sys(errno, "self token: pid {} fd {}: write", caller, fds->second);
	t.caller_ = caller;
	t.read_end_ = std::move(rd);
	t.write_end_ = std::move(wr);
	return t;
}

Status SelfToken::disarm()
{
	if (!read_end_)
		return {};
	UniqueFd rd = std::move(read_end_);
	write_end_.reset();
	// The caller is still frozen: the byte is there, and reading it cannot block.
	if (int n = BCK_TRY(buffered(rd.get(), caller_)); n != 1)
		return fail(ExitCode::target_busy, "self token: pid {}: the pipe holds {} bytes, expected the 1 written",
			    caller_, n);
	char byte = 0;
	if (::read(rd.get(), &byte, 1) != 1)
		return fail_sys(errno, "self token: pid {}: read back", caller_);
	if (byte != BCK_SELF_RESTORED)
		return fail(ExitCode::target_busy, "self token: pid {}: read back {:#x}, not the byte written", caller_,
			    uint8_t(byte));
	return {};
}

SelfToken::~SelfToken()
{
	if (Status st = disarm(); !st)
		log::warn("{}", st.error().describe());
}

void report_self_failure(pid_t caller, const SelfTokenFds& fds, const Error& e)
{
	auto pidfd = open_pidfd(caller);
	auto wr = pidfd ? take_fd(pidfd->get(), caller, fds.second) : std::unexpected(pidfd.error());
	auto ino = wr ? pipe_ino(wr->get(), caller, fds.second) : std::unexpected(wr.error());
	if (!ino) {
		log::debug("{}", ino.error().describe());
		return;
	}
	char msg[1 + sizeof(int32_t)] = {BCK_SELF_FAILED};
	int32_t err = errno_for(e);
	std::memcpy(msg + 1, &err, sizeof(err));
	if (::write(wr->get(), msg, sizeof(msg)) != ssize_t(sizeof(msg)))
		log::debug("self token: pid {} fd {}: write: {}", caller, fds.second, std::strerror(errno));
}

}  // namespace bpfckpt::dump
