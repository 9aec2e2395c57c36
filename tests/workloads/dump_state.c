// dump_state: the state `bpfckpt dump` must capture, in one process tree (tests/workloads/README.md has the
// protocol). Anonymous memory with a known checksum, a file at an offset, an O_APPEND file, bytes buffered in a pipe,
// a second thread that keeps counting, and a child with memory of its own.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define FILE_BYTES 10000
#define FILE_POS 4321
#define APPEND_BYTES 100
#define PIPE_BYTES 1000
#define CHILD_MEM_SIZE (4u << 20)

struct region {
	unsigned char* addr;
	size_t size;
	uint64_t xxh3;
};

struct state {
	struct region mem;
	char file_path[4096];
	int file_fd;
	char append_path[4096];
	int append_fd;
	int pipe_fds[2];
	uint64_t pipe_xxh3;
	pid_t child;
	struct region child_mem;  // as the child reported it
	pthread_t counter_thread;
};

static atomic_ulong counter;
static atomic_int counter_tid;

static void die(const char* what)
{
	fprintf(stderr, "dump_state: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t xorshift64(uint64_t* s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill_random(unsigned char* p, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = xorshift64(&s);
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (unsigned char)xorshift64(&s);
}

// Private anonymous memory, every page written.
static struct region make_random_region(size_t size, uint64_t seed)
{
	struct region r = {0};
	r.addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.addr == MAP_FAILED)
		die("mmap");
	r.size = size;
	fill_random(r.addr, size, seed);
	r.xxh3 = XXH3_64bits(r.addr, size);
	return r;
}

static void write_all(int fd, const void* buf, size_t n, const char* what)
{
	const char* p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die(what);
		p += w;
		n -= (size_t)w;
	}
}

static void make_files(struct state* st, const char* dir)
{
	unsigned char buf[FILE_BYTES];
	fill_random(buf, sizeof(buf), 0x5eedf11e);
	snprintf(st->file_path, sizeof(st->file_path), "%s/dump_state.%d.data", dir, (int)getpid());
	st->file_fd = open(st->file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (st->file_fd < 0)
		die("open data file");
	write_all(st->file_fd, buf, sizeof(buf), "write data file");
	if (lseek(st->file_fd, FILE_POS, SEEK_SET) != FILE_POS)
		die("lseek data file");

	snprintf(st->append_path, sizeof(st->append_path), "%s/dump_state.%d.append", dir, (int)getpid());
	st->append_fd = open(st->append_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (st->append_fd < 0)
		die("open append file");
	write_all(st->append_fd, buf, APPEND_BYTES, "write append file");
}

static void make_pipe(struct state* st)
{
	unsigned char buf[PIPE_BYTES];
	fill_random(buf, sizeof(buf), 0x919e5eed);
	if (pipe(st->pipe_fds) < 0)
		die("pipe");
	// A non-blocking read end, so the verify step can tell "empty" from "blocked" and the image records the flag.
	if (fcntl(st->pipe_fds[0], F_SETFL, O_NONBLOCK) < 0)
		die("fcntl pipe");
	write_all(st->pipe_fds[1], buf, sizeof(buf), "write pipe");
	st->pipe_xxh3 = XXH3_64bits(buf, sizeof(buf));
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static void* count_forever(void* arg)
{
	(void)arg;
	atomic_store(&counter_tid, (int)syscall(SYS_gettid));
	for (;;) {
		atomic_fetch_add(&counter, 1);
		sleep_ms(10);
	}
	return NULL;
}

static void start_counter(struct state* st)
{
	if (pthread_create(&st->counter_thread, NULL, count_forever, NULL) != 0)
		die("pthread_create");
	while (atomic_load(&counter) == 0)
		sleep_ms(1);
}

static int wait_sigusr1(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			return sig;
		if (sig < 0 && errno != EINTR)
			die("sigwaitinfo");
	}
}

// The child: its own memory, reported to the parent through `report`; verdict = exit status.
static void child_main(int report)
{
	struct region r = make_random_region(CHILD_MEM_SIZE, 0xc41dc41d);
	write_all(report, &r, sizeof(r), "report child region");
	close(report);
	wait_sigusr1();
	_exit(XXH3_64bits(r.addr, r.size) == r.xxh3 ? 0 : 1);
}

static void start_child(struct state* st)
{
	int p[2];
	if (pipe(p) < 0)
		die("pipe (child report)");
	st->child = fork();
	if (st->child < 0)
		die("fork");
	if (st->child == 0) {
		close(p[0]);
		child_main(p[1]);
	}
	close(p[1]);
	ssize_t n;
	do
		n = read(p[0], &st->child_mem, sizeof(st->child_mem));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(st->child_mem))
		die("read child report");
	close(p[0]);
}

static void print_ready(const struct state* st)
{
	printf("READY {\"pid\":%d,\"child_pid\":%d,"
	       "\"mem_addr\":%" PRIu64 ",\"mem_size\":%zu,\"mem_xxh3\":\"%016" PRIx64 "\","
	       "\"file_path\":\"%s\",\"file_fd\":%d,\"file_pos\":%d,"
	       "\"append_path\":\"%s\",\"append_fd\":%d,\"append_pos\":%d,"
	       "\"pipe_rfd\":%d,\"pipe_wfd\":%d,\"pipe_bytes\":%d,\"pipe_xxh3\":\"%016" PRIx64 "\","
	       "\"child_mem_addr\":%" PRIu64 ",\"child_mem_size\":%zu,\"child_mem_xxh3\":\"%016" PRIx64 "\","
	       "\"tids\":[%d,%d],\"counter_tid\":%d}\n",
	       (int)getpid(), (int)st->child, (uint64_t)(uintptr_t)st->mem.addr, st->mem.size, st->mem.xxh3,
	       st->file_path, st->file_fd, FILE_POS, st->append_path, st->append_fd, APPEND_BYTES, st->pipe_fds[0],
	       st->pipe_fds[1], PIPE_BYTES, st->pipe_xxh3, (uint64_t)(uintptr_t)st->child_mem.addr, st->child_mem.size,
	       st->child_mem.xxh3, (int)getpid(), atomic_load(&counter_tid), atomic_load(&counter_tid));
	fflush(stdout);
}

// Each check returns NULL when fine, else the reason for FAIL.
static const char* check_memory(const struct state* st)
{
	return XXH3_64bits(st->mem.addr, st->mem.size) == st->mem.xxh3 ? NULL : "memory checksum differs";
}

static const char* check_files(const struct state* st)
{
	unsigned char want[FILE_BYTES], got[FILE_BYTES];
	fill_random(want, sizeof(want), 0x5eedf11e);
	if (lseek(st->file_fd, 0, SEEK_CUR) != FILE_POS)
		return "data file offset is not 4321";
	if (pread(st->file_fd, got, sizeof(got), 0) != (ssize_t)sizeof(got) || memcmp(want, got, sizeof(got)) != 0)
		return "data file contents differ";
	if (lseek(st->append_fd, 0, SEEK_CUR) != APPEND_BYTES)
		return "append file offset is not 100";
	int fl = fcntl(st->append_fd, F_GETFL);
	if (fl < 0 || !(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY)
		return "append file lost O_APPEND or O_WRONLY";
	if ((fcntl(st->file_fd, F_GETFD) & FD_CLOEXEC) == 0)
		return "data file lost FD_CLOEXEC";
	return NULL;
}

static const char* check_pipe(const struct state* st)
{
	unsigned char buf[PIPE_BYTES + 1];
	size_t got = 0;
	if (!(fcntl(st->pipe_fds[0], F_GETFL) & O_NONBLOCK))
		return "pipe read end lost O_NONBLOCK";
	while (got < PIPE_BYTES) {
		ssize_t n = read(st->pipe_fds[0], buf + got, PIPE_BYTES - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return "pipe holds fewer than 1000 bytes";
		got += (size_t)n;
	}
	if (XXH3_64bits(buf, PIPE_BYTES) != st->pipe_xxh3)
		return "pipe bytes differ";
	if (read(st->pipe_fds[0], buf, 1) != -1 || errno != EAGAIN)
		return "pipe holds more than 1000 bytes";
	return NULL;
}

static const char* check_counter(void)
{
	unsigned long before = atomic_load(&counter);
	sleep_ms(200);
	return atomic_load(&counter) > before ? NULL : "counter thread stopped counting";
}

static const char* check_child(const struct state* st)
{
	if (kill(st->child, SIGUSR1) < 0)
		return "child is gone";
	for (int i = 0; i < 1000; i++) {  // up to 10 s
		int status;
		pid_t r = waitpid(st->child, &status, WNOHANG);
		if (r == st->child) {
			if (!WIFEXITED(status))
				return "child killed by a signal";
			return WEXITSTATUS(status) == 0 ? NULL : "child memory checksum differs";
		}
		if (r < 0 && errno != EINTR)
			return "waitpid child failed";
		sleep_ms(10);
	}
	return "child gave no verdict in 10 s";
}

static const char* verify(const struct state* st)
{
	const char* why;
	if ((why = check_memory(st)) || (why = check_files(st)) || (why = check_pipe(st)) || (why = check_counter()) ||
	    (why = check_child(st)))
		return why;
	return NULL;
}

static void parse_args(int argc, char** argv, size_t* mem_mib, const char** dir)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mem-mib") == 0 && i + 1 < argc)
			*mem_mib = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			*dir = argv[++i];
		else {
			fprintf(stderr, "usage: dump_state [--mem-mib N] [--dir D]\n");
			exit(2);
		}
	}
}

int main(int argc, char** argv)
{
	size_t mem_mib = 256;
	const char* dir = "/tmp";
	parse_args(argc, argv, &mem_mib, &dir);

	// Blocked before the thread and the child exist, so both inherit the mask and only sigwaitinfo takes it.
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	struct state st;
	memset(&st, 0, sizeof(st));
	st.mem = make_random_region(mem_mib << 20, 0x0123456789abcdefULL);
	make_files(&st, dir);
	make_pipe(&st);
	start_child(&st);
	start_counter(&st);
	print_ready(&st);

	wait_sigusr1();
	const char* why = verify(&st);
	if (why)
		printf("FAIL %s\n", why);
	else
		printf("PASS\n");
	fflush(stdout);
	return why ? 1 : 0;
}
