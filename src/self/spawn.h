/* Starting `bpfckpt dump` outside the caller's process tree, with a watcher that turns its exit into a verdict. */
#ifndef BPFCKPT_SELF_SPAWN_H
#define BPFCKPT_SELF_SPAWN_H

#include <sys/types.h>

/* Forks a watcher that is no descendant of the caller (a grandchild in a new session, its parent gone and reaped
 * before this returns), which runs argv (argv[0]: the binary's path) and, once it exits, writes the verdict into
 * tok_w (src/self/token.h): DONE after exit status 0, else FAILED + EIO (bpfckpt itself reports a better errno
 * first when it can; the caller takes the first verdict). Returns the watcher's pid, or -1 with errno. */
pid_t bck_spawn_dumper(char *const argv[], int tok_r, int tok_w);

#endif /* BPFCKPT_SELF_SPAWN_H */
