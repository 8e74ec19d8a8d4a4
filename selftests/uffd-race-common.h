/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userfaultfd plumbing shared by the userfaultfd race tests: opening and
 * handshaking a userfaultfd, the memory types the tests run over, and
 * running one test case in a child so a hang or crash stays contained.
 */
#ifndef UFFD_RACE_COMMON_H
#define UFFD_RACE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#include "kselftest.h"

/*
 * The kernel's attribute shorthands. Newer kselftest.h defines __printf
 * and __noreturn, 6.1's does not; none defines noinline.
 */
#define uffd_attr(...)	__attribute__((__VA_ARGS__))
#ifndef __noreturn
#define __noreturn	uffd_attr(__noreturn__)
#endif
#ifndef __printf
#define __printf(a, b)	uffd_attr(__format__(printf, a, b))
#endif
#ifndef noinline
#define noinline	uffd_attr(__noinline__)
#endif

/* Exit codes of a case run by run_case(), results of a case function. */
#define CASE_PASS	0
#define CASE_FAIL	1
#define CASE_SKIP	KSFT_SKIP

/*
 * Why the case skips: returns CASE_SKIP, and the reason goes on the case's
 * TAP line (run_case(), CASE_END()).
 */
int __printf(1, 2) case_skip(const char *fmt, ...);
extern char case_skip_why[256];

#ifdef __KSELFTEST_HARNESS_H
/*
 * End a kselftest_harness.h case with the result of a case function
 * (CASE_PASS, CASE_FAIL, or CASE_SKIP from case_skip()).
 */
static inline void case_end(struct __test_metadata *_metadata, int ret)
{
	if (ret == CASE_SKIP)
		SKIP(return, "%s", case_skip_why);
	ASSERT_EQ(CASE_PASS, ret);
}
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
 * Options every randomised test takes: -s SEED to replay a run, -r ROUNDS
 * and -t SECONDS (per case) to lengthen it for soak runs, -a to add cases
 * a test leaves out by default (it says which and why). The tests that
 * double as benchmarks also take -b, measure and print
 * "bench:" lines instead of judging, and -n N[,N...], the sizes to
 * measure at (thread counts, mapping counts).
 */
#define MAX_SIZES	8
struct test_opts {
	unsigned int rand;	/* where the random numbers start */
	int rounds;
	int seconds;
	bool all_types;
	bool bench;
	int nr_sizes;
	int sizes[MAX_SIZES];
};

/* Parse the options into @o (defaults already set) and print the seed. */
void parse_test_opts(int argc, char **argv, struct test_opts *o);

/*
 * The knobs of a test on kselftest_harness.h, which owns the command line,
 * come from the environment: UFFD_RANDOM=N replays a run, UFFD_ROUNDS and
 * UFFD_SECONDS lengthen a case for soak runs, UFFD_ALL_TYPES=1 runs the
 * cases a test leaves out by default. env_int() returns $@name, or @def
 * when it is unset or not a number.
 */
int env_int(const char *name, int def);

/*
 * Set @o from the environment ($UFFD_ROUNDS, $UFFD_SECONDS,
 * $UFFD_ALL_TYPES; defaults: what @o holds) and pick the random start.
 */
void test_opts_from_env(struct test_opts *o);

/*
 * Where this run's random numbers start: $UFFD_RANDOM, or one made of the
 * time and pid. Printed, so that a failed run can be replayed.
 */
unsigned int random_start(void);

/* Seconds on CLOCK_MONOTONIC. */
double now(void);

/*
 * UFFD_TIMEOUT_SCALE=N multiplies every case deadline by N, for kernels
 * that run everything slower (KASAN and lock debugging under emulation).
 * A test's own time limits inside a case scale by it too.
 */
int timeout_scale(void);

/* Next number of a small PRNG: a run replays from its printed seed. */
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

struct named_case;

/*
 * Run @c on @mt (NULL for a case without memory types) in a child process
 * and return CASE_PASS, CASE_FAIL or CASE_SKIP. @timeout_s (times
 * $UFFD_TIMEOUT_SCALE when set) is how long the child may go without a
 * case_progress(), counted from its start: a child that does is killed
 * (its whole process group) and counts as a failure.
 */
int run_case(const char *name, const struct named_case *c, const struct mem_type *mt,
	     int timeout_s);

/*
 * From a case child: one step of the case is done (a round, a cycle), so
 * run_case() restarts the case's time limit. Cases that do a fixed amount
 * of work call it, so that a slow guest is not mistaken for a hung one.
 */
void case_progress(void);

/* How often run_case() says that a long case still makes progress, in s. */
#define PROGRESS_LINE_S	60

/*
 * Fail the running case at once with a message the parent prints. For a
 * case child whose mm may be wedged (mmap_lock held by a livelocked GUP):
 * any page fault, even the copy-on-write of stdio's buffer, would block
 * forever there, so the message goes to a page the child faulted in when
 * it started, and the child exits without flushing stdio.
 */
void __noreturn __printf(1, 2) case_fail_fast(const char *fmt, ...);

/*
 * For a case that is not run by run_case() (a kselftest_harness.h case):
 * prepare the process as run_case() prepares its child, so that
 * case_fail_fast() can report without faulting. It then writes the
 * message to stderr itself.
 */
void case_prepare_fail_fast(void);

/*
 * Report a run_case() result as one TAP line named @name. Inline on
 * purpose: kselftest.h keeps its counters in a static struct, one copy per
 * translation unit, and only the test's own copy decides its exit code.
 */
static inline void report_case(const char *name, int result)
{
	switch (result) {
	case CASE_PASS:
		ksft_test_result_pass("%s\n", name);
		break;
	case CASE_SKIP:
		/* With the reason the case gave case_skip(), if any. */
		if (case_skip_why[0])
			ksft_test_result_skip("%s: %s\n", name, case_skip_why);
		else
			ksft_test_result_skip("%s\n", name);
		case_skip_why[0] = '\0';
		break;
	default:
		ksft_test_result_fail("%s\n", name);
		break;
	}
}

/*
 * Print the totals and exit with the kselftest code for them. 6.1's
 * ksft_exit_*() return int, newer ones are void __noreturn: call them as
 * statements so both compile.
 */
static inline int finish_tests(void)
{
	if (ksft_get_fail_cnt())
		ksft_exit_fail();
	ksft_exit_pass();
	return 0;
}

/* The memory types a case runs on, as bits of the index in mem_types[]. */
#define MEM_ANON	0x1U
#define MEM_SHMEM	0x2U
#define MEM_HUGETLB	0x4U
#define MEM_ALL		(MEM_ANON | MEM_SHMEM | MEM_HUGETLB)

/*
 * One case of a test's table, for run_cases(): it runs once per memory
 * type of @mem, named NAME.TYPE, or once, named NAME, when @mem is 0.
 * @opt_in: the types of @mem (any bit, for a case without @mem) that run
 * only with -a; their SKIP line says @opt_in_why. @data: the case's own
 * parameters, for @fn.
 */
struct named_case {
	const char *name;
	int (*fn)(const struct named_case *c, const struct mem_type *mt);
	unsigned int mem;
	unsigned int opt_in;
	const char *opt_in_why;
	const void *data;
};

/* Whether a run of @c on type @type (-1: none) is opt-in and not opted in. */
static inline bool case_left_out(const struct named_case *c, int type, bool all_types)
{
	if (all_types || !c->opt_in)
		return false;
	return type < 0 || (c->opt_in & (1U << type));
}

/*
 * Plan the @n cases of @cases crossed with their memory types and run each
 * in its own child (run_case()) with @timeout_s, or report them all SKIP
 * with @skip_why when it is not NULL. Then print the totals and exit. @o:
 * the test's options (-a), or NULL. Inline for the same reason as
 * report_case().
 */
static inline int run_cases(const struct named_case *cases, int n, int timeout_s,
			    const struct test_opts *o, const char *skip_why)
{
	bool all_types = o && o->all_types;
	unsigned int plan = 0;
	char name[96];

	for (int i = 0; i < n; i++) {
		if (cases[i].mem)
			plan += __builtin_popcount(cases[i].mem);
		else
			plan++;
	}
	ksft_print_header();
	ksft_set_plan(plan);
	for (int i = 0; i < n; i++) {
		const struct named_case *c = &cases[i];

		for (int type = c->mem ? 0 : -1; type < nr_mem_types; type++) {
			const struct mem_type *mt = type < 0 ? NULL : &mem_types[type];

			if (type >= 0 && !(c->mem & (1U << type)))
				continue;
			if (mt)
				snprintf(name, sizeof(name), "%s.%s", c->name, mt->name);
			else
				snprintf(name, sizeof(name), "%s", c->name);
			if (skip_why)
				ksft_test_result_skip("%s: %s\n", name, skip_why);
			else if (case_left_out(c, type, all_types))
				ksft_test_result_skip("%s: opt-in (-a): %s\n", name,
						      c->opt_in_why);
			else
				report_case(name, run_case(name, c, mt, timeout_s));
			if (type < 0)
				break;
		}
	}
	return finish_tests();
}

/*
 * In @text, the number after the first "@key " at the start of a line or
 * after a blank or tab; returns true and sets @val when found.
 */
bool text_number(const char *text, const char *key, long *val);

/* What /proc/PID/stat (or /proc/PID/task/TID/stat) says of a task. */
struct task_stat {
	char comm[64];		/* field 2, without its parentheses */
	char state;		/* field 3 */
	int pgrp;		/* field 5 */
	long utime, stime;	/* fields 14 and 15, in clock ticks */
};

/*
 * Read it for process @pid, or for its thread @tid when @tid is not 0:
 * 0, or -1 when the task is gone. The command name may hold anything,
 * blanks and ") " included: the fields after it are found from the last ')'.
 */
int read_task_stat(int pid, int tid, struct task_stat *st);

#endif
