/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The debug module's debugfs files, for the tests that read or drive it
 * (module/tests/); the userfaultfd plumbing is selftests/uffd-race-common.h.
 */
#ifndef UFFD_DEBUG_COMMON_H
#define UFFD_DEBUG_COMMON_H

#include "uffd-case-runner.h"

/*
 * The debug module (module/uffd_debug.c) and its debugfs files.
 * uffd_debug_ready(): 0 when its directory is there (loading the module
 * from $UFFD_DEBUG_KO or UFFD_DEBUG_KO_DEFAULT if it is not), -1 with a
 * diagnostic when it cannot be had: the caller then SKIPs.
 */
#define UFFD_DEBUG_DIR		"/sys/kernel/debug/uffd_debug"
#define UFFD_DEBUG_KO_DEFAULT	"/lib/modules/uffd_debug.ko"
int uffd_debug_ready(void);
/* NULL when uffd_debug_ready(), else why not: for run_cases()' @skip_why. */
const char *uffd_debug_missing(void);
/* Load (finit_module) or unload (delete_module) the module: 0 or -errno. */
int uffd_debug_load(void);
int uffd_debug_unload(void);
/* Whole contents of debugfs file @name, malloc()ed; NULL with errno set. */
char *uffd_debug_read(const char *name);
/* Write @len bytes of @buf in one write(2): 0, or -errno. */
int uffd_debug_write_buf(const char *name, const char *buf, size_t len);
/* Write a formatted line: 0, or -errno. */
int __printf(2, 3) uffd_debug_write(const char *name, const char *fmt, ...);
/* The "ctx" block of `contexts` whose fds list has PID:FD, malloc()ed. */
char *uffd_debug_ctx_block(const char *contexts, int pid, int fd);
/* How many lines of @text start with @prefix. */
int count_lines(const char *text, const char *prefix);

#endif
