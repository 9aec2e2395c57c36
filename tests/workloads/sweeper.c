// sweeper: a writer thread that rewrites all of its memory, page after page, forever, stamping every word of a
// page with the generation of the sweep: what a dump taken while the target runs (-R) must get exactly right.
//
// State: N MiB of anonymous 4 KiB pages and `stamped`, the number of page writes finished since the start (one
// word, so every moment has one value; it lives in one more page of the same mapping, the hottest page there is,
// at mem_addr + mem_size). Page p has been stamped stamped / N times, once more if p < stamped % N, and holds that
// generation in every word; the page being rewritten is not counted yet, and a restored writer
// finishes it. An image of one moment brings back that same picture; one whose pages were copied at different
// moments does not.
// With --churn, a second thread maps, fills and unmaps a 16 MiB region over and over (what a malloc arena's trim
// does), so that a dump copying memory after the thaw sees its pages go away.
// SIGUSR1: stops the writer at a page boundary, checks the picture, lets the writer go on and checks that it
// advances; prints `PASS` or `FAIL why` and exits.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#define PAGE 4096ul
#define WORDS (PAGE / 8)

static uint64_t* mem;
static size_t npages;
static atomic_ulong* stamped;  // in the page after the N MiB
static atomic_int hold;     // the checker asks the writer to stop at the next page boundary
static atomic_int holding;  // the writer has stopped

// A word of page p in generation g: distinct per page, so a page copied to the wrong place shows too.
static uint64_t word(size_t p, uint64_t g) { return g * 0x9e3779b97f4a7c15ull ^ p; }

static void* writer(void* arg)
{
	(void)arg;
	for (uint64_t n = atomic_load(stamped);; n = atomic_load(stamped)) {
		while (atomic_load(&hold)) {
			atomic_store(&holding, 1);
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		atomic_store(&holding, 0);
		size_t p = n % npages;
		uint64_t* w = mem + p * WORDS;
		for (size_t i = 0; i < WORDS; i++)
			w[i] = word(p, n / npages + 1);
		atomic_store(stamped, n + 1);
	}
	return NULL;
}

// Every page holds, in every word, the generation `stamped` says it has.
static void* churner(void* arg)
{
	(void)arg;
	size_t len = 16u << 20;
	for (;;) {
		char* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			continue;
		memset(p, 0x5a, len);
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
		munmap(p, len);
	}
	return NULL;
}

static int check_picture(char* why, size_t len)
{
	uint64_t n = atomic_load(stamped);
	for (size_t p = 0; p < npages; p++) {
		uint64_t g = n / npages + (p < n % npages ? 1 : 0);
		uint64_t* w = mem + p * WORDS;
		for (size_t i = 0; i < WORDS; i++)
			if (w[i] != word(p, g))
				return snprintf(why, len,
						"page %zu word %zu is %016" PRIx64 ", not generation %" PRIu64
						" (%" PRIu64 " page writes done)",
						p, i, w[i], g, n),
				       0;
	}
	return 1;
}

static int verify(char* why, size_t len)
{
	atomic_store(&hold, 1);
	while (!atomic_load(&holding))
		sched_yield();
	int ok = check_picture(why, len);
	uint64_t before = atomic_load(stamped);
	atomic_store(&hold, 0);
	struct timespec ts = {0, 50000000};
	nanosleep(&ts, NULL);
	if (ok && atomic_load(stamped) <= before)
		return snprintf(why, len, "the writer stopped after %" PRIu64 " page writes", before), 0;
	return ok;
}

int main(int argc, char** argv)
{
	size_t mib = 256;
	int churn = 0;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--mem-mib") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--churn"))
			churn = 1;
	npages = (mib << 20) / PAGE;
	mem = mmap(NULL, (npages + 1) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "sweeper: mmap: %s\n", strerror(errno));
		return 2;
	}
	madvise(mem, (npages + 1) * PAGE, MADV_NOHUGEPAGE);  // 4 KiB pages, the hard case for a copy
	stamped = (atomic_ulong*)(mem + npages * WORDS);
	for (size_t p = 0; p < npages; p++)
		for (size_t i = 0; i < WORDS; i++)
			mem[p * WORDS + i] = word(p, 0);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, writer, NULL) != 0 || (churn && pthread_create(&t, NULL, churner, NULL) != 0)) {
		fprintf(stderr, "sweeper: pthread_create failed\n");
		return 2;
	}
	printf("READY {\"pid\":%d,\"mem_addr\":%" PRIu64 ",\"mem_size\":%zu}\n", getpid(), (uint64_t)(uintptr_t)mem,
	       npages * PAGE);
	fflush(stdout);
	while (sigwaitinfo(&set, NULL) != SIGUSR1)
		;
	char why[160];
	return wl_verdict(verify(why, sizeof(why)) ? NULL : why);
}
