// Benchmark target for write tracking: N MiB of random anonymous memory (4 KiB pages, or THP with `thp`), then a
// loop of one-second rounds. Each round first writes one word into PCT% of the pages (a new random choice each
// round), then computes until the second is over, counting units of work. After each round it prints
// `ROUND <write_us> <work> <round_us>`: the time the writes took, the work done and the round's length (longer
// when it was stopped at its end); work per second is what tracking or snapshots take away.
// `READY {"pid":N,"bytes":B,"pages":P}` comes first. Usage: target_dirty MIB PCT 4k|thp [idle]
// With PCT 0 it writes nothing and sleeps: a plain target for the frozen-time figures. With a 4th argument `idle`
// it writes PCT% a second and sleeps instead of computing: a bystander, snapshotted while another target computes.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uint64_t next(uint64_t* x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char** argv)
{
	if (argc != 4 && !(argc == 5 && !strcmp(argv[4], "idle"))) {
		fprintf(stderr, "usage: %s MIB PCT 4k|thp [idle]\n", argv[0]);
		return 2;
	}
	int idle = argc == 5;
	size_t bytes = strtoull(argv[1], NULL, 10) << 20, pages = bytes / 4096;
	double pct = atof(argv[2]);
	int thp = !strcmp(argv[3], "thp");
	// THP needs a 2 MiB-aligned range: map 2 MiB more and start at the first boundary.
	char* raw = mmap(NULL, bytes + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t* mem = (uint64_t*)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
	madvise(mem, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	madvise(mem, bytes, MADV_POPULATE_WRITE);  // in bulk: first-touch faults are slow here
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	for (size_t i = 0; i < bytes / 8; i++)
		mem[i] = next(&x);
	printf("READY {\"pid\":%d,\"bytes\":%zu,\"pages\":%zu}\n", (int)getpid(), bytes, pages);
	fflush(stdout);
	if (pct <= 0)
		for (;;)
			pause();
	size_t per_round = (size_t)(pages * pct / 100);
	volatile uint64_t sink = 0;
	for (;;) {
		double t0 = now_us(), end = t0 + 1e6;
		for (size_t i = 0; i < per_round; i++)
			mem[(next(&x) % pages) * 512 + i % 512] = x;
		double t1 = now_us();
		if (idle) {
			usleep((useconds_t)(end > t1 ? end - t1 : 0));
			continue;
		}
		uint64_t work = 0;
		while (now_us() < end) {
			for (int i = 0; i < 1000; i++)
				sink += next(&x) >> 60;
			work++;
		}
		printf("ROUND %.0f %llu %.0f\n", t1 - t0, (unsigned long long)work, now_us() - t0);
		fflush(stdout);
	}
}
