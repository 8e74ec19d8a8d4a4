/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bench's case runner, for the tests not written on
 * kselftest_harness.h: running each case of a table in a child so that a
 * hang or crash stays contained, with a watchdog on its progress.
 */
#ifndef UFFD_CASE_RUNNER_H
#define UFFD_CASE_RUNNER_H

#include "uffd-race-common.h"

/* What a case function returns (and a case child's exit code). */
#define CASE_PASS	0
#define CASE_FAIL	1
#define CASE_SKIP	KSFT_SKIP

/*
 * Why the case skips: returns CASE_SKIP, and run_case() carries the reason
 * to the case's TAP line.
 */
int __printf(1, 2) case_skip(const char *fmt, ...);
extern char case_skip_why[256];

/*
 * The bench's options for the tests on run_cases(): -s N (as
 * $UFFD_RANDOM), -r ROUNDS and -t SECONDS (per case) to lengthen a run
 * for soak runs, -a to add the cases a test leaves out by default (it
 * says which and why). The tests that double as benchmarks also take -b,
 * measure and print "bench:" lines instead of judging, and -n N[,N...],
 * the sizes to measure at (thread counts, mapping counts).
 */
#define MAX_SIZES	8
extern bool bench_mode;
extern int nr_bench_sizes;
extern int bench_sizes[MAX_SIZES];

/* Parse the options into @o (defaults already set) and print the start. */
void parse_test_opts(int argc, char **argv, struct test_opts *o);

/*
 * UFFD_TIMEOUT_SCALE=N multiplies every case deadline by N, for kernels
 * that run everything slower (KASAN and lock debugging under emulation).
 * A test's own time limits inside a case scale by it too.
 */
int timeout_scale(void);

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
