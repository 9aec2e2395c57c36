// One process of an image as an ELF64 x86_64 core file that gdb opens with the executable: the ELF header, a PT_NOTE
// (elf_notes.h), then a PT_LOAD per vma whose bytes follow in address order. The file is written front to back in
// large writes; runs of pages nobody has (64 KiB or more) are skipped with lseek and stay holes of a sparse file.
#pragma once

#include <elf.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "core/backing_pages.h"
#include "core/image_pages.h"
#include "image/model.h"

namespace bpfckpt::core {

class CoreStream;  // elf_core.cpp: the output file, written front to back

// Where everything goes in the file, decided before a byte is written.
struct CoreLayout {
	std::string head;                // ELF header, program headers, notes, zeros up to the first page boundary
	std::vector<Elf64_Phdr> loads;   // one PT_LOAD per vma, in vma order
	uint64_t size = 0;               // of the whole file
};

// with_bytes[i]: vma i's bytes are in the file (p_filesz = its size) or not (p_filesz = 0: [vvar], device memory,
// a file mapping gdb is to read from the file). More than 65534 program headers go the PN_XNUM way.
CoreLayout lay_out_core(const std::vector<image::Vma>& vmas, const std::vector<bool>& with_bytes,
			const std::string& notes);

struct CoreFileStats {
	uint64_t size = 0;           // of the file, holes included
	uint64_t bytes_written = 0;  // what was written of it
};

class CoreWriter {
public:
	// The image and its ancestors, loaded and checked by image::Chain::load.
	static Result<std::unique_ptr<CoreWriter>> create(const image::Chain& chain);
	~CoreWriter();
	CoreWriter(const CoreWriter&) = delete;
	CoreWriter& operator=(const CoreWriter&) = delete;

	// Writes the core of p (a live process of the image) into fd, an empty file open for writing.
	Result<CoreFileStats> write(int fd, const image::Process& p);

private:
	CoreWriter(const image::Chain& chain, char* buf)
		: dir_(chain.newest_dir()), pages_(chain), backing_(chain.newest()), buf_(buf)
	{
	}
	bool with_bytes(const image::Vma& v);
	Status write_vma(CoreStream& out, const image::Process& p, const image::Vma& v);

	std::string dir_;
	ImagePages pages_;
	BackingPages backing_;
	char* buf_;  // one chunk, mapped once and reused for every vma of every process
};

}  // namespace bpfckpt::core
