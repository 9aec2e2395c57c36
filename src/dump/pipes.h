// Pipe contents, peeked without consuming them: the bytes stay in the pipe for the running (or -R) target.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "dump/files.h"

namespace bpfckpt::dump {

// pidfd: the holder's pidfd. Returns the bytes buffered in the pipe right now (the holder is frozen).
Result<std::string> peek_pipe(int pidfd, const FileTable::PipeHolder& holder);

}  // namespace bpfckpt::dump
