// user_regs_struct <-> the image's named registers. One table of names serves the dump, the restore and any
// reader of images, so a register can never be saved under one name and looked up under another.
#pragma once

#include <sys/user.h>

#include <cstdint>
#include <map>
#include <string>

namespace bpfckpt {

std::map<std::string, uint64_t> regs_to_map(const user_regs_struct& r);
// Registers missing from the map are zero (the validator insists on rip, rsp, fs_base and gs_base).
user_regs_struct regs_from_map(const std::map<std::string, uint64_t>& m);

}  // namespace bpfckpt
