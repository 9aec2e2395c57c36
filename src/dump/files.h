// Open files: iter/task_file records -> the image's open file descriptions (shared by every fd that refers to
// the same struct file) and each process's fd table. Decides what is internal to the dumped set and what is
// external (a pipe or socket whose other end is outside, a terminal), and refuses what cannot be saved yet.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "common/result.h"
#include "dump/collector.h"
#include "image/model.h"

namespace bpfckpt::dump {

struct FileTable {
	std::vector<image::File> files;
	std::map<pid_t, std::vector<image::Fd>> fds;  // by tgid, sorted by fd
	// Pipes internal to the set, with one holder of an end to peek their bytes through.
	struct PipeHolder {
		uint64_t capacity = 0;
		pid_t pid = 0;
		uint32_t fd = 0;
		bool read_end = false;
	};
	std::map<uint64_t, PipeHolder> pipes;  // by inode
};

Result<FileTable> build_files(const std::vector<RawFile>& raw);

}  // namespace bpfckpt::dump
