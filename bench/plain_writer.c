// Benchmark helper: a plain page-cache write by a process as fresh as a `bpfckpt dump` is. Writes MIB MiB of
// random bytes to FILE (created, 0600) in 2 MiB write()s from one 2 MiB buffer, as the dump's copy workers do,
// then prints `{"write_us":N}`: open to close. Usage: plain_writer MIB FILE
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (2u << 20)

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s MIB FILE\n", argv[0]);
		return 2;
	}
	size_t bytes = strtoull(argv[1], NULL, 10) << 20;
	char *buf = aligned_alloc(CHUNK, CHUNK);
	if (!buf) {
		perror("aligned_alloc");
		return 1;
	}
	madvise(buf, CHUNK, MADV_HUGEPAGE);  // as the dump's buffers: one huge page, no first-touch faults per 4 KiB
	for (size_t got = 0; got < CHUNK;) {
		ssize_t n = getrandom(buf + got, CHUNK - got, 0);
		if (n <= 0) {
			perror("getrandom");
			return 1;
		}
		got += (size_t)n;
	}
	double t0 = now_us();
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	for (size_t done = 0; done < bytes;) {
		size_t want = bytes - done < CHUNK ? bytes - done : CHUNK;
		ssize_t n = write(fd, buf, want);
		if (n <= 0) {
			perror("write");
			return 1;
		}
		done += (size_t)n;
	}
	if (close(fd) != 0) {
		perror("close");
		return 1;
	}
	printf("{\"write_us\":%.0f}\n", now_us() - t0);
	return 0;
}
