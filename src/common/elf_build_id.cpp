#include "common/elf_build_id.h"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace bpfckpt {

namespace {

// Far above what linkers emit (a handful of program headers, notes of some hundred bytes, ids of 8 to 20 bytes),
// small enough that a hostile file cannot make us read much.
constexpr size_t kMaxPhdrs = 1024;
constexpr uint64_t kMaxNoteBytes = 64 * 1024;
constexpr uint32_t kMaxIdBytes = 64;

bool read_exact(int fd, void* buf, size_t len, uint64_t off)
{
	return pread(fd, buf, len, off_t(off)) == ssize_t(len);
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Walks one PT_NOTE segment's notes for the GNU build-id. Notes are 4-byte aligned, or 8 in a segment aligned so.
std::string build_id_in_notes(const std::vector<char>& notes, uint64_t align)
{
	uint64_t at = 0;
	while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
		Elf64_Nhdr n;
		std::memcpy(&n, notes.data() + at, sizeof(n));
		uint64_t name_at = at + sizeof(n);
		uint64_t desc_at = align_up(name_at + n.n_namesz, align);
		uint64_t next = align_up(desc_at + n.n_descsz, align);
		if (desc_at > notes.size() || n.n_descsz > notes.size() - desc_at)
			return "";
		if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(notes.data() + name_at, "GNU", 4) == 0 &&
		    n.n_descsz > 0 && n.n_descsz <= kMaxIdBytes) {
			std::string hex;
			for (uint32_t i = 0; i < n.n_descsz; i++)
				hex += fmt::format("{:02x}", uint8_t(notes[desc_at + i]));
			return hex;
		}
		at = next;
	}
	return "";
}

}  // namespace

std::string elf_build_id(int fd)
{
	struct stat st;
	Elf64_Ehdr eh;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !read_exact(fd, &eh, sizeof(eh), 0))
		return "";
	if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxPhdrs)
		return "";
	std::vector<Elf64_Phdr> ph(eh.e_phnum);
	if (!read_exact(fd, ph.data(), ph.size() * sizeof(Elf64_Phdr), eh.e_phoff))
		return "";
	uint64_t size = uint64_t(st.st_size);
	for (const Elf64_Phdr& p : ph) {
		if (p.p_type != PT_NOTE || p.p_filesz == 0 || p.p_filesz > kMaxNoteBytes || p.p_offset > size ||
		    p.p_filesz > size - p.p_offset)
			continue;
		std::vector<char> notes(p.p_filesz);
		if (!read_exact(fd, notes.data(), notes.size(), p.p_offset))
			continue;
		if (std::string id = build_id_in_notes(notes, p.p_align == 8 ? 8 : 4); !id.empty())
			return id;
	}
	return "";
}

}  // namespace bpfckpt
