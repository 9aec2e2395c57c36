// posix_timers: five POSIX timers of different kinds, two of them signalling threads that check every signal
// (tests/workloads/README.md has the protocol).
//
// Three timers are created and deleted first, so the five kept have ids a fresh process would not get (a restore
// that lets the kernel pick ids gives 0, 1, ...):
//   periodic  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+2 to the process, sival 0x1111, every 50 ms
//   thread    CLOCK_MONOTONIC, SIGEV_THREAD_ID SIGRTMIN+3 to the `catcher` thread, sival 0x2222, every 70 ms
//   none      CLOCK_BOOTTIME, SIGEV_NONE, one-shot in 1000 s
//   disarmed  CLOCK_REALTIME, SIGEV_SIGNAL SIGRTMIN+4, never armed
//   cpu       CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, one-shot in 100 s of CPU time
// Thread `waiter` takes SIGRTMIN+2 with sigwaitinfo, thread `catcher` SIGRTMIN+3; each counts the signals whose
// siginfo is exactly the timer's (SI_TIMER, its id, its sival) and records any other.
// SIGUSR1 verifies: timer_gettime works on each saved id with the saved interval; `none` has 900-1000 s left, `cpu`
// 90-100 s, `disarmed` nothing; no bad signal was seen; both counters advance within 600 ms.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

enum { T_PERIODIC, T_THREAD, T_NONE, T_DISARMED, T_CPU, NTIMERS };

static int ids[NTIMERS];
static atomic_int catcher_tid;
static atomic_long hits[2];        // periodic, thread
static atomic_int bad_signal;      // 0, or the first wrong signal's number
static char bad_what[160];

// Raw syscalls: glibc's timer_t is not the kernel's id for every kind, and the test reads ids as the kernel has them.
static int create(clockid_t clock, struct sigevent* ev)
{
	int id = -1;
	if (syscall(SYS_timer_create, clock, ev, &id) != 0)
		return -1;
	return id;
}

static int arm(int id, long value_ms, long interval_ms)
{
	struct itimerspec its = {{interval_ms / 1000, (interval_ms % 1000) * 1000000L},
				 {value_ms / 1000, (value_ms % 1000) * 1000000L}};
	return (int)syscall(SYS_timer_settime, id, 0, &its, NULL);
}

static void note_bad(int sig, const siginfo_t* si)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&bad_signal, &expected, sig))
		snprintf(bad_what, sizeof(bad_what), "signal %d with code %d timerid %d value %#x", sig, si->si_code,
			 si->si_timerid, si->si_value.sival_int);
}

// Takes `sig` forever; a signal is good when it is timer `which`'s own.
static void take(int sig, int which, int value)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(&set, &si) < 0)
			continue;  // EINTR: a dump or restore interrupted the wait
		if (si.si_code == SI_TIMER && si.si_timerid == ids[which] && si.si_value.sival_int == value)
			atomic_fetch_add(&hits[which], 1);
		else
			note_bad(sig, &si);
	}
}

static void* waiter(void* arg)
{
	(void)arg;
	take(SIGRTMIN + 2, T_PERIODIC, 0x1111);
	return NULL;
}

static void* catcher(void* arg)
{
	(void)arg;
	atomic_store(&catcher_tid, (int)syscall(SYS_gettid));
	take(SIGRTMIN + 3, T_THREAD, 0x2222);
	return NULL;
}

static int setup(void)
{
	struct sigevent ev;
	for (int i = 0; i < 3; i++) {  // ids the kept timers must not take back
		memset(&ev, 0, sizeof(ev));
		ev.sigev_notify = SIGEV_NONE;
		int id = create(CLOCK_MONOTONIC, &ev);
		if (id < 0 || syscall(SYS_timer_delete, id) != 0)
			return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_value.sival_int = 0x1111;
	ids[T_PERIODIC] = create(CLOCK_MONOTONIC, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGRTMIN + 3;
	ev.sigev_value.sival_int = 0x2222;
	ev._sigev_un._tid = atomic_load(&catcher_tid);
	ids[T_THREAD] = create(CLOCK_MONOTONIC, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_NONE;
	ids[T_NONE] = create(CLOCK_BOOTTIME, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 4;
	ids[T_DISARMED] = create(CLOCK_REALTIME, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_NONE;
	ids[T_CPU] = create(CLOCK_PROCESS_CPUTIME_ID, &ev);
	for (int i = 0; i < NTIMERS; i++)
		if (ids[i] < 0)
			return -1;
	if (arm(ids[T_PERIODIC], 50, 50) || arm(ids[T_THREAD], 70, 70) || arm(ids[T_NONE], 1000000, 0) ||
	    arm(ids[T_CPU], 100000, 0))
		return -1;
	return 0;
}

static double secs(const struct timespec* t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

// What timer_gettime says of timer i: value and interval in seconds, or NULL when the id does not exist.
static const char* check_timer(int i, double lo, double hi, double interval, char* buf, size_t len)
{
	struct itimerspec its;
	if (syscall(SYS_timer_gettime, ids[i], &its) != 0) {
		snprintf(buf, len, "timer_gettime(%d): %s", ids[i], strerror(errno));
		return buf;
	}
	double v = secs(&its.it_value), iv = secs(&its.it_interval);
	if (v < lo || v > hi || iv < interval - 1e-6 || iv > interval + 1e-6) {
		snprintf(buf, len, "timer %d: %.6f s left every %.6f s, expected %.3f-%.3f every %.3f", ids[i], v, iv,
			 lo, hi, interval);
		return buf;
	}
	return NULL;
}

static const char* verify(char* buf, size_t len)
{
	// Time left: lowest, highest; interval. A periodic timer always has at most one period left.
	static const double expect[NTIMERS][3] = {
	    [T_PERIODIC] = {0, 0.05, 0.05}, [T_THREAD] = {0, 0.07, 0.07}, [T_NONE] = {900, 1000, 0},
	    [T_DISARMED] = {0, 0, 0},       [T_CPU] = {90, 100, 0}};
	for (int i = 0; i < NTIMERS; i++) {
		const char* why = check_timer(i, expect[i][0], expect[i][1], expect[i][2], buf, len);
		if (why)
			return why;
	}
	long before[2] = {atomic_load(&hits[0]), atomic_load(&hits[1])};
	struct timespec pause = {0, 600 * 1000000L};
	while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
	}
	if (atomic_load(&bad_signal)) {
		snprintf(buf, len, "wrong timer signal: %s", bad_what);
		return buf;
	}
	for (int i = 0; i < 2; i++)
		if (atomic_load(&hits[i]) < before[i] + 3) {
			snprintf(buf, len, "%s timer: %ld signals in 600 ms (%ld before)", i ? "thread" : "periodic",
				 atomic_load(&hits[i]) - before[i], before[i]);
			return buf;
		}
	return NULL;
}

int main(void)
{
	sigset_t usr1, rt;
	wl_block_sigusr1(&usr1);
	sigemptyset(&rt);
	for (int s = 2; s <= 4; s++)
		sigaddset(&rt, SIGRTMIN + s);
	sigprocmask(SIG_BLOCK, &rt, NULL);  // every thread takes its signal with sigwaitinfo
	pthread_t w, c;
	pthread_create(&w, NULL, waiter, NULL);
	pthread_create(&c, NULL, catcher, NULL);
	while (!atomic_load(&catcher_tid))
		usleep(1000);
	if (setup() != 0)
		return wl_verdict("cannot create the timers");
	// Both signalling timers have fired a few times before READY.
	while (atomic_load(&hits[0]) < 2 || atomic_load(&hits[1]) < 2)
		usleep(5000);
	printf("READY {\"pid\": %d, \"catcher_tid\": %d, \"ids\": [%d, %d, %d, %d, %d]}\n", getpid(),
	       atomic_load(&catcher_tid), ids[0], ids[1], ids[2], ids[3], ids[4]);
	fflush(stdout);
	if (wl_wait_sigusr1(&usr1, "posix_timers") != 0)
		return 1;
	char buf[256];
	return wl_verdict(verify(buf, sizeof(buf)));
}
