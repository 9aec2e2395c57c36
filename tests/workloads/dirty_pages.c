// dirty_pages: a big memory whose pages stay as they were, except a few hot pages a writer thread keeps
// stamping with a generation number: what incremental dumps are for (tests/workloads/README.md has the protocol).
//
// State: N MiB of xorshift64 anonymous memory; K hot pages spread over it that a writer thread rewrites whole every
// 2 ms, each time with new content derived from a generation number it then bumps.
// SIGUSR2: pauses the writer between two rounds, records the checksum of the whole memory and prints
// `PAUSED <xxh3> <generation>`: an image taken now must bring back exactly that.
// A second, 1 MiB mapping holds a fixed pattern. SIGURG, while paused: drops the hot pages (MADV_DONTNEED, so they
// read as zeros), unmaps the second mapping, records the checksum again and prints `DROPPED <xxh3>`. SIGUSR1 also
// checks the second mapping: its pattern, or that it is still unmapped.
// SIGHUP: execs itself again (same pid, new address space, a new READY line).
// SIGUSR1: verifies the memory (paused: the whole memory against the recorded checksum; running: every page but
// the hot ones against the checksum at start), resumes the writer and checks that it advances; prints `PASS` or
// `FAIL why` and exits.
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
#include <xxhash.h>

#include "protocol.h"

#define PAGE 4096ul

static unsigned char* mem;
static size_t mem_size;
static size_t hot[64];
static int nhot = 8;
static atomic_ulong generation;

static void die(const char* what)
{
	fprintf(stderr, "dirty_pages: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int is_hot(size_t page)
{
	for (int i = 0; i < nhot; i++)
		if (hot[i] == page)
			return 1;
	return 0;
}

static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;  // held while the writer rewrites the hot pages
static atomic_int paused;
static uint64_t paused_sum;  // in the memory the image must bring back, like everything else

// XXH3 of the memory; with skip_hot, of every page but the hot ones.
static uint64_t checksum(int skip_hot)
{
	XXH3_state_t* st = XXH3_createState();
	XXH3_64bits_reset(st);
	for (size_t page = 0; page < mem_size / PAGE; page++)
		if (!skip_hot || !is_hot(page))
			XXH3_64bits_update(st, mem + page * PAGE, PAGE);
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

static void fill(unsigned char* p, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t off = 0; off < PAGE; off += 8) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		memcpy(p + off, &s, 8);
	}
}

static void* writer(void* arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&round_lock);
		if (!atomic_load(&paused)) {
			uint64_t g = atomic_load(&generation);
			for (int i = 0; i < nhot; i++)
				fill(mem + hot[i] * PAGE, g * 1000003u + (uint64_t)i);
			atomic_store(&generation, g + 1);
		}
		pthread_mutex_unlock(&round_lock);
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

// A second mapping, 1 MiB of a known pattern, that SIGURG unmaps: NULL once it is gone.
enum { kExtraSize = 1 << 20 };
static unsigned char* extra;
static unsigned char* extra_was;

static int extra_intact(void)
{
	for (size_t i = 0; i < kExtraSize; i++)
		if (extra[i] != (unsigned char)(i * 7 + 3))
			return 0;
	return 1;
}

// An unmapped range makes mincore fail with ENOMEM.
static int extra_unmapped(void)
{
	unsigned char vec[kExtraSize / PAGE];
	return mincore(extra_was, kExtraSize, vec) != 0 && errno == ENOMEM;
}

static int verify(uint64_t base_sum, char* why, size_t len)
{
	int was_paused = atomic_load(&paused);
	if (extra && !extra_intact())
		return snprintf(why, len, "the extra mapping changed"), 0;
	if (!extra && !extra_unmapped())
		return snprintf(why, len, "the extra mapping, unmapped, is mapped again"), 0;
	if (was_paused && checksum(0) != paused_sum)
		return snprintf(why, len, "memory differs from the paused moment"), 0;
	if (!was_paused && checksum(1) != base_sum)
		return snprintf(why, len, "memory outside the hot pages changed"), 0;
	uint64_t before = atomic_load(&generation);
	atomic_store(&paused, 0);
	struct timespec ts = {0, 50000000};
	nanosleep(&ts, NULL);
	if (atomic_load(&generation) <= before)
		return snprintf(why, len, "the writer stopped at generation %" PRIu64, before), 0;
	return 1;
}

int main(int argc, char** argv)
{
	size_t mib = 256;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mem-mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--hot"))
			nhot = atoi(argv[i + 1]);
	}
	if (nhot < 1 || nhot > 64)
		nhot = 8;
	mem_size = mib << 20;
	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	madvise(mem, mem_size, MADV_NOHUGEPAGE);  // 4 KiB pages: what tracking is measured on
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (size_t off = 0; off < mem_size; off += 8) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		memcpy(mem + off, &s, 8);
	}
	extra = mmap(NULL, kExtraSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (extra == MAP_FAILED)
		die("mmap extra");
	for (size_t i = 0; i < kExtraSize; i++)
		extra[i] = (unsigned char)(i * 7 + 3);
	extra_was = extra;
	size_t pages = mem_size / PAGE;
	for (int i = 0; i < nhot; i++)
		hot[i] = (pages / nhot) * i + 7;
	uint64_t sum = checksum(1);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGURG);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, writer, NULL) != 0)
		die("pthread_create");
	printf("READY {\"pid\":%d,\"mem_addr\":%" PRIu64 ",\"mem_size\":%zu,\"hot\":[", getpid(),
	       (uint64_t)(uintptr_t)mem, mem_size);
	for (int i = 0; i < nhot; i++)
		printf("%s%zu", i ? "," : "", hot[i]);
	printf("],\"mem_xxh3\":\"%016" PRIx64 "\",\"extra_addr\":%" PRIu64 ",\"extra_size\":%d}\n", sum,
	       (uint64_t)(uintptr_t)extra, kExtraSize);
	fflush(stdout);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGHUP) {
			execv("/proc/self/exe", argv);  // the same program anew: same pid, a new address space
			die("execv");
		}
		if (sig == SIGUSR1)
			break;
		if (sig == SIGURG && atomic_load(&paused)) {
			// Written since the last image and dropped now: an increment must record them as zeros. And a
			// tracked mapping unmapped: an increment must not bring it back from the parent.
			for (int i = 0; i < nhot; i++)
				if (madvise(mem + hot[i] * PAGE, PAGE, MADV_DONTNEED) != 0)
					die("madvise");
			if (extra && munmap(extra, kExtraSize) != 0)
				die("munmap extra");
			extra = NULL;
			paused_sum = checksum(0);
			printf("DROPPED %016" PRIx64 "\n", paused_sum);
			fflush(stdout);
			continue;
		}
		if (sig != SIGUSR2)
			continue;
		pthread_mutex_lock(&round_lock);
		atomic_store(&paused, 1);
		paused_sum = checksum(0);
		pthread_mutex_unlock(&round_lock);
		printf("PAUSED %016" PRIx64 " %" PRIu64 "\n", paused_sum, (uint64_t)atomic_load(&generation));
		fflush(stdout);
	}
	char why[128];
	return wl_verdict(verify(sum, why, sizeof(why)) ? NULL : why);
}
