#define _GNU_SOURCE
#include "self/locate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BPFCKPT_INSTALLED_BIN
#error "BPFCKPT_INSTALLED_BIN must name the installed bpfckpt binary (src/self/CMakeLists.txt)"
#endif

static int copy_if_runnable(const char *path, char *out, size_t size)
{
	struct stat st;
	if (stat(path, &st) != 0 || access(path, X_OK) != 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EACCES;  /* what execve says of a directory */
		return -1;
	}
	if (strlen(path) >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(out, path);
	return 0;
}

/* The first `bpfckpt` along PATH, as execvp would pick it (an empty entry is the current directory). Done here, in
 * the caller, so that the forked children only call execve. */
static int search_path(char *out, size_t size)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');
		int len = (int)(end - path);
		char candidate[4096];
		int n = snprintf(candidate, sizeof(candidate), "%.*s%sbpfckpt", len, path, len ? "/" : "");
		if (n > 0 && (size_t)n < sizeof(candidate) && copy_if_runnable(candidate, out, size) == 0)
			return 0;
		path = *end ? end + 1 : end;
	}
	errno = ENOENT;
	return -1;
}

int bck_locate_bpfckpt(char *out, size_t size)
{
	const char *env = getenv("BPFCKPT");
	if (env && *env)
		return copy_if_runnable(env, out, size);
	if (copy_if_runnable(BPFCKPT_INSTALLED_BIN, out, size) == 0)
		return 0;
	return search_path(out, size);
}
