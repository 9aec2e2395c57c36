#include "common/huge_heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace bpfckpt {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;
// glibc's ceiling for M_MMAP_THRESHOLD on 64-bit: requests above it are mmap'd whatever we ask.
constexpr int kMmapThreshold = 32 << 20;
constexpr int kDefaultTopPad = 128 << 10;

}  // namespace

void back_heap_with_huge_pages(size_t bytes)
{
	// Big requests from the heap too (the default threshold adapts up from 128 KiB, and each mmap'd block would
	// be fresh 4 KiB pages), and never trimmed: memory given back and grown again would be a new brk mapping
	// without the advice.
	mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
	mallopt(M_TRIM_THRESHOLD, INT32_MAX);
	// Grow the heap by `bytes` at once: the top pad is added to the next brk extension, which this malloc forces.
	mallopt(M_TOP_PAD, int(bytes));
	void* probe = malloc(kMmapThreshold - 4096);
	mallopt(M_TOP_PAD, kDefaultTopPad);
	if (!probe)
		return;
	uintptr_t from = (reinterpret_cast<uintptr_t>(probe) + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
	uintptr_t to = reinterpret_cast<uintptr_t>(sbrk(0));
	free(probe);  // back into the top chunk: untouched, so still no memory behind it
	if (to > from)
		madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

}  // namespace bpfckpt
