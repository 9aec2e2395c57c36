// tree: a process tree with its own session, process groups, pipes holding bytes, and files at offsets, some shared
// between processes (tests/workloads/README.md has the protocol).
//
//   R (the started process; stays in the test's session, leads its own group as the harness made it)
//   └─ A  setsid(): leads a new session and group. Holds: a data file at 4321, an O_APPEND file at 100, the shared
//      │  file (opened before the forks, offset 1234, shared with every descendant), p1's write end and p2's read end
//      ├─ B  setpgid(0, 0): its own group in A's session. Holds p1's read end (1 KiB unread) and p3's write end
//      │  └─ G  in B's group. Holds p3's read end (4000 bytes unread) and a file of its own at offset 777
//      └─ C  in A's group. Holds p2's write end: 64 KiB written into a pipe resized to 128 KiB, unread
// The harness starts R as a process group leader, and a group leader cannot setsid(): hence the extra level R.
//
// SIGUSR1 to R: R checks its group, forwards to A and prints A's verdict. Each process checks its sid, pgid and ppid
// against what it saw at start, then its files and pipes (bytes exact, then empty), forwards SIGUSR1 to its children
// and folds their exit status into its own: exit code = index into `reasons` (0 = fine). Order for the shared file:
// A sees 1234, then C sees 1234 and seeks to 5555, exits; then A must see 5555 (one open file description).
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

#define P1_BYTES 1024
#define P2_BYTES 65536
#define P2_CAPACITY (128 * 1024)
#define P3_BYTES 4000
#define DATA_BYTES 10000
#define DATA_POS 4321
#define APPEND_BYTES 100
#define SHARED_BYTES 8192
#define SHARED_POS 1234
#define SHARED_POS_C 5555
#define G_BYTES 3000
#define G_POS 777

enum {
	OK = 0,
	R_PGID,
	R_SID,
	A_KILLED,
	A_SID,
	A_PGID,
	A_PPID,
	A_DATA_POS,
	A_DATA_BYTES,
	A_APPEND_POS,
	A_APPEND_FLAGS,
	A_APPEND_WRITE,
	A_SHARED_POS,
	A_P2_CAPACITY,
	A_P2_SHORT,
	A_P2_BYTES,
	A_P2_EXTRA,
	A_SHARED_AFTER_C,
	B_KILLED,
	C_KILLED,
	B_SID,
	B_PGID,
	B_PPID,
	B_P1_SHORT,
	B_P1_BYTES,
	B_P1_EXTRA,
	G_KILLED,
	G_SID,
	G_PGID,
	G_PPID,
	G_POS_BAD,
	G_BYTES_BAD,
	G_P3_SHORT,
	G_P3_BYTES,
	G_P3_EXTRA,
	C_SID,
	C_PGID,
	C_PPID,
	C_SHARED_POS,
	C_SEEK,
	NREASONS
};

static const char* reasons[NREASONS] = {
	[OK] = "ok",
	[R_PGID] = "R: process group changed",
	[R_SID] = "R: session changed",
	[A_KILLED] = "A: killed by a signal or gone",
	[A_SID] = "A: session changed",
	[A_PGID] = "A: process group changed",
	[A_PPID] = "A: parent changed",
	[A_DATA_POS] = "A: data file offset is not 4321",
	[A_DATA_BYTES] = "A: data file contents differ",
	[A_APPEND_POS] = "A: append file offset is not 100",
	[A_APPEND_FLAGS] = "A: append file lost O_APPEND or O_WRONLY",
	[A_APPEND_WRITE] = "A: a write after lseek(0) did not append",
	[A_SHARED_POS] = "A: shared file offset is not 1234",
	[A_P2_CAPACITY] = "A: pipe p2 capacity is not 128 KiB",
	[A_P2_SHORT] = "A: pipe p2 holds fewer than 65536 bytes",
	[A_P2_BYTES] = "A: pipe p2 bytes differ",
	[A_P2_EXTRA] = "A: pipe p2 holds more than 65536 bytes",
	[A_SHARED_AFTER_C] = "A: shared file offset is not 5555 after C moved it (not shared)",
	[B_KILLED] = "B: killed by a signal or gone",
	[C_KILLED] = "C: killed by a signal or gone",
	[B_SID] = "B: session changed",
	[B_PGID] = "B: process group changed",
	[B_PPID] = "B: parent changed",
	[B_P1_SHORT] = "B: pipe p1 holds fewer than 1024 bytes",
	[B_P1_BYTES] = "B: pipe p1 bytes differ",
	[B_P1_EXTRA] = "B: pipe p1 holds more than 1024 bytes",
	[G_KILLED] = "G: killed by a signal or gone",
	[G_SID] = "G: session changed",
	[G_PGID] = "G: process group changed",
	[G_PPID] = "G: parent changed",
	[G_POS_BAD] = "G: file offset is not 777",
	[G_BYTES_BAD] = "G: file contents differ",
	[G_P3_SHORT] = "G: pipe p3 holds fewer than 4000 bytes",
	[G_P3_BYTES] = "G: pipe p3 bytes differ",
	[G_P3_EXTRA] = "G: pipe p3 holds more than 4000 bytes",
	[C_SID] = "C: session changed",
	[C_PGID] = "C: process group changed",
	[C_PPID] = "C: parent changed",
	[C_SHARED_POS] = "C: shared file offset is not 1234",
	[C_SEEK] = "C: lseek of the shared file failed",
};

// A setup message to A (16 bytes: each write is atomic, so messages never interleave) and A's report to R.
struct msg {
	int32_t who;  // 'b', 'c', 'g'
	int32_t pid;
	int32_t fd;   // G: its own file's fd
	int32_t pad;
};

struct report {
	int32_t a, b, c, g;
	int32_t g_fd;
};

static const char* dir = "/tmp";
static char path_data[4096], path_append[4096], path_shared[4096], path_g[4096];

static void die(const char* what)
{
	fprintf(stderr, "tree[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
	_exit(120);
}

static void fill_random(unsigned char* p, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[i] = (unsigned char)s;
	}
}

static void write_all(int fd, const void* buf, size_t n)
{
	const char* p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, void* buf, size_t n)
{
	char* p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		p += r;
		n -= (size_t)r;
	}
}

static void wait_sigusr1(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			return;
		if (sig < 0 && errno != EINTR)
			die("sigwaitinfo");
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

// A child's verdict: its exit code when it is one of ours, else `killed`.
static int child_verdict(pid_t pid, int killed)
{
	for (int i = 0; i < 3000; i++) {  // up to 30 s
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) < NREASONS)
				return WEXITSTATUS(st);
			return killed;
		}
		if (r < 0 && errno != EINTR)
			return killed;
		sleep_ms(10);
	}
	return killed;
}

// Reads exactly `want` bytes (xxh3 `sum`) from a pipe, then expects it empty. 0 or one of the three codes.
static int check_pipe(int fd, size_t want, uint64_t sum, int e_short, int e_bytes, int e_extra)
{
	static unsigned char buf[P2_BYTES];
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return e_short;
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return e_short;
		got += (size_t)n;
	}
	if (XXH3_64bits(buf, want) != sum)
		return e_bytes;
	if (read(fd, buf, 1) != -1 || errno != EAGAIN)
		return e_extra;
	return OK;
}

static int check_ids(pid_t sid, pid_t pgid, pid_t ppid, int e_sid, int e_pgid, int e_ppid)
{
	if (getsid(0) != sid)
		return e_sid;
	if (getpgrp() != pgid)
		return e_pgid;
	if (getppid() != ppid)
		return e_ppid;
	return OK;
}

static int check_file(int fd, off_t pos, size_t size, uint64_t seed, int e_pos, int e_bytes)
{
	static unsigned char want[DATA_BYTES], got[DATA_BYTES];
	if (lseek(fd, 0, SEEK_CUR) != pos)
		return e_pos;
	fill_random(want, size, seed);
	if (pread(fd, got, size, 0) != (ssize_t)size || memcmp(want, got, size) != 0)
		return e_bytes;
	return OK;
}

static int open_file(const char* path, int flags, size_t size, uint64_t seed, off_t pos)
{
	static unsigned char buf[DATA_BYTES];
	int fd = open(path, flags | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	fill_random(buf, size, seed);
	write_all(fd, buf, size);
	if (!(flags & O_APPEND) && lseek(fd, pos, SEEK_SET) != pos)
		die("lseek");
	return fd;
}

static uint64_t pipe_sum(size_t n, uint64_t seed)
{
	static unsigned char buf[P2_BYTES];
	fill_random(buf, n, seed);
	return XXH3_64bits(buf, n);
}

// --- G ---
static void g_main(pid_t sid, pid_t b_pgid, int p3r, int sync_w)
{
	pid_t ppid = getppid();
	int fd = open_file(path_g, O_RDWR, G_BYTES, 0x6666, G_POS);
	struct msg m = {'g', (int32_t)getpid(), fd, 0};
	write_all(sync_w, &m, sizeof(m));
	close(sync_w);
	wait_sigusr1();
	int v = check_ids(sid, b_pgid, ppid, G_SID, G_PGID, G_PPID);
	if (!v)
		v = check_file(fd, G_POS, G_BYTES, 0x6666, G_POS_BAD, G_BYTES_BAD);
	if (!v)
		v = check_pipe(p3r, P3_BYTES, pipe_sum(P3_BYTES, 0x3333), G_P3_SHORT, G_P3_BYTES, G_P3_EXTRA);
	_exit(v);
}

// --- B ---
static void b_main(pid_t sid, int p1r, int sync_w)
{
	pid_t ppid = getppid();
	if (setpgid(0, 0) < 0)
		die("setpgid");
	int p3[2];
	if (pipe(p3) < 0)
		die("pipe p3");
	unsigned char buf[P3_BYTES];
	fill_random(buf, sizeof(buf), 0x3333);
	write_all(p3[1], buf, sizeof(buf));
	pid_t g = fork();
	if (g < 0)
		die("fork G");
	if (g == 0) {
		close(p3[1]);
		close(p1r);
		g_main(sid, getpgrp(), p3[0], sync_w);
	}
	close(p3[0]);
	struct msg m = {'b', (int32_t)getpid(), -1, 0};
	write_all(sync_w, &m, sizeof(m));
	close(sync_w);
	wait_sigusr1();
	int v = check_ids(sid, getpid(), ppid, B_SID, B_PGID, B_PPID);
	if (!v)
		v = check_pipe(p1r, P1_BYTES, pipe_sum(P1_BYTES, 0x1111), B_P1_SHORT, B_P1_BYTES, B_P1_EXTRA);
	kill(g, SIGUSR1);
	int gv = child_verdict(g, G_KILLED);
	_exit(v ? v : gv);
}

// --- C ---
static void c_main(pid_t sid, int p2w, int shared_fd, int sync_w)
{
	pid_t ppid = getppid();
	static unsigned char buf[P2_BYTES];
	fill_random(buf, sizeof(buf), 0x2222);
	write_all(p2w, buf, sizeof(buf));
	struct msg m = {'c', (int32_t)getpid(), -1, 0};
	write_all(sync_w, &m, sizeof(m));
	close(sync_w);
	wait_sigusr1();
	int v = check_ids(sid, sid, ppid, C_SID, C_PGID, C_PPID);
	if (!v && lseek(shared_fd, 0, SEEK_CUR) != SHARED_POS)
		v = C_SHARED_POS;
	if (!v && lseek(shared_fd, SHARED_POS_C, SEEK_SET) != SHARED_POS_C)
		v = C_SEEK;
	_exit(v);
}

// --- A ---
static void a_main(int report_w)
{
	if (setsid() < 0)
		die("setsid");
	pid_t sid = getpid(), ppid = getppid();
	int shared = open_file(path_shared, O_RDWR, SHARED_BYTES, 0x5555, SHARED_POS);
	int p1[2], p2[2], sync[2];
	if (pipe(p1) < 0 || pipe(p2) < 0 || pipe(sync) < 0)
		die("pipe");
	if (fcntl(p2[1], F_SETPIPE_SZ, P2_CAPACITY) < P2_CAPACITY)
		die("F_SETPIPE_SZ");
	unsigned char buf[P1_BYTES];
	fill_random(buf, sizeof(buf), 0x1111);
	write_all(p1[1], buf, sizeof(buf));

	pid_t b = fork();
	if (b < 0)
		die("fork B");
	if (b == 0) {
		close(report_w);
		close(p1[1]);
		close(p2[0]);
		close(p2[1]);
		close(sync[0]);
		b_main(sid, p1[0], sync[1]);
	}
	pid_t c = fork();
	if (c < 0)
		die("fork C");
	if (c == 0) {
		close(report_w);
		close(p1[0]);
		close(p1[1]);
		close(p2[0]);
		close(sync[0]);
		c_main(sid, p2[1], shared, sync[1]);
	}
	close(p1[0]);
	close(p2[1]);
	close(sync[1]);
	// Every writer closes its end after its one message: EOF means all three are ready (or one died).
	struct msg got[4];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(sync[0], (char*)got + n, sizeof(got) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read sync");
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(sync[0]);
	if (n != 3 * sizeof(struct msg))
		die("sync: a child died while setting up");
	struct report rep = {(int32_t)getpid(), b, c, 0, -1};
	for (int i = 0; i < 3; i++)
		if (got[i].who == 'g')
			rep.g = got[i].pid, rep.g_fd = got[i].fd;
	int data = open_file(path_data, O_RDWR | O_CLOEXEC, DATA_BYTES, 0xdddd, DATA_POS);
	int append = open_file(path_append, O_WRONLY | O_APPEND, APPEND_BYTES, 0xaaaa, 0);
	write_all(report_w, &rep, sizeof(rep));
	close(report_w);

	wait_sigusr1();
	int v = check_ids(sid, sid, ppid, A_SID, A_PGID, A_PPID);
	if (!v)
		v = check_file(data, DATA_POS, DATA_BYTES, 0xdddd, A_DATA_POS, A_DATA_BYTES);
	if (!v && lseek(append, 0, SEEK_CUR) != APPEND_BYTES)
		v = A_APPEND_POS;
	if (!v) {
		int fl = fcntl(append, F_GETFL);
		if (fl < 0 || !(fl & O_APPEND) || (fl & O_ACCMODE) != O_WRONLY)
			v = A_APPEND_FLAGS;
	}
	if (!v) {
		lseek(append, 0, SEEK_SET);
		write_all(append, "0123456789", 10);
		if (lseek(append, 0, SEEK_CUR) != APPEND_BYTES + 10)
			v = A_APPEND_WRITE;
	}
	if (!v && lseek(shared, 0, SEEK_CUR) != SHARED_POS)
		v = A_SHARED_POS;
	if (!v && fcntl(p2[0], F_GETPIPE_SZ) != P2_CAPACITY)
		v = A_P2_CAPACITY;
	if (!v)
		v = check_pipe(p2[0], P2_BYTES, pipe_sum(P2_BYTES, 0x2222), A_P2_SHORT, A_P2_BYTES, A_P2_EXTRA);
	kill(b, SIGUSR1);
	kill(c, SIGUSR1);
	int cv = child_verdict(c, C_KILLED);
	if (!v && !cv && lseek(shared, 0, SEEK_CUR) != SHARED_POS_C)
		v = A_SHARED_AFTER_C;
	int bv = child_verdict(b, B_KILLED);
	_exit(v ? v : cv ? cv : bv);
}

static void parse_args(int argc, char** argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: tree [--dir D]\n");
			exit(2);
		}
	}
}

int main(int argc, char** argv)
{
	parse_args(argc, argv);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pid_t r = getpid();
	snprintf(path_data, sizeof(path_data), "%s/tree.%d.data", dir, (int)r);
	snprintf(path_append, sizeof(path_append), "%s/tree.%d.append", dir, (int)r);
	snprintf(path_shared, sizeof(path_shared), "%s/tree.%d.shared", dir, (int)r);
	snprintf(path_g, sizeof(path_g), "%s/tree.%d.g", dir, (int)r);

	int rp[2];
	if (pipe(rp) < 0)
		die("pipe report");
	fflush(stdout);
	pid_t a = fork();
	if (a < 0)
		die("fork A");
	if (a == 0) {
		close(rp[0]);
		a_main(rp[1]);
	}
	close(rp[1]);
	struct report rep;
	read_all(rp[0], &rep, sizeof(rep));
	close(rp[0]);
	pid_t sid = getsid(0), pgid = getpgrp();
	printf("READY {\"pid\":%d,\"a\":%d,\"b\":%d,\"c\":%d,\"g\":%d,\"pids\":[%d,%d,%d,%d,%d],"
	       "\"r_sid\":%d,\"r_pgid\":%d,\"sid\":%d,\"b_pgid\":%d,"
	       "\"data_path\":\"%s\",\"append_path\":\"%s\",\"shared_path\":\"%s\",\"g_path\":\"%s\","
	       "\"g_fd\":%d,\"p1_bytes\":%d,\"p2_bytes\":%d,\"p2_capacity\":%d,\"p3_bytes\":%d}\n",
	       (int)r, rep.a, rep.b, rep.c, rep.g, (int)r, rep.a, rep.b, rep.c, rep.g, (int)sid, (int)pgid, rep.a, rep.b,
	       path_data, path_append, path_shared, path_g, rep.g_fd, P1_BYTES, P2_BYTES, P2_CAPACITY, P3_BYTES);
	fflush(stdout);

	wait_sigusr1();
	int v = getpgrp() != pgid ? R_PGID : getsid(0) != sid ? R_SID : OK;
	kill(a, SIGUSR1);
	int av = child_verdict(a, A_KILLED);
	if (!v)
		v = av;
	if (v)
		printf("FAIL %s\n", reasons[v]);
	else
		printf("PASS\n");
	fflush(stdout);
	return v ? 1 : 0;
}
