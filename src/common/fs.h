// Small file helpers with errors as values.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace bpfckpt {

Status write_all(int fd, const void* data, size_t len);
Status write_file(const std::string& path, const std::string& data, mode_t mode);
Result<std::string> read_file(const std::string& path);
Result<std::string> read_link(const std::string& path);
// fsync of a file or a directory.
Status fsync_path(const std::string& path);
// fsync of every entry directly in `dir`, then of `dir`: what publishing a directory of files by rename needs.
Status fsync_dir_files(const std::string& dir);

}  // namespace bpfckpt
