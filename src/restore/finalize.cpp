#include "restore/finalize.h"

#include <elf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "bpfckpt/compat.h"
#include "common/fd.h"
#include "common/ptrace_syscall.h"
#include "image/image_dir.h"
#include "common/x86_regs.h"

namespace bpfckpt::restore {

namespace {

Status set_regset(pid_t tid, int type, void* data, size_t len, const char* what)
{
	iovec iov{data, len};
	if (ptrace(PTRACE_SETREGSET, tid, (void*)(long)type, &iov) != 0)
		return fail_sys(errno, "thread {}: set {}", tid, what);
	return {};
}

// munmap(start, len) run by the thread itself: the shim cannot unmap its own code and go on. Its registers are
// set from the image right after, so they are not put back.
Status inject_munmap(pid_t tid, uint64_t syscall_addr, uint64_t start, uint64_t len)
{
	int64_t r = BCK_TRY(inject_syscall(tid, syscall_addr, SYS_munmap, {start, len}, false));
	if (r < 0)
		return fail_errno(ExitCode::failure, int(-r), "thread {}: unmap the restore shim", tid);
	return {};
}

// A thread stopped inside a syscall resumes as the kernel's signal path would have made it: restartable calls
// are re-issued (ip back over the 2-byte syscall instruction, rax = the syscall number again); a call that can
// only be restarted through its restart block (nanosleep and friends) returns EINTR, as after a handled signal.
void fix_syscall_restart(user_regs_struct& r, const image::SyscallState& sc)
{
	if (!sc.in_syscall)
		return;
	switch (-sc.ret) {
	case BCK_ERESTARTSYS:
	case BCK_ERESTARTNOINTR:
	case BCK_ERESTARTNOHAND:
		r.rax = uint64_t(sc.nr);
		r.rip -= 2;
		break;
	case BCK_ERESTART_RESTARTBLOCK:
		r.rax = uint64_t(-EINTR);
		break;
	}
	r.orig_rax = uint64_t(-1);  // so the kernel does not apply its own restart logic on top
}


Status finalize_thread(const image::Thread& t, pid_t tid, const std::string& dir)
{
	user_regs_struct r = regs_from_map(t.regs.gpr);
	fix_syscall_restart(r, t.syscall);
	BCK_CHECK(set_regset(tid, NT_PRSTATUS, &r, sizeof(r), "registers"));
	std::string xstate = BCK_TRY(image::read_blob_ref(dir, t.regs.xstate));
	BCK_CHECK(set_regset(tid, NT_X86_XSTATE, xstate.data(), xstate.size(), "XSAVE state"));
	uint64_t mask = t.sigmask;
	if (ptrace(PTRACE_SETSIGMASK, tid, (void*)sizeof(mask), &mask) != 0)
		return fail_sys(errno, "thread {}: set signal mask", tid);
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	for (uint32_t c : t.cpus)
		if (c < CPU_SETSIZE)
			CPU_SET(c, &cpus);
	// Best effort: the CPUs may not exist here (another machine); the thread then runs where it may.
	sched_setaffinity(tid, sizeof(cpus), &cpus);
	setpriority(PRIO_PROCESS, id_t(tid), t.nice);
	return {};
}

}  // namespace

Status finalize_process(const image::Process& p, const std::string& dir, uint64_t shim_start, uint64_t shim_len,
			const std::function<pid_t(uint32_t)>& outer_tid)
{
	auto vdso = std::find_if(p.vmas.begin(), p.vmas.end(), [](const auto& v) { return v.kind == "vdso"; });
	if (vdso == p.vmas.end())
		return fail(ExitCode::bad_image, "pid {}: no [vdso] in the image", p.pid);
	uint64_t off = BCK_TRY(vdso_syscall_offset());
	BCK_CHECK(inject_munmap(outer_tid(p.threads.front().tid), vdso->start + off, shim_start, shim_len));
	for (const image::Thread& t : p.threads)
		BCK_CHECK(finalize_thread(t, outer_tid(t.tid), dir));
	return {};
}

}  // namespace bpfckpt::restore
