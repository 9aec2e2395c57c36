// Running a system call inside another process: its thread, in a ptrace stop, is pointed at a `syscall`
// instruction in its own [vdso] (writing one into its text would turn that page into a private copy), run to the
// syscall's exit with PTRACE_SYSCALL, and put back. Used by restore (the shim's last munmap) and by dump (the
// userfaultfd that write tracking needs must be created by the tracked process itself).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>

#include "common/result.h"

namespace bpfckpt {

// Offset of a `syscall` instruction inside this kernel's vDSO (the same in every process on this kernel).
Result<uint64_t> vdso_syscall_offset();

// Runs syscall `nr` with up to six arguments in thread `tid` (ptrace-stopped by us), through the `syscall`
// instruction at `syscall_addr`, and returns what it returned (-errno on failure). Signals are blocked meanwhile.
// With `restore`, the thread's registers and signal mask are put back afterwards, so it resumes exactly as it
// was, an interrupted syscall included.
Result<int64_t> inject_syscall(pid_t tid, uint64_t syscall_addr, long nr, std::initializer_list<uint64_t> args,
			       bool restore = true);

}  // namespace bpfckpt
