#include "common/ptrace_syscall.h"

#include <elf.h>
#include <sys/auxv.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <csignal>

namespace bpfckpt {

namespace {

constexpr size_t kVdsoScan = 8192;

Result<user_regs_struct> get_regs(pid_t tid)
{
	user_regs_struct r{};
	iovec iov{&r, sizeof(r)};
	if (ptrace(PTRACE_GETREGSET, tid, (void*)(long)NT_PRSTATUS, &iov) != 0)
		return fail_sys(errno, "thread {}: get registers", tid);
	return r;
}

Status set_regs(pid_t tid, user_regs_struct r)
{
	iovec iov{&r, sizeof(r)};
	if (ptrace(PTRACE_SETREGSET, tid, (void*)(long)NT_PRSTATUS, &iov) != 0)
		return fail_sys(errno, "thread {}: set registers", tid);
	return {};
}

Status set_sigmask(pid_t tid, uint64_t mask)
{
	if (ptrace(PTRACE_SETSIGMASK, tid, (void*)sizeof(mask), &mask) != 0)
		return fail_sys(errno, "thread {}: set signal mask", tid);
	return {};
}

// The syscall-entry and then the syscall-exit stop. Signals are blocked, so no signal-delivery stop comes between.
Status run_to_exit(pid_t tid)
{
	for (int stop = 0; stop < 2; stop++) {
		if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) != 0)
			return fail_sys(errno, "thread {}: PTRACE_SYSCALL", tid);
		int status;
		if (waitpid(tid, &status, __WALL) != tid)
			return fail_sys(errno, "thread {}: wait", tid);
		if (!WIFSTOPPED(status))
			return fail(ExitCode::target_busy, "thread {}: exited while running an injected syscall", tid);
	}
	return {};
}

}  // namespace

Result<uint64_t> vdso_syscall_offset()
{
	const auto* vdso = reinterpret_cast<const unsigned char*>(getauxval(AT_SYSINFO_EHDR));
	if (!vdso)
		return fail(ExitCode::kernel, "no vDSO in this process");
	for (size_t i = 0; i + 1 < kVdsoScan; i++)
		if (vdso[i] == 0x0f && vdso[i + 1] == 0x05)
			return uint64_t(i);
	return fail(ExitCode::kernel, "no syscall instruction in the vDSO");
}

Result<int64_t> inject_syscall(pid_t tid, uint64_t syscall_addr, long nr, std::initializer_list<uint64_t> args,
			       bool restore)
{
	user_regs_struct saved = BCK_TRY(get_regs(tid));
	uint64_t saved_mask = 0;
	if (ptrace(PTRACE_GETSIGMASK, tid, (void*)sizeof(saved_mask), &saved_mask) != 0)
		return fail_sys(errno, "thread {}: get signal mask", tid);
	BCK_CHECK(set_sigmask(tid, ~0ull));
	user_regs_struct r = saved;
	unsigned long long* slots[] = {&r.rdi, &r.rsi, &r.rdx, &r.r10, &r.r8, &r.r9};
	size_t i = 0;
	for (uint64_t a : args)
		*slots[i++] = a;
	r.rax = uint64_t(nr);
	r.orig_rax = uint64_t(-1);  // not inside a syscall: no restart logic may rewrite what we set
	r.rip = syscall_addr;
	BCK_CHECK(set_regs(tid, r));
	Status ran = run_to_exit(tid);
	int64_t ret = 0;
	if (ran) {
		auto after = get_regs(tid);
		if (!after)
			ran = std::unexpected(after.error());
		else
			ret = int64_t(after->rax);
	}
	if (restore) {
		BCK_CHECK(set_regs(tid, saved));
		BCK_CHECK(set_sigmask(tid, saved_mask));
	}
	BCK_CHECK(ran);
	return ret;
}

}  // namespace bpfckpt
