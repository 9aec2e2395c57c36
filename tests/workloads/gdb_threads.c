// gdb_threads: a process for the `bpfckpt core` tests to open in gdb (tests/workloads/README.md has the protocol).
//
// Four worker threads, each parked (futex wait) inside its own function worker_alpha .. worker_delta, whose local
// <name>_local holds a known value; the globals gdb_global (initialised data) and gdb_runtime_global (set at run
// time, in .bss); a string literal in .rodata and a string on the heap; and a 1 MiB read-only region of 0x5a bytes
// (a test drops its pages from the image). READY gives the tids, function and local names with their values, the
// globals' values, the strings' addresses and the region.
// SIGUSR1 (taken by the main thread with sigwaitinfo) releases the workers; each returns whether its local still
// holds its value. PASS when all do and the globals, strings and region are unchanged.
#define _GNU_SOURCE
#include <inttypes.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "protocol.h"

#define NWORKERS 4
#define REGION_SIZE (1u << 20)
#define REGION_BYTE 0x5a

uint64_t gdb_global = 0x600df00dcafebabeULL;
uint64_t gdb_runtime_global;  // set in main: its page is the process's own, not the executable's
static const char literal[] = "literal in .rodata for gdb";
static const char heap_text[] = "heap string for gdb";

static atomic_int stop;          // the futex the workers wait on
static atomic_int started;       // workers that have recorded their tid
static atomic_int tids[NWORKERS];

__attribute__((noinline)) static void park(void)
{
	while (!atomic_load(&stop))
		syscall(SYS_futex, &stop, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void check_in(int index)
{
	atomic_store(&tids[index], (int)syscall(SYS_gettid));
	atomic_fetch_add(&started, 1);
}

#define ALPHA_VALUE 0xa1fa000000000001ULL
#define BRAVO_VALUE 0xb2a40000000000b2ULL
#define CHARLIE_VALUE 0xc3a7000000c3c3c3ULL
#define DELTA_VALUE 0xd417a0000000d4d4ULL

// worker_<name>, with the local <name>_local: a function of its own per thread, so that each backtrace differs. The
// local is volatile, kept in memory across park(), so that gdb finds it in the worker's frame.
#define WORKER(name, value)                                                  \
	__attribute__((noinline)) void* worker_##name(void* arg)             \
	{                                                                    \
		volatile uint64_t name##_local = value;                      \
		check_in((int)(intptr_t)arg);                                \
		park();                                                      \
		return (void*)(intptr_t)(name##_local == value);             \
	}

WORKER(alpha, ALPHA_VALUE)
WORKER(bravo, BRAVO_VALUE)
WORKER(charlie, CHARLIE_VALUE)
WORKER(delta, DELTA_VALUE)

static const struct {
	void* (*fn)(void*);
	const char* name;
	const char* local;
	uint64_t value;
} workers[NWORKERS] = {
	{worker_alpha, "worker_alpha", "alpha_local", ALPHA_VALUE},
	{worker_bravo, "worker_bravo", "bravo_local", BRAVO_VALUE},
	{worker_charlie, "worker_charlie", "charlie_local", CHARLIE_VALUE},
	{worker_delta, "worker_delta", "delta_local", DELTA_VALUE},
};

static uint64_t runtime_value(void)
{
	return 0x1234000000000000ULL ^ 0xfeedULL;
}

static const char* verify(pthread_t* th, const char* heap, const unsigned char* region)
{
	atomic_store(&stop, 1);
	syscall(SYS_futex, &stop, FUTEX_WAKE_PRIVATE, NWORKERS, NULL, NULL, 0);
	const char* why = NULL;
	for (int i = 0; i < NWORKERS; i++) {
		void* ok = NULL;
		pthread_join(th[i], &ok);
		if (!ok && !why)
			why = "a worker's local lost its value";
	}
	if (gdb_global != 0x600df00dcafebabeULL || gdb_runtime_global != runtime_value())
		return "a global changed";
	if (strcmp(heap, heap_text) != 0)
		return "the heap string changed";
	for (size_t i = 0; i < REGION_SIZE; i++)
		if (region[i] != REGION_BYTE)
			return "the region changed";
	return why;
}

int main(void)
{
	sigset_t set;
	wl_block_sigusr1(&set);

	gdb_runtime_global = runtime_value();
	char* heap = malloc(sizeof(heap_text));
	unsigned char* region = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!heap || region == MAP_FAILED) {
		fprintf(stderr, "gdb_threads: out of memory\n");
		return 2;
	}
	strcpy(heap, heap_text);
	memset(region, REGION_BYTE, REGION_SIZE);
	mprotect(region, REGION_SIZE, PROT_READ);  // its own vma, apart from any read-write neighbour

	pthread_t th[NWORKERS];
	for (int i = 0; i < NWORKERS; i++) {
		if (pthread_create(&th[i], NULL, workers[i].fn, (void*)(intptr_t)i) != 0) {
			fprintf(stderr, "gdb_threads: pthread_create failed\n");
			return 2;
		}
	}
	while (atomic_load(&started) < NWORKERS)
		usleep(1000);

	printf("READY {\"pid\":%d,\"tids\":[%d", (int)getpid(), (int)getpid());
	for (int i = 0; i < NWORKERS; i++)
		printf(",%d", atomic_load(&tids[i]));
	printf("],\"workers\":[");
	for (int i = 0; i < NWORKERS; i++)
		printf("%s{\"tid\":%d,\"function\":\"%s\",\"local\":\"%s\",\"value\":%" PRIu64 "}", i ? "," : "",
		       atomic_load(&tids[i]), workers[i].name, workers[i].local, workers[i].value);
	printf("],\"global\":%" PRIu64 ",\"runtime_global\":%" PRIu64 ",\"literal_addr\":%" PRIuPTR
	       ",\"literal\":\"%s\",\"heap_addr\":%" PRIuPTR ",\"heap\":\"%s\",\"region_addr\":%" PRIuPTR
	       ",\"region_size\":%u,\"region_byte\":%d}\n",
	       gdb_global, gdb_runtime_global, (uintptr_t)literal, literal, (uintptr_t)heap, heap, (uintptr_t)region,
	       REGION_SIZE, REGION_BYTE);
	fflush(stdout);

	if (wl_wait_sigusr1(&set, "gdb_threads") != 0)
		return 2;
	return wl_verdict(verify(th, heap, region));
}
