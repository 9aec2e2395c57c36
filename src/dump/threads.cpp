#include "dump/threads.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <cstring>

#include "bpfckpt/compat.h"
#include "common/x86_regs.h"

namespace bpfckpt::dump {

namespace {

// The XSAVE area is 2432 bytes on this machine's CPUs and up to ~11 KiB with AMX; the kernel trims the iovec.
constexpr size_t kMaxXstate = 16384;

Result<std::string> get_regset(pid_t tid, int type, size_t max, const char* what)
{
	std::string buf(max, '\0');
	iovec iov{buf.data(), buf.size()};
	if (ptrace(PTRACE_GETREGSET, tid, (void*)(long)type, &iov) != 0)
		return fail_sys(errno, "thread {}: read {}", tid, what);
	buf.resize(iov.iov_len);
	return buf;
}

}  // namespace

Result<ThreadCpu> read_thread_cpu(pid_t tid)
{
	ThreadCpu cpu;
	std::string gp = BCK_TRY(get_regset(tid, NT_PRSTATUS, sizeof(user_regs_struct), "registers"));
	if (gp.size() != sizeof(user_regs_struct))
		return fail(ExitCode::unsupported, "thread {}: registers of {} bytes (not a 64-bit task)", tid, gp.size());
	user_regs_struct r;
	std::memcpy(&r, gp.data(), sizeof(r));
	cpu.regs.gpr = regs_to_map(r);

	// orig_rax is the syscall number while the thread is inside one (-1 otherwise); rax then holds what the
	// kernel will return, -ERESTART* when the call was interrupted and must be restarted on restore.
	cpu.syscall.nr = int64_t(r.orig_rax);
	cpu.syscall.ret = int64_t(r.rax);
	cpu.syscall.in_syscall = int64_t(r.orig_rax) >= 0;

	cpu.fpregs = BCK_TRY(get_regset(tid, NT_PRFPREG, sizeof(user_fpregs_struct), "FPU registers"));
	cpu.xstate = BCK_TRY(get_regset(tid, NT_X86_XSTATE, kMaxXstate, "XSAVE state"));
	if (cpu.xstate.size() >= BCK_XSTATE_XCR0_OFFSET + 8)
		std::memcpy(&cpu.xcr0, cpu.xstate.data() + BCK_XSTATE_XCR0_OFFSET, 8);
	return cpu;
}

}  // namespace bpfckpt::dump
