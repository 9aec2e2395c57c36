// The GNU build-id of an ELF file (the NT_GNU_BUILD_ID note the linker writes): a hash of the linked output that
// names one build of a binary or library wherever it is copied, found in a few small reads.
#pragma once

#include <string>

namespace bpfckpt {

// Lower-case hex of the build-id of the 64-bit ELF file open at fd, "" when the file is no such ELF or has no
// build-id note. Every offset and size read from the file is bounds-checked: the file may be hostile.
std::string elf_build_id(int fd);

}  // namespace bpfckpt
