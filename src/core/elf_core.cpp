#include "core/elf_core.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "bpfckpt/records.h"
#include "common/fs.h"
#include "core/elf_notes.h"

namespace bpfckpt::core {

namespace {

using image::kPageSize;

constexpr size_t kChunk = 8u << 20;        // bytes read and written at a time
constexpr uint64_t kMinSkip = 64u << 10;   // shorter runs of missing pages are written as zeros: writes stay large

uint64_t page_up(uint64_t n)
{
	return (n + kPageSize - 1) & ~(kPageSize - 1);
}

Elf64_Ehdr elf_header(size_t nphdrs, bool extnum)
{
	Elf64_Ehdr h{};
	std::memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS64;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_ident[EI_VERSION] = EV_CURRENT;
	h.e_ident[EI_OSABI] = ELFOSABI_NONE;
	h.e_type = ET_CORE;
	h.e_machine = EM_X86_64;
	h.e_version = EV_CURRENT;
	h.e_phoff = sizeof(Elf64_Ehdr);
	h.e_ehsize = sizeof(Elf64_Ehdr);
	h.e_phentsize = sizeof(Elf64_Phdr);
	// gABI: with PN_XNUM in e_phnum, the real count is sh_info of section header 0.
	h.e_phnum = extnum ? PN_XNUM : uint16_t(nphdrs);
	if (extnum) {
		h.e_shoff = sizeof(Elf64_Ehdr) + nphdrs * sizeof(Elf64_Phdr);
		h.e_shentsize = sizeof(Elf64_Shdr);
		h.e_shnum = 1;
	}
	return h;
}

uint32_t segment_flags(uint32_t prot)
{
	return ((prot & PROT_READ) ? PF_R : 0) | ((prot & PROT_WRITE) ? PF_W : 0) | ((prot & PROT_EXEC) ? PF_X : 0);
}

template <typename T>
void append(std::string& out, const T& v)
{
	out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

}  // namespace

// The core file, written front to back: data with write(), missing pages skipped with lseek, its size set at the end
// (the file may end in a hole).
class CoreStream {
public:
	explicit CoreStream(int fd) : fd_(fd) {}

	Status put(const char* data, size_t len)
	{
		BCK_CHECK(write_all(fd_, data, len));
		at_ += len;
		written_ += len;
		return {};
	}
	Status skip(uint64_t len)
	{
		if (::lseek(fd_, off_t(len), SEEK_CUR) < 0)
			return fail_sys(errno, "seek past {} bytes of missing pages", len);
		at_ += len;
		return {};
	}
	Status finish(uint64_t size)
	{
		if (at_ != size)
			return fail(ExitCode::failure, "wrote {} bytes of a core laid out as {}", at_, size);
		if (::ftruncate(fd_, off_t(size)) != 0)
			return fail_sys(errno, "set the core's size to {}", size);
		return {};
	}
	uint64_t written() const { return written_; }

private:
	int fd_;
	uint64_t at_ = 0;
	uint64_t written_ = 0;
};

CoreLayout lay_out_core(const std::vector<image::Vma>& vmas, const std::vector<bool>& with_bytes,
			const std::string& notes)
{
	size_t nphdrs = 1 + vmas.size();
	bool extnum = nphdrs >= PN_XNUM;
	uint64_t notes_at = sizeof(Elf64_Ehdr) + nphdrs * sizeof(Elf64_Phdr) + (extnum ? sizeof(Elf64_Shdr) : 0);
	uint64_t data_at = page_up(notes_at + notes.size());

	CoreLayout l;
	Elf64_Phdr note{};
	note.p_type = PT_NOTE;
	note.p_offset = notes_at;
	note.p_filesz = notes.size();
	note.p_align = 4;
	uint64_t at = data_at;
	for (size_t i = 0; i < vmas.size(); i++) {
		const image::Vma& v = vmas[i];
		Elf64_Phdr ph{};
		ph.p_type = PT_LOAD;
		ph.p_flags = segment_flags(v.prot);
		ph.p_offset = at;
		ph.p_vaddr = v.start;
		ph.p_memsz = v.end - v.start;
		ph.p_filesz = with_bytes[i] ? ph.p_memsz : 0;
		ph.p_align = kPageSize;
		at += ph.p_filesz;
		l.loads.push_back(ph);
	}
	l.size = at;

	append(l.head, elf_header(nphdrs, extnum));
	append(l.head, note);
	for (const Elf64_Phdr& ph : l.loads)
		append(l.head, ph);
	if (extnum) {
		Elf64_Shdr sh{};
		sh.sh_info = uint32_t(nphdrs);
		append(l.head, sh);
	}
	l.head += notes;
	l.head.resize(data_at, '\0');
	return l;
}

Result<std::unique_ptr<CoreWriter>> CoreWriter::create(const image::Chain& chain)
{
	void* m = ::mmap(nullptr, kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return fail_sys(errno, "allocate a {} byte buffer", kChunk);
	// Best effort: first-touch faults cost 12-16 us a page on the PVM guests (KERNEL.md).
	::madvise(m, kChunk, MADV_POPULATE_WRITE);
	return std::unique_ptr<CoreWriter>(new CoreWriter(chain, static_cast<char*>(m)));
}

CoreWriter::~CoreWriter()
{
	::munmap(buf_, kChunk);
}

// Whether a vma's bytes go into the core. Not [vvar] and device memory (the kernel's cores leave them out too: their
// contents are not the process's), and not a file mapping the process never wrote (in no image of the chain) whose
// file is not here any more: with p_filesz 0 gdb reads it from the file it is given, as for a kernel's core.
bool CoreWriter::with_bytes(const image::Vma& v)
{
	if (v.kind == "vvar" || v.kind == "vvar_vclock" || (v.vm_flags & (BCK_VM_IO | BCK_VM_PFNMAP)))
		return false;
	if (v.kind == "file" && v.pages.empty() && !v.inherit && !backing_.available(v))
		return false;
	return true;
}

// The vma chunk by chunk: what the image holds, then what the file (or vDSO) gives for the rest, then zeros.
Status CoreWriter::write_vma(CoreStream& out, const image::Process& p, const image::Vma& v)
{
	for (uint64_t addr = v.start; addr < v.end; addr += kChunk) {
		uint64_t len = std::min<uint64_t>(kChunk, v.end - addr);
		std::vector<Span> holes = BCK_TRY(pages_.read(p, addr, len, buf_));
		if (!holes.empty() && backing_.available(v)) {
			BCK_CHECK(backing_.fill(v, holes, addr, buf_));
			holes.clear();
		}
		uint64_t at = addr;  // written up to here
		for (const Span& h : holes) {
			if (h.end - h.start < kMinSkip) {
				std::memset(buf_ + (h.start - addr), 0, h.end - h.start);
				continue;
			}
			BCK_CHECK(out.put(buf_ + (at - addr), h.start - at));
			BCK_CHECK(out.skip(h.end - h.start));
			at = h.end;
		}
		BCK_CHECK(out.put(buf_ + (at - addr), addr + len - at));
	}
	return {};
}

Result<CoreFileStats> CoreWriter::write(int fd, const image::Process& p)
{
	std::string notes = BCK_TRY(build_notes(p, dir_, pages_));
	std::vector<bool> bytes;
	for (const image::Vma& v : p.vmas)
		bytes.push_back(with_bytes(v));
	CoreLayout layout = lay_out_core(p.vmas, bytes, notes);

	CoreStream out(fd);
	BCK_CHECK(out.put(layout.head.data(), layout.head.size()));
	for (size_t i = 0; i < p.vmas.size(); i++)
		if (bytes[i])
			BCK_CHECK(context(write_vma(out, p, p.vmas[i]), "vma {:x}-{:x}", p.vmas[i].start, p.vmas[i].end));
	BCK_CHECK(out.finish(layout.size));
	return CoreFileStats{layout.size, out.written()};
}

}  // namespace bpfckpt::core
