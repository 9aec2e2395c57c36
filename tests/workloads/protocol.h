// The ready/verify protocol of tests/workloads/README.md, for workloads to include instead of each writing it again:
// SIGUSR1 blocked before any thread starts, waited for with sigwaitinfo (so that a dump or restore interrupting the
// wait is no verdict), and the one-line verdict with its exit status.
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

// Blocks SIGUSR1 in the calling thread and in every thread it starts afterwards.
static inline void wl_block_sigusr1(sigset_t* set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigprocmask(SIG_BLOCK, set, NULL);
}

// Waits for SIGUSR1 (blocked with wl_block_sigusr1): 0, or -1 after saying why on stderr.
static inline int wl_wait_sigusr1(const sigset_t* set, const char* name)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);
		if (sig == SIGUSR1)
			return 0;
		if (sig < 0 && errno != EINTR) {
			fprintf(stderr, "%s: sigwaitinfo: %s\n", name, strerror(errno));
			return -1;
		}
	}
}

// Prints `PASS` or `FAIL why` and returns the exit status that goes with it.
static inline int wl_verdict(const char* why)
{
	if (why)
		printf("FAIL %s\n", why);
	else
		printf("PASS\n");
	fflush(stdout);
	return why ? 1 : 0;
}
