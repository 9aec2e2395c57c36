// Benchmark target: N MiB of random (incompressible, never zero) anonymous memory with every page written, then
// `READY {"pid":N,"bytes":B}` and sleep until killed. Usage: target_mem MIB
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s MIB\n", argv[0]);
		return 2;
	}
	size_t bytes = strtoull(argv[1], NULL, 10) << 20;
	uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	// Populate in bulk first: a first-touch fault costs 12-16 us per page on the PVM guests (KERNEL.md, costs).
	// Best effort; the loop below writes every page anyway.
	madvise(mem, bytes, MADV_POPULATE_WRITE);
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	for (size_t i = 0; i < bytes / sizeof(*mem); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mem[i] = x;
	}
	printf("READY {\"pid\":%d,\"bytes\":%zu}\n", (int)getpid(), bytes);
	fflush(stdout);
	for (;;)
		pause();
}
