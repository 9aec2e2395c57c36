// core::lay_out_core: where the ELF header, program headers, notes and each vma's bytes go in a core file, including
// a process with more vmas than e_phnum can count (PN_XNUM).
#include <gtest/gtest.h>

#include <elf.h>
#include <sys/mman.h>

#include <cstring>

#include "core/elf_core.h"

using namespace bpfckpt;
using namespace bpfckpt::core;

namespace {

constexpr uint64_t kPage = image::kPageSize;

image::Vma vma(uint64_t start, uint64_t pages, uint32_t prot)
{
	image::Vma v;
	v.start = start;
	v.end = start + pages * kPage;
	v.prot = prot;
	v.kind = "anon";
	return v;
}

Elf64_Ehdr header_of(const CoreLayout& l)
{
	Elf64_Ehdr h;
	std::memcpy(&h, l.head.data(), sizeof(h));
	return h;
}

TEST(ElfCoreLayout, HeadersNotesAndSegments)
{
	std::vector<image::Vma> vmas{vma(0x400000, 2, PROT_READ | PROT_EXEC), vma(0x600000, 1, 0),
				     vma(0x7f0000000000, 3, PROT_READ | PROT_WRITE)};
	std::string notes(100, 'n');
	CoreLayout l = lay_out_core(vmas, {true, false, true}, notes);

	Elf64_Ehdr h = header_of(l);
	EXPECT_EQ(std::memcmp(h.e_ident, ELFMAG, SELFMAG), 0);
	EXPECT_EQ(h.e_type, ET_CORE);
	EXPECT_EQ(h.e_machine, EM_X86_64);
	EXPECT_EQ(h.e_phnum, 4);
	EXPECT_EQ(h.e_shnum, 0);
	EXPECT_EQ(l.head.size() % kPage, 0u) << "the first segment starts on a page";

	Elf64_Phdr note;
	std::memcpy(&note, l.head.data() + h.e_phoff, sizeof(note));
	EXPECT_EQ(note.p_type, uint32_t(PT_NOTE));
	EXPECT_EQ(note.p_filesz, notes.size());
	EXPECT_EQ(l.head.substr(note.p_offset, notes.size()), notes);

	ASSERT_EQ(l.loads.size(), 3u);
	EXPECT_EQ(l.loads[0].p_offset, l.head.size());
	EXPECT_EQ(l.loads[0].p_filesz, 2 * kPage);
	EXPECT_EQ(l.loads[0].p_flags, uint32_t(PF_R | PF_X));
	EXPECT_EQ(l.loads[1].p_filesz, 0u) << "a vma without bytes in the file";
	EXPECT_EQ(l.loads[1].p_memsz, kPage);
	EXPECT_EQ(l.loads[1].p_flags, 0u);
	EXPECT_EQ(l.loads[2].p_offset, l.loads[0].p_offset + 2 * kPage);
	EXPECT_EQ(l.loads[2].p_vaddr, 0x7f0000000000u);
	EXPECT_EQ(l.loads[2].p_flags, uint32_t(PF_R | PF_W));
	EXPECT_EQ(l.size, l.loads[2].p_offset + 3 * kPage);
	for (size_t i = 0; i < l.loads.size(); i++) {
		Elf64_Phdr in_head;
		std::memcpy(&in_head, l.head.data() + h.e_phoff + (i + 1) * sizeof(Elf64_Phdr), sizeof(in_head));
		EXPECT_EQ(std::memcmp(&in_head, &l.loads[i], sizeof(in_head)), 0) << "program header " << i + 1;
	}
}

TEST(ElfCoreLayout, MoreProgramHeadersThanPhnumCounts)
{
	std::vector<image::Vma> vmas;
	for (uint64_t i = 0; i < 70000; i++)
		vmas.push_back(vma(0x10000000 + 2 * i * kPage, 1, PROT_READ));
	CoreLayout l = lay_out_core(vmas, std::vector<bool>(vmas.size(), false), "");

	Elf64_Ehdr h = header_of(l);
	EXPECT_EQ(h.e_phnum, PN_XNUM);
	ASSERT_EQ(h.e_shnum, 1);
	EXPECT_EQ(h.e_shentsize, sizeof(Elf64_Shdr));
	ASSERT_LE(h.e_shoff + sizeof(Elf64_Shdr), l.head.size());
	Elf64_Shdr sh;
	std::memcpy(&sh, l.head.data() + h.e_shoff, sizeof(sh));
	EXPECT_EQ(sh.sh_info, 70001u) << "the real count of program headers";
	EXPECT_EQ(sh.sh_type, uint32_t(SHT_NULL));
	EXPECT_GE(h.e_shoff, h.e_phoff + 70001 * sizeof(Elf64_Phdr)) << "after the program headers";
}

}  // namespace
