#include "core/elf_notes.h"

#include <elf.h>
#include <signal.h>
#include <sys/procfs.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "common/x86_regs.h"
#include "image/image_dir.h"

namespace bpfckpt::core {

namespace {

// bfd (gdb) recognises x86_64 Linux notes by their sizes: a PRSTATUS of another size is not read as registers.
static_assert(sizeof(elf_prstatus) == 336, "NT_PRSTATUS on x86_64 Linux is 336 bytes");
static_assert(sizeof(elf_prpsinfo) == 136, "NT_PRPSINFO on x86_64 Linux is 136 bytes");
static_assert(sizeof(elf_gregset_t) == sizeof(user_regs_struct), "pr_reg is a user_regs_struct");
static_assert(sizeof(siginfo_t) == 128, "NT_SIGINFO holds a 128-byte siginfo_t");

size_t align4(size_t n)
{
	return (n + 3) & ~size_t(3);
}

void add_note(std::string& out, const char* name, uint32_t type, const void* desc, size_t len)
{
	Elf64_Nhdr h{};
	h.n_namesz = uint32_t(std::strlen(name) + 1);
	h.n_descsz = uint32_t(len);
	h.n_type = type;
	out.append(reinterpret_cast<const char*>(&h), sizeof(h));
	out.append(name, h.n_namesz);
	out.resize(align4(out.size()), '\0');
	out.append(static_cast<const char*>(desc), len);
	out.resize(align4(out.size()), '\0');
}

void add_note(std::string& out, const char* name, uint32_t type, const std::string& desc)
{
	add_note(out, name, type, desc.data(), desc.size());
}

elf_prstatus prstatus(const image::Process& p, const image::Thread& t)
{
	elf_prstatus s{};
	// No signal: the image is a snapshot of a process that was stopped, not killed.
	s.pr_sigpend = t.pending;
	s.pr_sighold = t.sigmask;
	s.pr_pid = pid_t(t.tid);
	s.pr_ppid = pid_t(p.ppid);
	s.pr_pgrp = pid_t(p.pgid);
	s.pr_sid = pid_t(p.sid);
	user_regs_struct regs = regs_from_map(t.regs.gpr);
	std::memcpy(&s.pr_reg, &regs, sizeof(regs));
	s.pr_fpvalid = t.regs.fpregs.size > 0;
	return s;
}

// The state letters of fs/proc's /proc/PID/stat, in the numbering the kernel's cores use (R S D T Z).
std::pair<char, char> state_code(const std::string& state)
{
	if (state == "sleeping")
		return {1, 'S'};
	if (state == "disk-sleep")
		return {2, 'D'};
	if (state == "stopped" || state == "traced")
		return {3, 'T'};
	if (state == "zombie" || state == "dead")
		return {4, 'Z'};
	return {0, 'R'};
}

// The command line as ps shows it: argv joined by spaces, cut to what fits in pr_psargs.
Result<std::string> psargs(const image::Process& p, ImagePages& pages)
{
	const image::Mm& mm = p.mm;
	if (mm.arg_end <= mm.arg_start)
		return p.comm;
	std::string args(std::min<uint64_t>(mm.arg_end - mm.arg_start, ELF_PRARGSZ - 1), '\0');
	BCK_TRY(pages.read(p, mm.arg_start, args.size(), args.data()));  // what the image lacks reads as NULs
	std::replace(args.begin(), args.end(), '\0', ' ');
	args.erase(args.find_last_not_of(' ') + 1);
	return args.empty() ? p.comm : args;
}

Result<elf_prpsinfo> prpsinfo(const image::Process& p, ImagePages& pages)
{
	elf_prpsinfo s{};
	const image::Thread& leader = p.threads.front();
	std::tie(s.pr_state, s.pr_sname) = state_code(leader.state);
	s.pr_zomb = s.pr_sname == 'Z';
	s.pr_nice = char(leader.nice);
	s.pr_uid = p.creds.uid;
	s.pr_gid = p.creds.gid;
	s.pr_pid = pid_t(p.pid);
	s.pr_ppid = pid_t(p.ppid);
	s.pr_pgrp = pid_t(p.pgid);
	s.pr_sid = pid_t(p.sid);
	std::strncpy(s.pr_fname, p.comm.c_str(), sizeof(s.pr_fname) - 1);
	std::string args = BCK_TRY(psargs(p, pages));
	std::strncpy(s.pr_psargs, args.c_str(), sizeof(s.pr_psargs) - 1);
	return s;
}

// NT_FILE: count, page size, (start, end, offset in pages) per file mapping, then their paths, NUL-terminated.
std::string file_note(const image::Process& p)
{
	std::vector<const image::Vma*> mapped;
	for (const image::Vma& v : p.vmas)
		if ((v.kind == "file" || v.kind == "shmem") && !v.path.empty())
			mapped.push_back(&v);
	std::vector<uint64_t> words{mapped.size(), image::kPageSize};
	for (const image::Vma* v : mapped)
		words.insert(words.end(), {v->start, v->end, v->offset / image::kPageSize});
	std::string out(reinterpret_cast<const char*>(words.data()), words.size() * sizeof(uint64_t));
	for (const image::Vma* v : mapped)
		out.append(v->path.c_str(), v->path.size() + 1);
	return out;
}

std::string auxv_note(const image::Process& p)
{
	return std::string(reinterpret_cast<const char*>(p.mm.auxv.data()), p.mm.auxv.size() * sizeof(uint64_t));
}

Status add_regsets(std::string& out, const image::Thread& t, const std::string& dir)
{
	if (t.regs.fpregs.size)
		add_note(out, "CORE", NT_PRFPREG, BCK_TRY(image::read_blob_ref(dir, t.regs.fpregs)));
	if (t.regs.xstate.size)
		add_note(out, "LINUX", NT_X86_XSTATE, BCK_TRY(image::read_blob_ref(dir, t.regs.xstate)));
	return {};
}

}  // namespace

Result<std::string> build_notes(const image::Process& p, const std::string& dir, ImagePages& pages)
{
	std::string out;
	bool leader = true;
	for (const image::Thread& t : p.threads) {
		elf_prstatus st = prstatus(p, t);
		add_note(out, "CORE", NT_PRSTATUS, &st, sizeof(st));
		if (leader) {
			elf_prpsinfo ps = BCK_TRY(prpsinfo(p, pages));
			add_note(out, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
			siginfo_t si{};
			add_note(out, "CORE", NT_SIGINFO, &si, sizeof(si));
			add_note(out, "CORE", NT_AUXV, auxv_note(p));
			add_note(out, "CORE", NT_FILE, file_note(p));
			leader = false;
		}
		BCK_CHECK(context(add_regsets(out, t, dir), "tid {}", t.tid));
	}
	return out;
}

}  // namespace bpfckpt::core
