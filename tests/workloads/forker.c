// forker: keeps forking short-lived children (up to 3 alive at once, each living 2-20 ms), so a dump races with
// fork and exit. Verify: it is still forking, and every child it reaped exited 0 (tests/workloads/README.md).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ALIVE 3

static volatile sig_atomic_t verify_requested;

static void on_sigusr1(int sig)
{
	(void)sig;
	verify_requested = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void child_main(unsigned n)
{
	sleep_ms(2 + (long)(n * 7919u % 19u));
	_exit(0);
}

// Waits for one child and counts it; a signal (EINTR) returns without one so the loop can see the flag.
static void reap_one(unsigned* alive, unsigned* failed)
{
	int status;
	pid_t r = waitpid(-1, &status, 0);
	if (r < 0 && errno == ECHILD)
		*alive = 0;
	if (r <= 0)
		return;
	(*alive)--;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		(*failed)++;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;  // no SA_RESTART: a blocking waitpid returns EINTR and the loop sees the flag
	sigaction(SIGUSR1, &sa, NULL);

	printf("READY {\"pid\":%d}\n", (int)getpid());
	fflush(stdout);

	unsigned forked = 0, failed = 0, alive = 0, forked_at_verify = 0;
	while (!verify_requested || forked < forked_at_verify + 5) {
		if (verify_requested && forked_at_verify == 0)
			forked_at_verify = forked + 1;
		if (alive >= MAX_ALIVE) {
			reap_one(&alive, &failed);
			continue;
		}
		pid_t pid = fork();
		if (pid < 0) {
			printf("FAIL fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid == 0)
			child_main(forked);
		forked++;
		alive++;
	}
	while (alive > 0)
		reap_one(&alive, &failed);
	if (failed)
		printf("FAIL %u of %u children failed\n", failed, forked);
	else
		printf("PASS\n");
	return failed ? 1 : 0;
}
