// counter_mem: memory that must come back bit for bit and a counter that must go on from where it was, not from zero
// (tests/workloads/README.md has the protocol).
//
// State: N MiB of xorshift64 anonymous memory (XXH3 checksum; with --thp 2 MiB-aligned and MADV_HUGEPAGE, so that
// it is made of huge pages where THP is on), and a counter thread that counts in a tight loop and
// sleeps 1 ms every 2^16 increments, so that a dump catches it either computing (the count in a register) or inside
// nanosleep (a syscall to restart).
// SIGUSR2: the main thread prints `COUNT n` (the counter now) and goes on waiting.
// SIGUSR1: verifies the memory checksum, that the counter still advances, that the counter thread's TID is the one
// READY reported; prints `PASS` or `FAIL why` and exits.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static atomic_ulong counter;
static atomic_int counter_tid;
static atomic_int counter_tid_now;  // gettid() as the thread sees it, refreshed every round

static void die(const char* what)
{
	fprintf(stderr, "counter_mem: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t xorshift64(uint64_t* s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static void* count_forever(void* arg)
{
	(void)arg;
	int tid = (int)syscall(SYS_gettid);
	atomic_store(&counter_tid, tid);
	// The running count lives in a register; the shared copy is written with each step.
	unsigned long n = atomic_load(&counter);
	for (;;) {
		for (int i = 0; i < (1 << 16); i++)
			atomic_store_explicit(&counter, ++n, memory_order_relaxed);
		atomic_store(&counter_tid_now, (int)syscall(SYS_gettid));
		sleep_ms(1);
	}
	return NULL;
}

int main(int argc, char** argv)
{
	size_t mem_mib = 256;
	int thp = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mem-mib") == 0 && i + 1 < argc)
			mem_mib = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--thp") == 0)
			thp = 1;
		else {
			fprintf(stderr, "usage: counter_mem [--mem-mib N] [--thp]\n");
			return 2;
		}
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);

	size_t size = mem_mib << 20, huge = 2ul << 20;
	unsigned char* mem = mmap(NULL, size + (thp ? huge : 0), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	if (thp) {
		unsigned char* aligned = (unsigned char*)(((uintptr_t)mem + huge - 1) & ~(uintptr_t)(huge - 1));
		if (aligned > mem)
			munmap(mem, (size_t)(aligned - mem));
		munmap(aligned + size, (size_t)(mem + size + huge - (aligned + size)));
		mem = aligned;
		if (madvise(mem, size, MADV_HUGEPAGE) != 0)
			die("madvise MADV_HUGEPAGE");
	}
	uint64_t s = 0x0123456789abcdefULL;
	for (size_t i = 0; i + 8 <= size; i += 8) {
		uint64_t v = xorshift64(&s);
		memcpy(mem + i, &v, 8);
	}
	uint64_t xxh3 = XXH3_64bits(mem, size);

	pthread_t th;
	if (pthread_create(&th, NULL, count_forever, NULL) != 0)
		die("pthread_create");
	while (atomic_load(&counter_tid) == 0 || atomic_load(&counter) == 0)
		sleep_ms(1);

	printf("READY {\"pid\":%d,\"tids\":[%d,%d],\"counter_tid\":%d,\"mem_addr\":%" PRIu64
	       ",\"mem_size\":%zu,\"mem_xxh3\":\"%016" PRIx64 "\",\"counter_addr\":%" PRIu64 "}\n",
	       (int)getpid(), (int)getpid(), atomic_load(&counter_tid), atomic_load(&counter_tid),
	       (uint64_t)(uintptr_t)mem, size, xxh3, (uint64_t)(uintptr_t)&counter);
	fflush(stdout);

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			die("sigwaitinfo");
		}
		if (sig == SIGUSR2) {
			printf("COUNT %lu\n", atomic_load(&counter));
			fflush(stdout);
			continue;
		}
		const char* why = NULL;
		unsigned long before = atomic_load(&counter);
		if (XXH3_64bits(mem, size) != xxh3)
			why = "memory checksum differs";
		if (!why) {
			sleep_ms(200);
			if (atomic_load(&counter) <= before)
				why = "counter thread stopped counting";
		}
		if (!why && atomic_load(&counter_tid_now) != 0 && atomic_load(&counter_tid_now) != atomic_load(&counter_tid))
			why = "counter thread has another TID";
		if (why)
			printf("FAIL %s\n", why);
		else
			printf("PASS\n");
		fflush(stdout);
		return why ? 1 : 0;
	}
}
