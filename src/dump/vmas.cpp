#include "dump/vmas.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "bpfckpt/records.h"

namespace bpfckpt::dump {

namespace {

bool ends_with(const std::string& s, const std::string& suffix)
{
	return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What kind of memory a file-backed VMA is. Shared anonymous memory is a deleted /dev/zero on the internal shmem
// mount, memfds are "/memfd:NAME (deleted)"; both must be saved as objects, not reopened by path.
Result<std::string> file_kind(const RawVma& v)
{
	const std::string& p = v.path;
	bool shared = v.rec.vm_flags & BCK_VM_MAYSHARE;
	if (p.rfind("/memfd:", 0) == 0 || (p.rfind("/dev/zero", 0) == 0 && ends_with(p, " (deleted)")))
		return std::string(shared ? "shmem" : "file");
	if (p.rfind("/SYSV", 0) == 0)
		return fail(ExitCode::unsupported, "vma {:x}-{:x}: System V shared memory: not supported", v.rec.start,
			    v.rec.end);
	if (ends_with(p, " (deleted)"))
		return fail(ExitCode::unsupported, "vma {:x}-{:x}: mapping of the unlinked file {}: not supported",
			    v.rec.start, v.rec.end, p);
	if (v.rec.vm_flags & BCK_VM_HUGETLB)
		return fail(ExitCode::unsupported, "vma {:x}-{:x}: hugetlbfs mapping: not supported", v.rec.start,
			    v.rec.end);
	return std::string("file");
}

Result<image::Vma> build_vma(const RawTask& task, const RawVma& v)
{
	image::Vma m;
	const bck_vma& r = v.rec;
	m.start = r.start;
	m.end = r.end;
	m.prot = ((r.vm_flags & BCK_VM_READ) ? PROT_READ : 0) | ((r.vm_flags & BCK_VM_WRITE) ? PROT_WRITE : 0) |
		 ((r.vm_flags & BCK_VM_EXEC) ? PROT_EXEC : 0);
	m.shared = r.vm_flags & BCK_VM_MAYSHARE;
	m.vm_flags = r.vm_flags;
	if (r.file_id) {
		if (!v.path_seen || v.path.empty())
			return fail(ExitCode::unsupported, "vma {:x}-{:x}: backing file path unresolvable", r.start, r.end);
		m.kind = BCK_TRY(file_kind(v));
		m.path = v.path;
		m.offset = r.pgoff * image::kPageSize;
		m.dev = r.dev;
		m.ino = r.ino;
		m.file_size = r.file_size;
		m.mtime_sec = r.mtime_sec;
		m.mtime_nsec = r.mtime_nsec;
		return m;
	}
	std::string special(r.special, strnlen(r.special, sizeof(r.special)));
	if (special.empty() && r.start == task.rec.vdso)
		special = "[vdso]";  // special_mapping_name was not found through kallsyms
	if (!special.empty()) {
		static const char* known[] = {"[vdso]", "[vvar]", "[vvar_vclock]"};
		if (std::find(std::begin(known), std::end(known), special) == std::end(known))
			return fail(ExitCode::unsupported, "vma {:x}-{:x}: special mapping {}: not supported", r.start,
				    r.end, special);
		m.kind = special.substr(1, special.size() - 2);
		m.path = special;
		return m;
	}
	m.kind = "anon";
	// Named the way fs/proc/task_mmu.c names them.
	if (r.start <= task.rec.brk && r.end >= task.rec.start_brk) {
		m.kind = "heap";
		m.path = "[heap]";
	} else if (r.start <= task.rec.start_stack && r.end >= task.rec.start_stack) {
		m.kind = "stack";
		m.path = "[stack]";
	}
	return m;
}

}  // namespace

Result<std::vector<image::Vma>> build_vmas(const RawTask& task, const std::vector<const RawVma*>& raw)
{
	std::vector<image::Vma> out;
	out.reserve(raw.size());
	for (const RawVma* v : raw)
		out.push_back(BCK_TRY(build_vma(task, *v)));
	std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
	return out;
}

}  // namespace bpfckpt::dump
