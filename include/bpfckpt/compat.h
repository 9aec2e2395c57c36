/*
 * What the kernel headers installed here (linux-libc-dev 6.1) and libbpf 1.1.2 lack. Each definition names the
 * kernel that added it; the kernel's ABI never changes them, so copying the numbers is safe. Nothing else in the
 * tree defines kernel ABI.
 */
#ifndef BPFCKPT_COMPAT_H
#define BPFCKPT_COMPAT_H

#include <linux/fs.h>
#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/* PAGEMAP_SCAN: Linux 6.7 (commit 52526ca7fdb9 "fs/proc/task_mmu: implement IOCTL to get and optionally clear
 * info about PTEs"). PAGE_IS_PFNZERO and PAGE_IS_HUGE came with it; PAGE_IS_GUARD in 6.14. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN   (1 << 1)
#define PAGE_IS_FILE      (1 << 2)
#define PAGE_IS_PRESENT   (1 << 3)
#define PAGE_IS_SWAPPED   (1 << 4)
#define PAGE_IS_PFNZERO   (1 << 5)
#define PAGE_IS_HUGE      (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* userfaultfd write-protect modes: WP_UNPOPULATED Linux 6.4, WP_ASYNC Linux 6.7. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* NT_X86_XSTATE's buffer starts with the 512-byte FXSAVE area; XCR0 is saved at this offset of its
 * software-reserved bytes (arch/x86/include/asm/user.h, since 2.6.38). */
#define BCK_XSTATE_XCR0_OFFSET 464

/* prctl(PR_TIMER_CREATE_RESTORE_IDS, ON): timer_create() takes the id to use from *timerid (EBUSY when taken).
 * Linux 6.15 (commit ec2d0c04624b "posix-timers: Provide a mechanism to allocate a given timer ID"). */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#define PR_TIMER_CREATE_RESTORE_IDS_GET 2
#endif

/* Errnos the kernel uses inside a syscall that userspace never sees (include/linux/errno.h). */
#define BCK_ERESTARTSYS 512
#define BCK_ERESTARTNOINTR 513
#define BCK_ERESTARTNOHAND 514
#define BCK_ERESTART_RESTARTBLOCK 516

#endif
