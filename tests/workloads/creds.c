// creds: supplementary groups and capability sets, set before READY and checked by each thread after
// (tests/workloads/README.md has the protocol). Runs as root.
//
// --groups: setgroups() of 4001, 4002, 4003.
// --caps: drops CAP_NET_RAW, CAP_SYS_BOOT and CAP_MKNOD from the bounding set, adds CAP_NET_BIND_SERVICE to the
//   inheritable set and raises it in the ambient set.
// Both are done before the second thread starts: it inherits them (credentials are per thread in the kernel).
// SIGUSR1 has each thread compare its own credentials with what was set: the groups, the bounding set (what it was
// at start minus the dropped three), the ambient set (CAP_NET_BIND_SERVICE alone).
#define _GNU_SOURCE
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <grp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "protocol.h"

static const gid_t kGroups[3] = {4001, 4002, 4003};
static const int kDropped[3] = {CAP_NET_RAW, CAP_SYS_BOOT, CAP_MKNOD};
static int want_groups, want_caps;
static uint64_t bset_at_start;
static atomic_int second_tid, second_go;
static const char* second_why;
static char second_buf[160];
static atomic_int second_done;

static int in_bounding(int cap) { return prctl(PR_CAPBSET_READ, cap, 0, 0, 0); }

static int in_ambient(int cap) { return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0); }

// The calling thread's set that is_in() reads, up to the kernel's last capability (where it fails).
static uint64_t cap_set(int (*is_in)(int))
{
	uint64_t set = 0;
	for (int cap = 0; cap < 64; cap++) {
		int r = is_in(cap);
		if (r < 0)
			break;
		if (r)
			set |= 1ull << cap;
	}
	return set;
}

static uint64_t expected_bset(void)
{
	uint64_t set = bset_at_start;
	if (want_caps)
		for (int i = 0; i < 3; i++)
			set &= ~(1ull << kDropped[i]);
	return set;
}

static int set_caps(void)
{
	for (int i = 0; i < 3; i++)
		if (prctl(PR_CAPBSET_DROP, kDropped[i], 0, 0, 0) != 0)
			return -1;
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -1;
	data[0].inheritable |= 1u << CAP_NET_BIND_SERVICE;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return -1;
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0);
}

// The calling thread's credentials against the expected ones: NULL, or why not.
static const char* check_self(const char* who, char* buf, size_t len)
{
	gid_t got[64];
	// The raw syscall: the calling thread's own groups.
	long n = syscall(SYS_getgroups, 64, got);
	long want_n = want_groups ? 3 : -1;
	if (want_n >= 0 && (n != want_n || memcmp(got, kGroups, sizeof(kGroups)) != 0)) {
		snprintf(buf, len, "%s: %ld groups (%u %u %u ...), expected 4001 4002 4003", who, n, n > 0 ? got[0] : 0,
			 n > 1 ? got[1] : 0, n > 2 ? got[2] : 0);
		return buf;
	}
	uint64_t bset = cap_set(in_bounding), amb = cap_set(in_ambient);
	uint64_t want_amb = want_caps ? 1ull << CAP_NET_BIND_SERVICE : 0;
	if (bset != expected_bset() || amb != want_amb) {
		snprintf(buf, len, "%s: bounding set %#llx ambient %#llx, expected %#llx and %#llx", who,
			 (unsigned long long)bset, (unsigned long long)amb, (unsigned long long)expected_bset(),
			 (unsigned long long)want_amb);
		return buf;
	}
	return NULL;
}

static void* second(void* arg)
{
	(void)arg;
	atomic_store(&second_tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&second_go))
		usleep(1000);
	second_why = check_self("second thread", second_buf, sizeof(second_buf));
	atomic_store(&second_done, 1);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char** argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--groups"))
			want_groups = 1;
		else if (!strcmp(argv[i], "--caps"))
			want_caps = 1;
	}
	sigset_t usr1;
	wl_block_sigusr1(&usr1);
	bset_at_start = cap_set(in_bounding);
	if (want_groups && setgroups(3, kGroups) != 0)
		return wl_verdict("setgroups failed (not root?)");
	if (want_caps && set_caps() != 0)
		return wl_verdict("cannot set the capability sets (not root?)");
	pthread_t t;
	pthread_create(&t, NULL, second, NULL);
	while (!atomic_load(&second_tid))
		usleep(1000);
	printf("READY {\"pid\": %d, \"tids\": [%d, %d]}\n", getpid(), getpid(), atomic_load(&second_tid));
	fflush(stdout);
	if (wl_wait_sigusr1(&usr1, "creds") != 0)
		return 1;
	char buf[256];
	const char* why = check_self("main thread", buf, sizeof(buf));
	atomic_store(&second_go, 1);
	for (int i = 0; i < 5000 && !atomic_load(&second_done); i++)
		usleep(1000);
	if (!why && !atomic_load(&second_done))
		why = "the second thread did not check itself";
	if (!why)
		why = second_why;
	return wl_verdict(why);
}
