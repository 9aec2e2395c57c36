// threads4: four worker threads, each with its own deterministic computation, all bumping one counter under a
// pthread mutex (tests/workloads/README.md has the protocol).
//
// Worker i iterates a 64-bit LCG from seed i and keeps, in registers, its state, iteration count and a running sum of
// the states. Each iteration it takes the mutex, bumps the shared counter and publishes (count, state, sum); every
// 256 iterations it sleeps 50 us, so a dump finds workers computing, blocked on the mutex (futex) or in nanosleep.
// Invariant, under the mutex: shared == sum of the counts.
// SIGUSR1 (taken by the main thread with sigwaitinfo) verifies: every worker alive with the TID READY reported and
// still progressing; shared == sum of counts; each worker's (state, sum) equal to a recomputation from its seed up
// to its count. Prints `PASS` or `FAIL why`, exits 0/1.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 4

struct worker {
	pthread_t th;
	int index;
	atomic_int tid;
	uint64_t seed;
	// Written under `lock` only.
	uint64_t count, state, sum;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared_counter;  // under `lock`
static struct worker workers[NWORKERS];
static atomic_int stop;

static uint64_t lcg(uint64_t s)
{
	return s * 6364136223846793005ULL + 1442695040888963407ULL;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static void* work(void* arg)
{
	struct worker* w = arg;
	atomic_store(&w->tid, (int)syscall(SYS_gettid));
	uint64_t s = w->seed, n = 0, sum = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		s = lcg(s);
		sum += s ^ (n << 7);
		n++;
		pthread_mutex_lock(&lock);
		shared_counter++;
		w->count = n;
		w->state = s;
		w->sum = sum;
		pthread_mutex_unlock(&lock);
		if ((n & 255) == 0)
			sleep_us(50);
	}
	return NULL;
}

static int thread_alive(int tid)
{
	return syscall(SYS_tgkill, getpid(), tid, 0) == 0;
}

static const char* verify(char* buf, size_t len)
{
	uint64_t before[NWORKERS];
	for (int i = 0; i < NWORKERS; i++) {
		if (!thread_alive(atomic_load(&workers[i].tid))) {
			snprintf(buf, len, "worker %d (tid %d) is gone", i, atomic_load(&workers[i].tid));
			return buf;
		}
		pthread_mutex_lock(&lock);
		before[i] = workers[i].count;
		pthread_mutex_unlock(&lock);
	}
	sleep_us(300000);
	uint64_t count[NWORKERS], state[NWORKERS], sum[NWORKERS], total = 0, shared;
	pthread_mutex_lock(&lock);
	shared = shared_counter;
	for (int i = 0; i < NWORKERS; i++) {
		count[i] = workers[i].count;
		state[i] = workers[i].state;
		sum[i] = workers[i].sum;
		total += count[i];
	}
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < NWORKERS; i++) {
		if (count[i] <= before[i]) {
			snprintf(buf, len, "worker %d stopped progressing (count %" PRIu64 ")", i, count[i]);
			return buf;
		}
	}
	if (shared != total) {
		snprintf(buf, len, "shared counter %" PRIu64 " != sum of worker counts %" PRIu64, shared, total);
		return buf;
	}
	for (int i = 0; i < NWORKERS; i++) {
		uint64_t s = workers[i].seed, sm = 0;
		for (uint64_t n = 0; n < count[i]; n++) {
			s = lcg(s);
			sm += s ^ (n << 7);
		}
		if (s != state[i] || sm != sum[i]) {
			snprintf(buf, len, "worker %d state inconsistent at count %" PRIu64, i, count[i]);
			return buf;
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(workers[i].th, NULL);
	return NULL;
}

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	for (int i = 0; i < NWORKERS; i++) {
		workers[i].index = i;
		workers[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		if (pthread_create(&workers[i].th, NULL, work, &workers[i]) != 0) {
			fprintf(stderr, "threads4: pthread_create failed\n");
			return 2;
		}
	}
	for (int i = 0; i < NWORKERS; i++) {
		for (;;) {
			pthread_mutex_lock(&lock);
			uint64_t c = workers[i].count;
			pthread_mutex_unlock(&lock);
			if (c > 0 && atomic_load(&workers[i].tid) != 0)
				break;
			sleep_us(1000);
		}
	}
	printf("READY {\"pid\":%d,\"tids\":[%d", (int)getpid(), (int)getpid());
	for (int i = 0; i < NWORKERS; i++)
		printf(",%d", atomic_load(&workers[i].tid));
	printf("],\"workers\":%d}\n", NWORKERS);
	fflush(stdout);

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			break;
		if (sig < 0 && errno != EINTR) {
			fprintf(stderr, "threads4: sigwaitinfo: %s\n", strerror(errno));
			return 2;
		}
	}
	char buf[256];
	const char* why = verify(buf, sizeof(buf));
	if (why)
		printf("FAIL %s\n", why);
	else
		printf("PASS\n");
	fflush(stdout);
	return why ? 1 : 0;
}
