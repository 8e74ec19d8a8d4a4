// SPDX-License-Identifier: GPL-2.0
/*
 * The bench's case runner: the tests not written on kselftest_harness.h
 * (those that stay on the bench, and the debug module's) declare their
 * cases as a table and hand it to run_cases().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "uffd-case-runner.h"

int nr_bench_sizes;
int bench_sizes[MAX_SIZES];
bool bench_mode;

char case_skip_why[256];

int case_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(case_skip_why, sizeof(case_skip_why), fmt, ap);
	va_end(ap);
	return CASE_SKIP;
}

/* "N[,N...]", each 0 or more, at most MAX_SIZES of them, into bench_sizes. */
static int parse_sizes(const char *arg)
{
	char *end;

	nr_bench_sizes = 0;
	do {
		long n = strtol(arg, &end, 10);

		if (end == arg || n < 0 || n > 1 << 20 || nr_bench_sizes == MAX_SIZES ||
		    (*end && *end != ','))
			return -1;
		bench_sizes[nr_bench_sizes++] = n;
		arg = end + 1;
	} while (*end);
	return 0;
}

void parse_test_opts(int argc, char **argv, struct test_opts *o)
{
	const char *r = getenv("UFFD_RANDOM");
	int c;

	o->rand = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	if (r && *r)
		o->rand = strtoul(r, NULL, 0);
	while ((c = getopt(argc, argv, "s:r:t:n:abh")) != -1) {
		switch (c) {
		case 'a':
			o->all_types = true;
			break;
		case 'b':
			bench_mode = true;
			break;
		case 'n':
			if (parse_sizes(optarg))
				goto usage;
			break;
		case 's':
			o->rand = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			o->rounds = atoi(optarg);
			break;
		case 't':
			o->seconds = atoi(optarg);
			break;
		default:
usage:
			fprintf(stderr,
				"usage: %s [-s seed] [-r rounds] [-t seconds per case] [-a] [-b] [-n N[,N...]]\n",
				argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (o->rounds < 1 || o->seconds < 1) {
		fprintf(stderr, "%s: rounds and seconds must be positive\n", argv[0]);
		exit(KSFT_FAIL);
	}
	ksft_print_msg("random start %u (replay with UFFD_RANDOM=%u)\n", o->rand, o->rand);
	ksft_print_msg("up to %d rounds or %d s per case\n", o->rounds, o->seconds);
}

/*
 * Shared with the case child: how many steps the case has reported done
 * (case_progress()), and why it skipped (case_skip()).
 */
static struct case_report {
	unsigned long progress;
	char skip_why[sizeof(case_skip_why)];
} *case_report;

void case_progress(void)
{
	if (case_report)
		__atomic_add_fetch(&case_report->progress, 1, __ATOMIC_RELAXED);
}

int timeout_scale(void)
{
	const char *s = getenv("UFFD_TIMEOUT_SCALE");
	int n = s ? atoi(s) : 1;

	return n > 0 ? n : 1;
}

int run_case(const char *name, const struct named_case *c, const struct mem_type *mt,
	     int timeout_s)
{
	const int limit = timeout_s * timeout_scale();
	double start, moved, told;
	unsigned long steps = 0;
	int status;
	pid_t pid;

	if (!case_report) {
		case_report = mmap(NULL, sizeof(*case_report), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (case_report == MAP_FAILED) {
			case_report = NULL;
			diag("%s: mmap: %s", name, strerror(errno));
			return CASE_FAIL;
		}
	}
	memset(case_report, 0, sizeof(*case_report));

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		diag("%s: fork: %s", name, strerror(errno));
		return CASE_FAIL;
	}
	if (!pid) {
		/* Own process group, so a timeout kills the case's helpers too. */
		int r;

		setpgid(0, 0);
		memset(case_report, 0, sizeof(*case_report));
		/* Reporting a wedged mm must not fault: see case_fail_fast(). */
		case_prepare_fail_fast();
		r = c->fn(c, mt);
		if (r == CASE_SKIP)
			memcpy(case_report->skip_why, case_skip_why, sizeof(case_skip_why));
		/* _exit() drops stdio buffers: keep the case's diagnostics. */
		fflush(stdout);
		fflush(stderr);
		_exit(r);
	}
	setpgid(pid, pid);
	start = now();
	moved = start;
	told = start;
	/*
	 * A watchdog on progress, not a budget for the whole case: a busy
	 * host slows the guest down, so a case doing a fixed amount of work
	 * may take several times as long as on an idle one, while a hang
	 * (the bug some cases look for) reports no step at all. The limit
	 * runs from the case's start or its last case_progress(), whichever
	 * is later; a case that never calls it has a plain deadline. While
	 * steps come, a line every PROGRESS_LINE_S says so (guest-init's own
	 * watchdog waits for output).
	 */
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		unsigned long p = __atomic_load_n(&case_report->progress, __ATOMIC_RELAXED);
		double t = now();

		if (r == pid)
			break;
		if (p != steps) {
			steps = p;
			moved = t;
		}
		if (t - told >= PROGRESS_LINE_S && moved > told) {
			diag("%s: running for %.0f s, %lu steps done, the last %.0f s ago",
			     name, t - start, steps, t - moved);
			fflush(stdout);
			told = t;
		}
		if (t - moved > limit) {
			if (steps)
				diag("%s: no step done for %d s (%lu done in %.0f s), killing it",
				     name, limit, steps, t - start);
			else
				diag("%s: no result after %d s, killing it", name, limit);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			/* A child stuck in D state would never be reaped: give up. */
			for (int i = 0; i < 50; i++) {
				if (waitpid(pid, &status, WNOHANG) == pid)
					return CASE_FAIL;
				usleep(100000);
			}
			diag("%s: child %d did not die after SIGKILL (D state?)", name, pid);
			return CASE_FAIL;
		}
		usleep(10000);
	}
	if (WIFSIGNALED(status)) {
		diag("%s: killed by signal %d", name, WTERMSIG(status));
		return CASE_FAIL;
	}
	switch (WEXITSTATUS(status)) {
	case CASE_PASS:
		return CASE_PASS;
	case CASE_SKIP:
		memcpy(case_skip_why, case_report->skip_why, sizeof(case_skip_why));
		return CASE_SKIP;
	default:
		return CASE_FAIL;
	}
}

bool text_number(const char *text, const char *key, long *val)
{
	size_t k = strlen(key);
	const char *p;

	for (p = text; (p = strstr(p, key)) != NULL; p += k) {
		char *end;

		if (p != text && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
			continue;
		if (p[k] != ' ')
			continue;
		*val = strtol(p + k + 1, &end, 0);
		if (end != p + k + 1)
			return true;
	}
	return false;
}

int read_task_stat(int pid, int tid, struct task_stat *st)
{
	char path[64], buf[1024], *open_paren, *close_paren;
	size_t len;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	len = close_paren - open_paren - 1;
	if (len >= sizeof(st->comm))
		len = sizeof(st->comm) - 1;
	memcpy(st->comm, open_paren + 1, len);
	st->comm[len] = '\0';
	if (sscanf(close_paren + 1, " %c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
		   &st->state, &st->pgrp, &st->utime, &st->stime) != 4)
		return -1;
	return 0;
}

