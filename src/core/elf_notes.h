// The PT_NOTE segment of a core file, in the order Linux writes it (gdb takes the first NT_PRSTATUS as the current
// thread and attaches each register note to the NT_PRSTATUS before it):
//   leader:  NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE, NT_PRFPREG, NT_X86_XSTATE
//   others:  NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE
#pragma once

#include <string>

#include "common/result.h"
#include "core/image_pages.h"
#include "image/model.h"

namespace bpfckpt::core {

// p must be a live process (threads with registers) of an image that passed image::load_image; dir is the image
// directory (the register blobs), pages serves the command line for NT_PRPSINFO.
Result<std::string> build_notes(const image::Process& p, const std::string& dir, ImagePages& pages);

}  // namespace bpfckpt::core
