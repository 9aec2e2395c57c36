/* libbpfckpt: a process checkpoints itself (pkg-config --cflags --libs bpfckpt).
 *
 *	int r = bpfckpt_checkpoint_self("/var/tmp/img", 0);
 *	if (r == 0)       the image is on disk; this process ran on
 *	else if (r == 1)  this process has just been restored from that image (`bpfckpt restore -D /var/tmp/img`)
 *	else              failed, errno says why; this process runs on unharmed
 *
 * The dump is done by the bpfckpt binary, started in a new session outside the caller's process tree (so that it is
 * never part of what it dumps): $BPFCKPT if set, else the installed bin/bpfckpt, else `bpfckpt` on PATH. It needs
 * the privileges of `bpfckpt dump` (root). The calling thread waits; the process's other threads run until the dump
 * freezes them and after it thaws them.
 *
 * errno on failure:
 *   EINVAL    dir is NULL or empty, or flags holds an unknown bit
 *   ENOENT    no bpfckpt binary (or EACCES: one that may not be run)
 *   the errno of the dump when it had one (EROFS, ENOSPC, EACCES, ...), else its exit class (bpfckpt's exit codes):
 *   EPERM     not privileged enough         ESRCH   the process may not be dumped
 *   EBUSY     traced, or changed mid-dump   ENOTSUP the process holds state bpfckpt cannot save (its stderr says which)
 *   ENOSYS    the kernel lacks a feature    EINVAL  bpfckpt refused the command line (a version mismatch)
 *   EIO       anything else: the image directory exists and is not empty, bpfckpt crashed or was killed
 * bpfckpt's one-line error goes to the caller's stderr.
 *
 * Not async-signal-safe; one call at a time per process. The caller must not be traced (a debugger), and its
 * SIGCHLD handler, if any, may reap the short-lived child this call forks.
 */
#ifndef BPFCKPT_SELF_H
#define BPFCKPT_SELF_H

#ifdef __cplusplus
extern "C" {
#endif

/* With the caller's descendants (`bpfckpt dump`); without it, the caller alone (`bpfckpt dump --no-children`). */
#define BPFCKPT_SELF_TREE 1u

/* Checkpoints the calling process into the image directory `dir` (created; must not exist or be empty).
 * Returns 0 once the image is on disk, 1 in the process restored from it, -1 with errno on failure. */
int bpfckpt_checkpoint_self(const char *dir, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* BPFCKPT_SELF_H */
