/* Which bpfckpt binary bpfckpt_checkpoint_self runs. */
#ifndef BPFCKPT_SELF_LOCATE_H
#define BPFCKPT_SELF_LOCATE_H

#include <stddef.h>

/* $BPFCKPT if set, else the installed one (BPFCKPT_INSTALLED_BIN, from CMake), else `bpfckpt` on PATH. Writes its
 * path into out; returns 0, or -1 with errno (ENOENT: none found; or why $BPFCKPT cannot be run). */
int bck_locate_bpfckpt(char *out, size_t size);

#endif /* BPFCKPT_SELF_LOCATE_H */
