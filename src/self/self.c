/* bpfckpt_checkpoint_self (include/bpfckpt/self.h): the caller waits on a pipe of its own while bpfckpt dumps it.
 * The pipe is how the two outcomes are told apart: the image holds a RESTORED byte in it, the live caller gets the
 * watcher's verdict instead (src/self/token.h). */
#define _GNU_SOURCE
#include "bpfckpt/self.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "self/locate.h"
#include "self/spawn.h"
#include "self/token.h"

#define BCK_EXPORT __attribute__((visibility("default")))

/* How often the waiting caller checks that the watcher lives (only a kill from outside stops it before it writes a
 * verdict). The first check comes long after bpfckpt has frozen the caller (40-50 ms after the spawn), so the
 * pidfd the check holds for a moment is never in the image. */
#define WATCH_PERIOD_MS 1000

/* What a restore cannot keep: the pipe is created anew (a new inode) and so is the process (a new start time). */
struct identity {
	ino_t pipe_ino;
	unsigned long long start_time;  /* /proc/self/stat field 22; 0 without /proc */
};

static unsigned long long start_time(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');  /* the command name may hold spaces and parentheses */
	unsigned long long t = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &t) != 1)
		return 0;
	return t;
}

static int identify(int rfd, struct identity *id)
{
	struct stat st;
	if (fstat(rfd, &st) != 0)
		return -1;
	id->pipe_ino = st.st_ino;
	id->start_time = start_time();
	return 0;
}

/* A RESTORED byte seen by the original process was left by a bpfckpt that died between writing it and taking it
 * back: not a restore. */
static int restored(int rfd, const struct identity *before)
{
	struct identity now;
	if (identify(rfd, &now) != 0)
		return 0;
	return now.pipe_ino != before->pipe_ino || now.start_time != before->start_time;
}

static int watcher_alive(pid_t watcher)
{
	int fd = (int)syscall(SYS_pidfd_open, watcher, 0);
	if (fd < 0)
		return errno != ESRCH;  /* without pidfds (before 5.3) there is no telling: wait on */
	struct pollfd p = {fd, POLLIN, 0};
	int exited = poll(&p, 1, 0) > 0;
	close(fd);
	return !exited;
}

static int byte_buffered(int rfd)
{
	struct pollfd p = {rfd, POLLIN, 0};
	return poll(&p, 1, 0) > 0;
}

/* The next byte of the pipe. A dead watcher with nothing written means no verdict will come: EIO. Interrupted calls
 * are retried: a signal and a restore (which resumes the caller here with EINTR) interrupt them. */
static int next_byte(int rfd, pid_t watcher, unsigned char *c)
{
	for (;;) {
		struct pollfd p = {rfd, POLLIN, 0};
		int n = poll(&p, 1, WATCH_PERIOD_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (!watcher_alive(watcher) && !byte_buffered(rfd)) {
				errno = EIO;
				return -1;
			}
			continue;
		}
		ssize_t r = read(rfd, c, 1);
		if (r == 1)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		errno = EIO;  /* no EOF can come (we hold the write end): a broken pipe */
		return -1;
	}
}

static int read_errno(int rfd)
{
	int32_t e = 0;
	size_t got = 0;
	while (got < sizeof(e)) {
		ssize_t r = read(rfd, (char *)&e + got, sizeof(e) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return EIO;
		got += (size_t)r;
	}
	return e > 0 ? e : EIO;
}

static int await_verdict(int rfd, pid_t watcher, const struct identity *before)
{
	for (;;) {
		unsigned char c;
		if (next_byte(rfd, watcher, &c) != 0)
			return -1;
		switch (c) {
		case BCK_SELF_DONE:
			return 0;
		case BCK_SELF_RESTORED:
			if (restored(rfd, before))
				return 1;
			continue;  /* the watcher's FAILED follows */
		case BCK_SELF_FAILED:
			errno = read_errno(rfd);
			return -1;
		default:
			errno = EPROTO;
			return -1;
		}
	}
}

static int dump_and_wait(const char *bin, const char *dir, unsigned flags, const int tok[2])
{
	struct identity before;
	if (identify(tok[0], &before) != 0)
		return -1;
	char pid_arg[16], token_arg[32], dir_arg[PATH_MAX + 16];
	snprintf(pid_arg, sizeof(pid_arg), "%d", (int)getpid());
	snprintf(token_arg, sizeof(token_arg), "%d:%d", tok[0], tok[1]);
	/* --images-dir=DIR: a dir that starts with '-' stays a value */
	if (snprintf(dir_arg, sizeof(dir_arg), "--images-dir=%s", dir) >= (int)sizeof(dir_arg)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *argv[] = {(char *)bin,  "dump",     "-t", pid_arg, dir_arg, "-R", "--self-token", token_arg,
			(flags & BPFCKPT_SELF_TREE) ? NULL : "--no-children", NULL};
	pid_t watcher = bck_spawn_dumper(argv, tok[0], tok[1]);
	if (watcher < 0)
		return -1;
	return await_verdict(tok[0], watcher, &before);
}

BCK_EXPORT int bpfckpt_checkpoint_self(const char *dir, unsigned flags)
{
	if (!dir || !*dir || (flags & ~BPFCKPT_SELF_TREE)) {
		errno = EINVAL;
		return -1;
	}
	char bin[PATH_MAX];
	if (bck_locate_bpfckpt(bin, sizeof(bin)) != 0)
		return -1;
	/* Both ends stay with the caller, so the pipe is internal to the image and comes back with its bytes. */
	int tok[2];
	if (pipe2(tok, O_CLOEXEC) != 0)
		return -1;
	int r = dump_and_wait(bin, dir, flags, tok);
	int err = errno;
	close(tok[0]);
	close(tok[1]);
	errno = err;
	return r;
}
