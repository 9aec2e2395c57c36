// self_ckpt: a process that checkpoints itself with libbpfckpt's bpfckpt_checkpoint_self (include/bpfckpt/self.h)
// and, once restored from that image, checks that it is back at the moment of the call (tests/workloads/README.md
// has the protocol).
//
// State at the call: a counter (42), a heap buffer of xorshift64 bytes from seed 1, a file of 10000 bytes open at
// offset 4321; with --child, a child holding its own buffer (seed 7) and waiting for SIGUSR1.
// Right after the call it prints READY with what the call returned (and errno, and how long it took). Then:
//   returned 0   it changes everything (counter += 1000, the buffer redrawn from seed 2, the offset moved to 7777)
//                and waits for SIGUSR1, which checks the changed state and its child;
//   returned 1   (the restored process) it checks the state is the one at the call, the child's too, prints
//                PASS or FAIL and exits;
//   returned -1  it waits for SIGUSR1, which checks that the failed call left the state as it was.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "bpfckpt/self.h"

enum { kBufBytes = 4 << 20, kFileBytes = 10000, kPosAtCall = 4321, kPosAfter = 7777 };

static volatile uint64_t counter = 42;
static uint64_t* buf;
static int file_fd = -1;
static pid_t child = -1;

static void die(const char* what)
{
	fprintf(stderr, "self_ckpt: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void fill(uint64_t* p, size_t bytes, uint64_t seed)
{
	for (size_t i = 0; i < bytes / 8; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = seed;
	}
}

// Whether p holds exactly what fill(p, bytes, seed) wrote: recomputed, not compared with a saved checksum.
static int holds(const uint64_t* p, size_t bytes, uint64_t seed)
{
	for (size_t i = 0; i < bytes / 8; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		if (p[i] != seed)
			return 0;
	}
	return 1;
}

static void wait_usr1(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while (sigwaitinfo(&set, NULL) < 0 && errno == EINTR) {
	}
}

// The child: its own memory, checked on SIGUSR1; the verdict is its exit status.
static void run_child(void)
{
	uint64_t* mine = malloc(1 << 20);
	if (!mine)
		die("malloc");
	fill(mine, 1 << 20, 7);
	wait_usr1();
	_exit(holds(mine, 1 << 20, 7) ? 0 : 1);
}

static void open_file(const char* work)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/self_ckpt.data", work);
	file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (file_fd < 0)
		die(path);
	char bytes[kFileBytes];
	memset(bytes, 'x', sizeof(bytes));
	if (write(file_fd, bytes, sizeof(bytes)) != (ssize_t)sizeof(bytes) || lseek(file_fd, kPosAtCall, SEEK_SET) < 0)
		die("write the data file");
}

// Empty when the state is what it should be, else why not.
static const char* check_state(uint64_t want_counter, uint64_t seed, off_t want_pos)
{
	if (counter != want_counter)
		return "counter";
	if (!holds(buf, kBufBytes, seed))
		return "heap buffer";
	if (lseek(file_fd, 0, SEEK_CUR) != want_pos)
		return "file offset";
	if (child > 0) {
		int st = 0;
		if (kill(child, SIGUSR1) != 0 || waitpid(child, &st, 0) != child)
			return "child gone";
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return "child's memory";
	}
	return "";
}

static int verdict(const char* why)
{
	if (*why)
		printf("FAIL %s\n", why);
	else
		printf("PASS\n");
	fflush(stdout);
	return *why ? 1 : 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char** argv)
{
	const char *dir = NULL, *work = "/tmp";
	unsigned flags = 0;
	int with_child = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--work") == 0 && i + 1 < argc)
			work = argv[++i];
		else if (strcmp(argv[i], "--bpfckpt") == 0 && i + 1 < argc)
			setenv("BPFCKPT", argv[++i], 1);
		else if (strcmp(argv[i], "--tree") == 0)
			flags |= BPFCKPT_SELF_TREE;
		else if (strcmp(argv[i], "--child") == 0)
			with_child = 1;
		else {
			fprintf(stderr, "usage: self_ckpt --dir D [--work W] [--bpfckpt PATH] [--tree] [--child]\n");
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "self_ckpt: --dir is required\n");
		return 2;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	buf = malloc(kBufBytes);
	if (!buf)
		die("malloc");
	fill(buf, kBufBytes, 1);
	open_file(work);
	if (with_child) {
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0)
			run_child();
	}

	double t0 = now_ms();
	int r = bpfckpt_checkpoint_self(dir, flags);
	int err = r < 0 ? errno : 0;
	double call_ms = now_ms() - t0;
	printf("READY {\"pid\":%d,\"child_pid\":%d,\"returned\":%d,\"errno\":%d,\"error\":\"%s\",\"call_ms\":%.1f}\n",
	       getpid(), (int)child, r, err, err ? strerror(err) : "", r == 1 ? 0.0 : call_ms);
	fflush(stdout);

	if (r == 1)
		return verdict(check_state(42, 1, kPosAtCall));
	if (r == 0) {
		counter += 1000;
		fill(buf, kBufBytes, 2);
		if (lseek(file_fd, kPosAfter, SEEK_SET) < 0)
			die("lseek");
		wait_usr1();
		return verdict(check_state(1042, 2, kPosAfter));
	}
	wait_usr1();
	return verdict(check_state(42, 1, kPosAtCall));
}
