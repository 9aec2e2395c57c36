// seccomp_sleeper: a process with a seccomp filter (one that allows every system call). bpfckpt cannot save seccomp
// filters yet, so a dump of it must be refused as unsupported and leave it running (tests/workloads/README.md).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void install_allow_all_filter(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};
	// Without NO_NEW_PRIVS an unprivileged process may not install a filter; set it either way.
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		fprintf(stderr, "seccomp_sleeper: install filter: %s\n", strerror(errno));
		exit(2);
	}
}

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	install_allow_all_filter();

	printf("READY {\"pid\":%d}\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			break;
		if (sig < 0 && errno != EINTR) {
			printf("FAIL sigwaitinfo: %s\n", strerror(errno));
			return 1;
		}
	}
	// The filter must still be there: Seccomp: 2 in /proc/self/status.
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER) {
		printf("FAIL seccomp filter is gone\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
