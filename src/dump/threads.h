// Per-thread CPU state read with ptrace from a seized thread: general registers (with fs/gs bases), the FXSAVE
// area and the full XSAVE area, and whether the thread was stopped inside a syscall.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::dump {

struct ThreadCpu {
	image::Regs regs;          // gpr filled; xstate/fpregs refs are set by the caller once the bytes are stored
	image::SyscallState syscall;
	std::string fpregs;        // NT_PRFPREG bytes
	std::string xstate;        // NT_X86_XSTATE bytes
	uint64_t xcr0 = 0;
};

Result<ThreadCpu> read_thread_cpu(pid_t tid);

}  // namespace bpfckpt::dump
