// The memory map: iter/task_vma records -> image::Vma, named and classified as /proc/PID/maps would show them.
#pragma once

#include <vector>

#include "common/result.h"
#include "dump/collector.h"
#include "image/model.h"

namespace bpfckpt::dump {

// vmas of one process, in address order. `task` is its leader's record (for brk, start_stack, vdso).
Result<std::vector<image::Vma>> build_vmas(const RawTask& task, const std::vector<const RawVma*>& raw);

}  // namespace bpfckpt::dump
