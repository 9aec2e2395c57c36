// Benchmark target: N processes as one tree, a parent and N-1 sleeping children. Writes
// `READY {"pids":[parent,child,...]}` once every child is asleep, then sleeps until killed. The children die with the
// parent (PDEATHSIG), so killing its process group or the parent alone leaves nothing behind. Usage: target_tree N
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static void sleep_forever(void)
{
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc != 2 || atoi(argv[1]) < 1) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[1]);
	pid_t parent = getpid();
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	int ready[2];
	if (!pids || pipe(ready) != 0) {
		perror("target_tree");
		return 1;
	}
	pids[0] = parent;
	for (int i = 1; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			close(ready[0]);
			char one = 1;
			if (write(ready[1], &one, 1) != 1)
				_exit(1);
			close(ready[1]);
			sleep_forever();
		}
		pids[i] = pid;
	}
	close(ready[1]);
	// One byte per child: each has run up to its pause().
	for (int got = 0; got < n - 1;) {
		char buf[256];
		ssize_t r = read(ready[0], buf, sizeof(buf));
		if (r <= 0) {
			fprintf(stderr, "target_tree: a child died before it was ready\n");
			return 1;
		}
		got += (int)r;
	}
	close(ready[0]);
	printf("READY {\"pids\":[");
	for (int i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", (int)pids[i]);
	printf("]}\n");
	fflush(stdout);
	sleep_forever();
}
