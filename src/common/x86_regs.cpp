#include "common/x86_regs.h"

#include <cstddef>

namespace bpfckpt {

namespace {

struct RegField {
	const char* name;
	size_t offset;
};

#define BCK_REG(n) {#n, offsetof(user_regs_struct, n)}
constexpr RegField kRegs[] = {
	BCK_REG(r15), BCK_REG(r14), BCK_REG(r13), BCK_REG(r12), BCK_REG(rbp), BCK_REG(rbx), BCK_REG(r11),
	BCK_REG(r10), BCK_REG(r9), BCK_REG(r8), BCK_REG(rax), BCK_REG(rcx), BCK_REG(rdx), BCK_REG(rsi),
	BCK_REG(rdi), BCK_REG(orig_rax), BCK_REG(rip), BCK_REG(cs), BCK_REG(eflags), BCK_REG(rsp), BCK_REG(ss),
	BCK_REG(fs_base), BCK_REG(gs_base), BCK_REG(ds), BCK_REG(es), BCK_REG(fs), BCK_REG(gs),
};
#undef BCK_REG

}  // namespace

std::map<std::string, uint64_t> regs_to_map(const user_regs_struct& r)
{
	std::map<std::string, uint64_t> m;
	for (const RegField& f : kRegs)
		m[f.name] = *reinterpret_cast<const unsigned long long*>(reinterpret_cast<const char*>(&r) + f.offset);
	return m;
}

user_regs_struct regs_from_map(const std::map<std::string, uint64_t>& m)
{
	user_regs_struct r{};
	for (const RegField& f : kRegs)
		if (auto it = m.find(f.name); it != m.end())
			*reinterpret_cast<unsigned long long*>(reinterpret_cast<char*>(&r) + f.offset) = it->second;
	return r;
}

}  // namespace bpfckpt
