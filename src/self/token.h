/* The bytes that travel through the caller's pipe during bpfckpt_checkpoint_self (include/bpfckpt/self.h), shared
 * by libbpfckpt (C, the caller and the watcher it forks) and `bpfckpt dump --self-token` (C++, src/dump/self_token.h).
 *
 * While the caller is frozen, bpfckpt writes RESTORED into the pipe, saves the pipe's bytes into the image, and takes
 * the byte back out before the caller runs again: only a process restored from the image ever reads it. The live
 * caller then reads the verdict: DONE, or FAILED followed by an int errno (one write of 5 bytes, atomic in a pipe).
 */
#ifndef BPFCKPT_SELF_TOKEN_H
#define BPFCKPT_SELF_TOKEN_H

enum bck_self_byte {
	BCK_SELF_RESTORED = 'R',
	BCK_SELF_DONE = 'D',
	BCK_SELF_FAILED = 'F',
};

#endif /* BPFCKPT_SELF_TOKEN_H */
