#include "dump/remote_uffd.h"

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/ptrace_syscall.h"

namespace bpfckpt::dump {

Result<std::optional<UniqueFd>> remote_userfaultfd(pid_t pid, pid_t tid, uint64_t syscall_addr, int flags,
						    uint64_t features)
{
	int64_t remote = BCK_TRY(inject_syscall(tid, syscall_addr, SYS_userfaultfd, {uint64_t(flags)}));
	if (remote == -EPERM)
		return std::nullopt;
	if (remote < 0)
		return fail_errno(ExitCode::kernel, int(-remote), "pid {}: userfaultfd() in the target", pid);
	UniqueFd target(int(syscall(SYS_pidfd_open, pid, 0)));
	int taken = target ? int(syscall(SYS_pidfd_getfd, target.get(), int(remote), 0)) : -1;
	int err = errno;
	BCK_TRY(inject_syscall(tid, syscall_addr, SYS_close, {uint64_t(remote)}));
	if (taken < 0)
		return fail_sys(err, "pid {}: take its userfaultfd", pid);
	UniqueFd uffd(taken);
	uffdio_api api{};
	api.api = UFFD_API;
	api.features = features;
	if (ioctl(uffd.get(), UFFDIO_API, &api) != 0)
		return fail_sys(errno, "pid {}: UFFDIO_API features {:#x}", pid, features);
	return std::optional<UniqueFd>(std::move(uffd));
}

}  // namespace bpfckpt::dump
