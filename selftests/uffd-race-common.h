/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userfaultfd plumbing shared by the userfaultfd race tests: opening and
 * handshaking a userfaultfd, the memory types the tests run over, their
 * knobs, and reporting a case's result from a process whose mm may be
 * wedged.
 */
#ifndef UFFD_RACE_COMMON_H
#define UFFD_RACE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#include "kselftest.h"

/* Newer kselftest.h defines __printf and __noreturn, 6.1's does not. */
#define uffd_attr(...)	__attribute__((__VA_ARGS__))
#ifndef __noreturn
#define __noreturn	uffd_attr(__noreturn__)
#endif
#ifndef __printf
#define __printf(a, b)	uffd_attr(__format__(printf, a, b))
#endif

struct mem_type {
	const char *name;
	/* Size of the page UFFDIO_COPY works in for this type. */
	size_t (*page_size)(void);
	/* Map len bytes; NULL with errno set when the type is unavailable. */
	void *(*map)(size_t len);
	void (*unmap)(void *p, size_t len);
	/* Drop the pages of [p, p + len) so that touching them faults again. */
	int (*zap)(void *p, size_t len);
	/* UFFDIO_REGISTER modes this type supports beyond MISSING. */
	__u64 extra_modes;
};

extern const struct mem_type mem_types[];
extern const int nr_mem_types;

/*
 * The knobs of a randomised test come from the environment (the harness
 * owns the command line): UFFD_ROUNDS and UFFD_SECONDS per case lengthen
 * it for soak runs, UFFD_ALL_TYPES=1 adds the cases it leaves out by
 * default, UFFD_RANDOM=N replays its random choices. env_int() returns
 * $@name, or @def when it is unset or not a number; test_opts_from_env()
 * sets @o (defaults: what @o holds); random_start() returns $UFFD_RANDOM
 * or a start made of the time and pid, and prints it.
 */
struct test_opts {
	unsigned int rand;	/* where the random numbers start */
	int rounds;
	int seconds;
	bool all_types;
};

int env_int(const char *name, int def);
void test_opts_from_env(struct test_opts *o);
unsigned int random_start(void);

/* Seconds on CLOCK_MONOTONIC. */
double now(void);

/* Next number of a small PRNG: a run replays from its printed start. */
unsigned int rnd(unsigned int *state);

/*
 * Pin the calling thread to CPU @cpu modulo the CPUs online, so that racing
 * threads really run at once; nothing to do with a single CPU.
 */
void pin_to_cpu(int cpu);

/* The PMD huge page size the shmem collapse tests work in (x86_64). */
#define HPAGE		(2UL << 20)
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

/* Reserve @len bytes of 2 MiB-aligned address space, PROT_NONE; NULL on error. */
char *reserve_hpage_aligned(size_t len);
/*
 * Map @len bytes of @fd from offset 0, read-write with @flags (MAP_SHARED or
 * MAP_PRIVATE), at a new 2 MiB-aligned address, so that the range can be
 * collapsed into huge pages; NULL with errno set on error.
 */
char *map_hpage_aligned(int fd, size_t len, int flags);

/* Print a diagnostic line (TAP comment) from a test or a case child. */
#define diag(fmt, ...) ksft_print_msg(fmt "\n", ##__VA_ARGS__)

/* Open a userfaultfd (syscall, else /dev/userfaultfd); -1 and errno on error. */
int uffd_race_open(int flags);
/* Open and handshake with @features; -1 and errno on error. */
int uffd_race_open_api(__u64 features, __u64 *ioctls);
int uffd_register_mode(int uffd, void *addr, size_t len, __u64 mode);
/* UFFDIO_COPY of one page: 0, or -errno. */
int uffd_copy(int uffd, void *dst, const void *src, size_t len);
/*
 * Read one message, waiting up to @timeout_ms: 1 when one was read, 0 on
 * timeout, -1 on error (errno set).
 */
int uffd_race_read_msg(int uffd, struct uffd_msg *msg, int timeout_ms);

/*
 * Fail the running case at once, printing the message on stderr. For a
 * case whose mm may be wedged (mmap_lock held by a livelocked GUP): any
 * page fault, even the copy-on-write of stdio's buffer, would block
 * forever there, so the message is formatted in memory that
 * case_prepare_fail_fast() populated and pinned, written with write(),
 * and the process exits without flushing stdio.
 */
void __noreturn __printf(1, 2) case_fail_fast(const char *fmt, ...);

/*
 * Populate and pin what the process has (its code too: fork does not copy
 * file-backed ptes), so that case_fail_fast() never faults. Mappings made
 * later, like the case's test range, stay unlocked.
 */
void case_prepare_fail_fast(void);

#endif
