// Content digests (common/file_digest.h, common/elf_build_id.h): an ELF's build-id found in its note, whatever the
// note alignment; other files hashed whole, so one flipped byte changes the digest; hostile ELF headers yield no id.
#include <gtest/gtest.h>

#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "common/elf_build_id.h"
#include "common/fd.h"
#include "common/file_digest.h"
#include "common/fs.h"

using namespace bpfckpt;

namespace {

class FileDigestTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		std::string tmpl = (std::filesystem::temp_directory_path() / "bpfckpt-digest-XXXXXX").string();
		ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
		dir_ = tmpl;
	}
	void TearDown() override { std::filesystem::remove_all(dir_); }

	UniqueFd put(const std::string& name, const std::string& bytes)
	{
		std::string path = dir_ + "/" + name;
		EXPECT_TRUE(write_file(path, bytes, 0600));
		return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	}

	// A minimal 64-bit ELF: one PT_NOTE holding an unrelated note, then a GNU build-id note.
	static std::string elf_with_build_id(const std::string& id, uint64_t align)
	{
		auto pad = [&](std::string& s) { s.resize((s.size() + align - 1) / align * align, '\0'); };
		std::string notes;
		auto add_note = [&](uint32_t type, const std::string& name, const std::string& desc) {
			Elf64_Nhdr n{uint32_t(name.size() + 1), uint32_t(desc.size()), type};
			notes.append(reinterpret_cast<const char*>(&n), sizeof(n));
			notes += name;
			notes += '\0';
			pad(notes);
			notes += desc;
			pad(notes);
		};
		add_note(NT_GNU_ABI_TAG, "GNU", std::string(16, '\1'));
		add_note(NT_GNU_BUILD_ID, "GNU", id);
		Elf64_Ehdr eh{};
		std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
		eh.e_ident[EI_CLASS] = ELFCLASS64;
		eh.e_ident[EI_DATA] = ELFDATA2LSB;
		eh.e_phoff = sizeof(eh);
		eh.e_phentsize = sizeof(Elf64_Phdr);
		eh.e_phnum = 1;
		Elf64_Phdr ph{};
		ph.p_type = PT_NOTE;
		ph.p_offset = sizeof(eh) + sizeof(ph);
		ph.p_filesz = notes.size();
		ph.p_align = align;
		std::string out(reinterpret_cast<const char*>(&eh), sizeof(eh));
		out.append(reinterpret_cast<const char*>(&ph), sizeof(ph));
		return out + notes;
	}

	std::string dir_;
};

TEST_F(FileDigestTest, BuildIdOfSyntheticElf)
{
	const std::string id = "\x01\x23\x45\x67\x89\xab\xcd\xef\x10\x32";
	for (uint64_t align : {4, 8}) {
		SCOPED_TRACE(align);
		UniqueFd fd = put("elf" + std::to_string(align), elf_with_build_id(id, align));
		EXPECT_EQ(elf_build_id(fd.get()), "0123456789abcdef1032");
		auto d = file_digest(fd.get());
		ASSERT_TRUE(d) << d.error().describe();
		EXPECT_EQ(d->value_or(""), "build_id:0123456789abcdef1032");
		EXPECT_TRUE(is_valid_digest(**d));
	}
}

TEST_F(FileDigestTest, OwnExecutableHasABuildId)
{
	UniqueFd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
	ASSERT_TRUE(self);
	std::string id = elf_build_id(self.get());
	EXPECT_GE(id.size(), 16u) << "gcc and clang link with --build-id on Debian";
}

TEST_F(FileDigestTest, HostileElfHeadersGiveNoId)
{
	std::string good = elf_with_build_id("\x11\x22\x33\x44", 4);
	auto broken = [&](size_t at, const void* v, size_t len) {
		std::string s = good;
		std::memcpy(s.data() + at, v, len);
		return s;
	};
	uint64_t huge = ~0ull;
	uint16_t many = 60000;
	const std::pair<const char*, std::string> cases[] = {
		{"phoff past the end", broken(offsetof(Elf64_Ehdr, e_phoff), &huge, 8)},
		{"absurd phnum", broken(offsetof(Elf64_Ehdr, e_phnum), &many, 2)},
		{"note offset past the end", broken(sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_offset), &huge, 8)},
		{"note size past the end", broken(sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), &huge, 8)},
		{"descsz past the note", broken(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 4, &huge, 4)},
		{"truncated", good.substr(0, good.size() - 3)},
		{"not an ELF", "#!/bin/sh\necho hi\n"},
	};
	for (const auto& [what, bytes] : cases) {
		SCOPED_TRACE(what);
		UniqueFd fd = put("hostile", bytes);
		EXPECT_EQ(elf_build_id(fd.get()), "");
		auto d = file_digest(fd.get());
		ASSERT_TRUE(d) << d.error().describe();
		EXPECT_TRUE(d->value_or("").starts_with("xxh3_128:")) << "a file with no build-id is hashed whole";
	}
}

TEST_F(FileDigestTest, ContentHashSeesOneByte)
{
	std::string data(3 << 20, 'x');  // several read chunks
	UniqueFd a = put("a", data);
	data[(2 << 20) + 5] = 'y';
	UniqueFd b = put("b", data);
	auto da = file_digest(a.get()), db = file_digest(b.get());
	ASSERT_TRUE(da && db);
	ASSERT_TRUE(da->has_value() && db->has_value());
	EXPECT_TRUE(is_valid_digest(**da)) << **da;
	EXPECT_NE(**da, **db);
	auto again = file_digest_like(a.get(), **da);
	ASSERT_TRUE(again);
	EXPECT_EQ(*again, **da) << "the same file digests the same";
	// A file compared with a recorded build-id is digested by that scheme: no id here, so "build_id:" alone.
	auto as_elf = file_digest_like(a.get(), "build_id:00");
	ASSERT_TRUE(as_elf);
	EXPECT_EQ(*as_elf, "build_id:");
}

TEST_F(FileDigestTest, DigestSyntax)
{
	EXPECT_TRUE(is_valid_digest("build_id:00"));
	EXPECT_TRUE(is_valid_digest("xxh3_128:" + std::string(32, 'a')));
	for (const char* bad : {"", "build_id:", "build_id:0", "build_id:0G", "xxh3_128:", "xxh3:00", "BUILD_ID:00"})
		EXPECT_FALSE(is_valid_digest(bad)) << bad;
	EXPECT_FALSE(is_valid_digest("build_id:" + std::string(130, 'a')));
	EXPECT_FALSE(is_valid_digest("xxh3_128:" + std::string(32, 'A')));
}

}  // namespace
