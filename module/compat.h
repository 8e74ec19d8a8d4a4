/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything that differs between the trees uffd_debug builds against
 * (Debian's 6.1.y and mainline 7.x), in one place.  Kbuild sets the
 * UFFD_DEBUG_* switches from the tree's sources and copies the structs
 * userfaultfd keeps private into uffd_layout.h:
 *
 *   UFFD_DEBUG_HAVE_TRACEPOINTS   the series' userfaultfd tracepoints
 *   UFFD_DEBUG_HAVE_MISSING_COUNT   the series' per-shmem-inode counter
 *   UFFD_DEBUG_GUP_VMAS_ARG       get_user_pages_remote() still takes the
 *                                 vmas array (before 6.5)
 */
#ifndef UFFD_DEBUG_COMPAT_H
#define UFFD_DEBUG_COMPAT_H

#include <linux/mm.h>
#include <linux/shmem_fs.h>
#include <linux/userfaultfd_k.h>

#include "uffd_layout.h"

#ifdef UFFD_DEBUG_HAVE_TRACEPOINTS
#include <trace/events/userfaultfd.h>
#endif

/* Remote GUP as KVM's async page fault worker issues it: no pages. */
static inline long uffd_debug_gup_remote(struct mm_struct *mm,
					 unsigned long start,
					 unsigned long nr_pages,
					 unsigned int gup_flags, int *locked)
{
#ifdef UFFD_DEBUG_GUP_VMAS_ARG
	return get_user_pages_remote(mm, start, nr_pages, gup_flags, NULL,
				     NULL, locked);
#else
	return get_user_pages_remote(mm, start, nr_pages, gup_flags, NULL,
				     locked);
#endif
}

#ifdef UFFD_DEBUG_HAVE_MISSING_COUNT
static inline bool uffd_debug_missing_count(struct inode *inode,
					    unsigned int *count)
{
	*count = shmem_nr_uffd_missing(inode);
	return true;
}
#else
static inline bool uffd_debug_missing_count(struct inode *inode,
					    unsigned int *count)
{
	return false;
}
#endif

#endif /* UFFD_DEBUG_COMPAT_H */
