// queued_signals: signals queued with sigqueue() and left pending across the dump, each with its own siginfo
// (tests/workloads/README.md has the protocol).
//
// SIGUSR2 and SIGRTMIN+1 are blocked in every thread, with SA_SIGINFO handlers that log (thread, signal, si_code,
// si_pid, si_value). Before READY the workload queues to itself, in this order: SIGUSR2 value 0x77, SIGRTMIN+1 values
// 0x101, 0x102, 0x103 (the process's queue), and SIGRTMIN+1 value 0x201 to its `worker` thread (that thread's own
// queue, pthread_sigqueue). The test then sigqueue()s SIGRTMIN+1 value 0x104 from outside (its si_pid is the test's:
// the workload's parent at start).
// SIGUSR1 unblocks the two signals in the main thread, then in the worker, and checks the log: main got SIGUSR2 0x77,
// then 0x101, 0x102, 0x103 from itself and 0x104 from its first parent, all SI_QUEUE; the worker got 0x201; nothing
// else.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

struct entry {
	int tid, signo, code, pid, value;
};

static struct entry log_[16];
static atomic_int nlog;
static atomic_int worker_tid, worker_go, worker_done;
static int first_parent;

static void record(int sig, siginfo_t* si, void* uc)
{
	(void)uc;
	int i = atomic_fetch_add(&nlog, 1);
	if (i < 16)
		log_[i] = (struct entry){(int)syscall(SYS_gettid), sig, si->si_code, si->si_pid, si->si_value.sival_int};
}

static void block_both(sigset_t* set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGRTMIN + 1);
}

static void* worker(void* arg)
{
	(void)arg;
	atomic_store(&worker_tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&worker_go))
		usleep(1000);
	sigset_t set;
	block_both(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);  // its own SIGRTMIN+1 is delivered here
	atomic_store(&worker_done, 1);
	for (;;)
		pause();
	return NULL;
}

static int queue(int sig, int value)
{
	return sigqueue(getpid(), sig, (union sigval){.sival_int = value});
}

// Expected log, in order.
static const char* check(char* buf, size_t len)
{
	int main_tid = getpid(), wtid = atomic_load(&worker_tid);
	const struct entry want[] = {{main_tid, SIGUSR2, SI_QUEUE, main_tid, 0x77},
				     {main_tid, SIGRTMIN + 1, SI_QUEUE, main_tid, 0x101},
				     {main_tid, SIGRTMIN + 1, SI_QUEUE, main_tid, 0x102},
				     {main_tid, SIGRTMIN + 1, SI_QUEUE, main_tid, 0x103},
				     {main_tid, SIGRTMIN + 1, SI_QUEUE, first_parent, 0x104},
				     {wtid, SIGRTMIN + 1, SI_QUEUE, main_tid, 0x201}};
	int n = atomic_load(&nlog), expected = (int)(sizeof(want) / sizeof(want[0]));
	for (int i = 0; i < expected && i < n; i++) {
		const struct entry* g = &log_[i];
		const struct entry* w = &want[i];
		if (g->tid != w->tid || g->signo != w->signo || g->code != w->code || g->pid != w->pid ||
		    g->value != w->value) {
			snprintf(buf, len,
				 "signal %d: got tid %d sig %d code %d pid %d value %#x, expected tid %d sig %d code %d "
				 "pid %d value %#x",
				 i, g->tid, g->signo, g->code, g->pid, g->value, w->tid, w->signo, w->code, w->pid, w->value);
			return buf;
		}
	}
	if (n != expected) {
		snprintf(buf, len, "%d signals delivered, expected %d", n, expected);
		return buf;
	}
	return NULL;
}

int main(void)
{
	sigset_t usr1, both;
	wl_block_sigusr1(&usr1);
	block_both(&both);
	sigprocmask(SIG_BLOCK, &both, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = record;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sa.sa_mask = both;  // one at a time: a handler interrupted by the next signal would log them in reverse
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	first_parent = getppid();

	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	while (!atomic_load(&worker_tid))
		usleep(1000);
	if (queue(SIGUSR2, 0x77) || queue(SIGRTMIN + 1, 0x101) || queue(SIGRTMIN + 1, 0x102) ||
	    queue(SIGRTMIN + 1, 0x103) || pthread_sigqueue(w, SIGRTMIN + 1, (union sigval){.sival_int = 0x201}))
		return wl_verdict("sigqueue failed");
	printf("READY {\"pid\": %d, \"worker_tid\": %d}\n", getpid(), atomic_load(&worker_tid));
	fflush(stdout);
	if (wl_wait_sigusr1(&usr1, "queued_signals") != 0)
		return 1;
	pthread_sigmask(SIG_UNBLOCK, &both, NULL);  // the process's queue, delivered to this thread in order
	atomic_store(&worker_go, 1);
	for (int i = 0; i < 5000 && !atomic_load(&worker_done); i++)
		usleep(1000);
	char buf[256];
	return wl_verdict(check(buf, sizeof(buf)));
}
