// The malloc heap on transparent huge pages. On these VMs the first touch of a fresh 4 KiB page costs 12-16 us
// (KERNEL.md, costs): a dump of 1000 processes spent more time faulting in the vectors and strings its iterator
// records are parsed into (~35 ms) than the kernel spent producing them (~12 ms). A 2 MiB page costs ~200 us
// once, so the same memory comes in ~40 times cheaper.
#pragma once

#include <cstddef>

namespace bpfckpt {

// Reserves `bytes` of heap (address space only: nothing is touched) marked MADV_HUGEPAGE, and keeps malloc from
// giving it back or from serving allocations under 32 MiB by mmap, so that ordinary allocations land in it. Best
// effort: where THP is off, or the reservation fails, malloc just works as before. Call early in main, before
// threads start.
void back_heap_with_huge_pages(size_t bytes);

}  // namespace bpfckpt
