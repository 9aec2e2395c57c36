/* Only async-signal-safe calls after fork: the caller may have other threads, holding locks we would inherit. */
#define _GNU_SOURCE
#include "self/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "self/token.h"

extern char **environ;

static void write_byte(int fd, char c)
{
	while (write(fd, &c, 1) < 0 && errno == EINTR) {
	}
}

static void report_failed(int tok_w, int err)
{
	char msg[1 + sizeof(int32_t)] = {BCK_SELF_FAILED};
	int32_t e = err;
	memcpy(msg + 1, &e, sizeof(e));
	while (write(tok_w, msg, sizeof(msg)) < 0 && errno == EINTR) {
	}
}

/* The child bpfckpt starts as from a shell: default dispositions (an ignored signal would stay ignored across
 * execve), nothing blocked. */
static void reset_signals(void)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);  /* fails harmlessly for SIGKILL, SIGSTOP and glibc's own */
}

static void close_range_or_loop(unsigned lo, unsigned hi)
{
	if (lo > hi || syscall(SYS_close_range, lo, hi, 0) == 0)
		return;
	struct rlimit rl;
	unsigned top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (unsigned)rl.rlim_cur : 65536;
	for (unsigned fd = lo; fd <= hi && fd < top; fd++)
		close((int)fd);
}

/* The watcher and bpfckpt must not hold the caller's files (a pipe whose reader waits for EOF, a lock): only
 * stderr (where bpfckpt's error line goes) and the token pipe stay, moved to fds above 2; stdin and stdout become
 * /dev/null. */
static void tidy_fds(int *tok_r, int *tok_w)
{
	int r = fcntl(*tok_r, F_DUPFD_CLOEXEC, 3), w = fcntl(*tok_w, F_DUPFD_CLOEXEC, 3);
	if (r < 0 || w < 0)
		_exit(1);
	int lo = r < w ? r : w, hi = r < w ? w : r;
	close_range_or_loop(0, 1);
	close_range_or_loop(3, (unsigned)lo - 1);
	close_range_or_loop((unsigned)lo + 1, (unsigned)hi - 1);
	close_range_or_loop((unsigned)hi + 1, ~0u);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0 && null != 0)
		dup2(null, 0);
	if (null >= 0 && null != 1)
		dup2(null, 1);
	if (null > 2)
		close(null);
	*tok_r = r;
	*tok_w = w;
}

/* The vfork child: becomes bpfckpt, or says why it could not. */
__attribute__((noreturn)) static void run_dumper(char *const argv[], int tok_w)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, environ);
	report_failed(tok_w, errno);
	_exit(127);
}

/* vfork: the watcher is a copy of the caller; a second copy of its page tables would be pure cost. Alone in its
 * function, so that nothing the child could clobber is used after it. */
static pid_t start_dumper(char *const argv[], int tok_w)
{
	pid_t pid = vfork();
	if (pid == 0)
		run_dumper(argv, tok_w);
	return pid;
}

/* The watcher: waits for the caller's go (its parent reaped, so that bpfckpt finds it outside the caller's tree),
 * runs bpfckpt and writes the verdict. It keeps the token pipe's read end too, so its writes never meet EPIPE. */
static void run_watcher(char *const argv[], int tok_r, int tok_w, int ctl)
{
	char go;
	ssize_t n;
	while ((n = read(ctl, &go, 1)) < 0 && errno == EINTR) {
	}
	if (n != 1)
		_exit(1);  /* the caller is gone */
	tidy_fds(&tok_r, &tok_w);
	pid_t dumper = start_dumper(argv, tok_w);
	if (dumper < 0) {
		report_failed(tok_w, errno);
		_exit(1);
	}
	int status = 0;
	pid_t waited;
	while ((waited = waitpid(dumper, &status, 0)) < 0 && errno == EINTR) {
	}
	if (waited == dumper && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		write_byte(tok_w, BCK_SELF_DONE);
	else
		report_failed(tok_w, EIO);
	_exit(0);
}

/* The caller's child: forks the watcher in a new session (a ^C to the caller's group or a kill of it does not reach
 * the dump), tells the caller its pid (or -errno) and exits, orphaning it. */
static void run_intermediate(char *const argv[], int tok_r, int tok_w, int ctl)
{
	reset_signals();
	setsid();
	pid_t watcher = fork();
	if (watcher == 0)
		run_watcher(argv, tok_r, tok_w, ctl);
	int32_t msg = watcher > 0 ? watcher : -errno;
	while (write(ctl, &msg, sizeof(msg)) < 0 && errno == EINTR) {
	}
	_exit(0);
}

static pid_t receive_watcher(int ctl)
{
	int32_t msg = 0;
	ssize_t n;
	while ((n = recv(ctl, &msg, sizeof(msg), MSG_WAITALL)) < 0 && errno == EINTR) {
	}
	if (n != (ssize_t)sizeof(msg)) {
		errno = ECHILD;  /* the intermediate child died before it could fork */
		return -1;
	}
	if (msg <= 0) {
		errno = -msg;
		return -1;
	}
	return msg;
}

/* ECHILD: the caller's own SIGCHLD handler (or SIG_IGN) took it; gone all the same. */
static void reap(pid_t child)
{
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
	}
}

pid_t bck_spawn_dumper(char *const argv[], int tok_r, int tok_w)
{
	/* A socket, not a pipe: the go byte is sent with MSG_NOSIGNAL, so a watcher killed early costs no SIGPIPE. */
	int ctl[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0)
		return -1;
	/* No handler of the caller's may run in the children: every signal is blocked across the fork. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t child = fork();
	if (child == 0) {
		close(ctl[0]);
		run_intermediate(argv, tok_r, tok_w, ctl[1]);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(ctl[1]);
	if (child < 0) {
		close(ctl[0]);
		errno = fork_errno;
		return -1;
	}
	pid_t watcher = receive_watcher(ctl[0]);
	int err = errno;
	reap(child);
	if (watcher > 0 && send(ctl[0], "g", 1, MSG_NOSIGNAL) != 1) {
		err = errno;
		watcher = -1;
	}
	close(ctl[0]);
	errno = err;
	return watcher;
}
