// Files the BPF iterators reach through kernel structures, not through an fd: the cwd on a mount of its own, a
// private mapping of a file there, a memfd mapping and MAP_SHARED anonymous memory (both pseudo files whose names
// come from their filesystem). The memfd's fd is closed: only the mapping holds it.
// Arguments: --dir D (a directory on another mount than /). READY {pid, file_addr, memfd_addr, shm_addr, cwd}.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "protocol.h"

enum { kSize = 64 << 10 };

static void fill(unsigned char* p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static int intact(const unsigned char* p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed))
			return 0;
	return 1;
}

static void* map_data_file(void)
{
	unsigned char buf[kSize];
	int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return MAP_FAILED;
	fill(buf, sizeof(buf), 1);
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return MAP_FAILED;
	void* p = mmap(NULL, kSize, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	return p;
}

static void* map_memfd(void)
{
	int fd = memfd_create("wl-mapped-paths", 0);
	if (fd < 0 || ftruncate(fd, kSize) != 0)
		return MAP_FAILED;
	void* p = mmap(NULL, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p != MAP_FAILED)
		fill(p, kSize, 2);
	return p;
}

int main(int argc, char** argv)
{
	const char* dir = argc == 3 && !strcmp(argv[1], "--dir") ? argv[2] : NULL;
	sigset_t set;
	char cwd[4096];

	wl_block_sigusr1(&set);
	if (!dir || chdir(dir) != 0 || !getcwd(cwd, sizeof(cwd)))
		return wl_verdict("usage: mapped_paths --dir D (an existing directory)");
	unsigned char* file = map_data_file();
	unsigned char* memfd = map_memfd();
	unsigned char* shm = mmap(NULL, kSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (file == MAP_FAILED || memfd == MAP_FAILED || shm == MAP_FAILED)
		return wl_verdict("setting up the mappings failed");
	fill(shm, kSize, 3);
	printf("READY {\"pid\": %d, \"file_addr\": %lu, \"memfd_addr\": %lu, \"shm_addr\": %lu, \"cwd\": \"%s\"}\n",
	       getpid(), (unsigned long)file, (unsigned long)memfd, (unsigned long)shm, cwd);
	fflush(stdout);

	if (wl_wait_sigusr1(&set, "mapped_paths") != 0)
		return 1;
	char now[4096];
	if (!getcwd(now, sizeof(now)) || strcmp(now, cwd) != 0)
		return wl_verdict("the cwd changed");
	if (!intact(file, kSize, 1))
		return wl_verdict("the file mapping changed");
	if (!intact(memfd, kSize, 2))
		return wl_verdict("the memfd mapping changed");
	if (!intact(shm, kSize, 3))
		return wl_verdict("the shared anonymous mapping changed");
	return wl_verdict(NULL);
}
