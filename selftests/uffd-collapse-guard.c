// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-collapse-guard: the time interrupts stay off while MADV_COLLAPSE
 * decides whether a shmem range with holes is armed with userfaultfd
 * MISSING must not grow with the number of mappings of the file.
 *
 * A 2 MiB memfd with holes at its odd pages is mapped N times (N = 1, 64,
 * 1024, 4096, 16384) and collapsed through one of the mappings, round
 * after round (the file is punched and refilled in between). The irqsoff
 * tracer gives the longest interrupts-off section of each call; its stack
 * trace tells whether it was the collapse's (marked '*' when it was not).
 * Under TCG the readings are noisy both ways: a slow spell of the host
 * lengthens any section, and now and then a round reads far below the
 * others (7.3 once read 601 us among six of about 2500 at N = 16384, the
 * walk not recorded). So each N is judged by the median of its rounds,
 * and reported with the least wall time of the calls. A round whose holes
 * were already filled when MADV_COLLAPSE was called measures no hole
 * filling: it is void and done again.
 *
 *  flat        no mapping armed (the uffd-armed count is zero): the median
 *              at the largest N must stay within FLAT_FACTOR of
 *              the one at N = 1 plus FLAT_SLACK_US. 7.3, which walks the
 *              range's VMAs with interrupts off, fails it;
 *  flat_armed  the same with one more mapping, of the file's third 2 MiB,
 *              armed: the count is not zero, the collapse must look at the
 *              VMAs of the range (with interrupts on) and still collapse.
 *
 * When the largest N reads over the limit, N = 1 and the largest N are
 * measured again, in turn, up to FLAT_RETRIES times, keeping the least
 * median of each: a slow spell of the host can lengthen every round of
 * one N, while a walk's cost is in every round.
 *
 * Needs CONFIG_IRQSOFF_TRACER and tracefs; skips without them, and on a
 * kernel declared slow by UFFD_TIMEOUT_SCALE > 1 (KASAN under emulation:
 * the timings say nothing there and N = 16384 takes hours).
 * -r ROUNDS (default 7) collapses per N.
 *
 * With -b (make bench) it judges nothing: it measures the unarmed file at
 * each N of -n (default 1,16,256,1024,4096) and prints one "bench:" line
 * per N with the median interrupts-off time and the least wall time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "uffd-race-common.h"

#define CASE_TIMEOUT	240
#define FLAT_FACTOR	2
#define FLAT_SLACK_US	100
#define FLAT_RETRIES	2
#define MAX_ROUNDS	32

static struct test_opts opts = { .rounds = 7, .seconds = 200 };
static const int counts[] = { 1, 64, 1024, 4096, 16384 };
#define NR_COUNTS	((int)ARRAY_SIZE(counts))
static const char *tracing;
static size_t page;

static int tracing_write(const char *file, const char *val)
{
	char path[128];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", tracing, file);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		ret = -1;
	close(fd);
	return ret;
}

static int tracing_read(const char *file, char *buf, size_t len)
{
	char path[128];
	ssize_t n, got = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tracing, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	while (got < (ssize_t)len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return 0;
}

/* Find tracefs and select the irqsoff tracer; a reason when it cannot. */
static const char *setup_tracer(void)
{
	static const char *const dirs[] = { "/sys/kernel/tracing",
					    "/sys/kernel/debug/tracing" };
	char buf[4096];

	for (int i = 0; i < 2 && !tracing; i++) {
		char probe[128];

		snprintf(probe, sizeof(probe), "%s/available_tracers", dirs[i]);
		if (access(probe, R_OK) && i == 0)
			mount("tracefs", dirs[0], "tracefs", 0, NULL);
		if (!access(probe, R_OK))
			tracing = dirs[i];
	}
	if (!tracing)
		return "no tracefs";
	if (tracing_read("available_tracers", buf, sizeof(buf)) || !strstr(buf, "irqsoff"))
		return "no irqsoff tracer (CONFIG_IRQSOFF_TRACER)";
	if (tracing_write("current_tracer", "irqsoff") || tracing_write("tracing_on", "1"))
		return "cannot select the irqsoff tracer";
	return NULL;
}

/*
 * The longest interrupts-off section since the last reset, in us, and
 * whether it started and ended in collapse_file().
 */
static long max_irqsoff(bool *in_collapse)
{
	static char buf[1 << 16];
	long us;

	if (tracing_read("tracing_max_latency", buf, sizeof(buf)))
		return -1;
	us = atol(buf);
	if (tracing_read("trace", buf, sizeof(buf)))
		return -1;
	/* The section's stack trace, taken where it ends, names the caller */
	*in_collapse = strstr(buf, "=> collapse_file");
	return us;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The least of @n readings; sorts them. */
static long least(long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	return v[0];
}

/* The median of @n readings; sorts them. */
static long median(long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Whether every odd page of the range is still a hole. */
static bool holes_intact(char *area, unsigned char *vec)
{
	if (mincore(area, HPAGE, vec))
		return false;
	for (size_t i = 1; i < HPAGE / page; i += 2)
		if (vec[i] & 1)
			return false;
	return true;
}

/* Even pages written, odd pages holes. */
static int refill(int fd, char *area)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, HPAGE)) {
		diag("punching the file: %s", strerror(errno));
		return -1;
	}
	for (size_t off = 0; off < HPAGE; off += 2 * page)
		memset(area + off, 0x5a, page);
	return 0;
}

/* Median interrupts-off time, least wall time of collapsing with @n mappings. */
static int measure(int n, bool armed, long *irqsoff_us, long *wall_us)
{
	long irq[MAX_ROUNDS], wall[MAX_ROUNDS];
	int rounds = opts.rounds < MAX_ROUNDS ? opts.rounds : MAX_ROUNDS;
	int void_rounds = 0;
	int fd = memfd_create("uffd-collapse-guard", 0), uffd = -1;
	char *area, *next;
	unsigned char vec[512];
	char seen[16 * MAX_ROUNDS];

	/* The armed VMA maps the file's third 2 MiB: not next to the range. */
	if (fd < 0 || ftruncate(fd, armed ? 3 * HPAGE : HPAGE)) {
		diag("memfd: %s", strerror(errno));
		return -1;
	}
	area = map_hpage_aligned(fd, HPAGE, MAP_SHARED);
	if (!area) {
		diag("mmap: %s", strerror(errno));
		return -1;
	}
	madvise(area, HPAGE, MADV_HUGEPAGE);
	/* Separate VMAs: the same file offset cannot merge with a neighbour. */
	for (int i = 1; i < n; i++)
		if (mmap(NULL, HPAGE, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) {
			diag("mapping %d of %d: %s", i + 1, n, strerror(errno));
			return -1;
		}
	if (armed) {
		next = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 * HPAGE);
		uffd = uffd_open_api(0, NULL);
		if (next == MAP_FAILED || uffd < 0 ||
		    uffd_register_mode(uffd, next, HPAGE, UFFDIO_REGISTER_MODE_MISSING)) {
			diag("arming the third 2 MiB: %s", strerror(errno));
			return -1;
		}
	}
	seen[0] = '\0';
	for (int r = 0; r < rounds; r++) {
		bool in_collapse = false;
		double t;
		int ret;

		if (refill(fd, area) || tracing_write("tracing_max_latency", "0"))
			return -1;
		if (!holes_intact(area, vec)) {
			/* Filled before the call (khugepaged?): nothing to measure. */
			if (++void_rounds > 2 * rounds) {
				diag("N=%d: holes filled before MADV_COLLAPSE in %d rounds",
				     n, void_rounds);
				return -1;
			}
			r--;
			continue;
		}
		t = now();
		ret = madvise(area, HPAGE, MADV_COLLAPSE);
		wall[r] = (now() - t) * 1e6;
		irq[r] = max_irqsoff(&in_collapse);
		if (ret) {
			diag("N=%d: MADV_COLLAPSE: %s", n, strerror(errno));
			return -1;
		}
		if (mincore(area, HPAGE, vec) || !(vec[1] & 1)) {
			diag("N=%d: MADV_COLLAPSE returned 0 but the holes were not filled", n);
			return -1;
		}
		if (irq[r] < 0) {
			diag("reading the irqsoff tracer failed");
			return -1;
		}
		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), " %ld%s", irq[r],
			 in_collapse ? "" : "*");
	}
	/* '*': the longest section was elsewhere, the collapse's was shorter */
	diag("N=%d irqs-off us per round:%s%s", n, seen,
	     void_rounds ? " (void rounds redone)" : "");
	*irqsoff_us = median(irq, rounds);
	*wall_us = least(wall, rounds);
	if (uffd >= 0)
		close(uffd);
	/* The mappings go with the child that ran the case. */
	return 0;
}

/* measure() in a child, so that its mappings are gone when it returns. */
static int measure_in_child(int n, bool armed, long *irqsoff_us, long *wall_us)
{
	int pfd[2], status;
	long v[2];
	ssize_t got;
	pid_t pid;

	if (pipe(pfd) < 0)
		return -1;
	/* Or the child prints the lines still buffered here again. */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		close(pfd[0]);
		int bad = measure(n, armed, &v[0], &v[1]) ||
			  write(pfd[1], v, sizeof(v)) != sizeof(v);

		fflush(stdout);
		_exit(bad);
	}
	close(pfd[1]);
	got = read(pfd[0], v, sizeof(v));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (got != sizeof(v) || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	*irqsoff_us = v[0];
	*wall_us = v[1];
	return 0;
}

static bool grows(const long *irq)
{
	return irq[NR_COUNTS - 1] > FLAT_FACTOR * irq[0] + FLAT_SLACK_US;
}

static int flat(bool armed)
{
	const int last = NR_COUNTS - 1;
	long irq[NR_COUNTS], wall[NR_COUNTS];
	const char *why = setup_tracer();

	if (why) {
		diag("%s", why);
		return CASE_SKIP;
	}
	diag("%-6s %-14s %-14s  (%s, %d rounds: median, least)", "N", "irqs-off us",
	     "MADV_COLLAPSE us", armed ? "one other VMA armed" : "no VMA armed",
	     opts.rounds);
	for (int i = 0; i < NR_COUNTS; i++) {
		if (measure_in_child(counts[i], armed, &irq[i], &wall[i]))
			return CASE_FAIL;
		diag("%-6d %-14ld %-14ld", counts[i], irq[i], wall[i]);
	}
	/*
	 * A slow spell of the host (TCG) can lengthen every reading of one N
	 * for seconds, while a walk's cost is in every reading: measure both
	 * ends again, in turn, and keep the least median of each.
	 */
	for (int retry = 1; grows(irq) && retry <= FLAT_RETRIES; retry++) {
		long v, w;

		diag("%ld us with %d mappings, %ld us with 1: measuring both again (%d of %d)",
		     irq[last], counts[last], irq[0], retry, FLAT_RETRIES);
		for (int i = 0; i <= last; i += last) {
			if (measure_in_child(counts[i], armed, &v, &w))
				return CASE_FAIL;
			diag("%-6d %-14ld %-14ld", counts[i], v, w);
			if (v < irq[i])
				irq[i] = v;
		}
	}
	tracing_write("current_tracer", "nop");
	if (grows(irq)) {
		diag("interrupts stay off %ld us with %d mappings, %ld us with 1: grows with N",
		     irq[last], counts[last], irq[0]);
		return CASE_FAIL;
	}
	diag("no growth: %ld us with %d mappings, %ld us with 1 (limit %d x + %d us)",
	     irq[last], counts[last], irq[0], FLAT_FACTOR, FLAT_SLACK_US);
	return CASE_PASS;
}

static int case_flat(const struct mem_type *unused)
{
	return flat(false);
}

static int case_flat_armed(const struct mem_type *unused)
{
	return flat(true);
}

static const struct named_case cases[] = {
	{ "guard.flat", case_flat },
	{ "guard.flat_armed", case_flat_armed },
};

static int case_bench(const struct mem_type *unused)
{
	const char *why = setup_tracer();
	long irq, wall;

	if (why) {
		diag("%s", why);
		return CASE_SKIP;
	}
	for (int i = 0; i < opts.nr_sizes; i++) {
		if (measure_in_child(opts.sizes[i], false, &irq, &wall))
			return CASE_FAIL;
		diag("bench: guard.n%d irqsoff_us=%ld collapse_us=%ld rounds=%d",
		     opts.sizes[i], irq, wall, opts.rounds);
	}
	tracing_write("current_tracer", "nop");
	return CASE_PASS;
}

static const struct named_case bench_cases[] = {
	{ "bench.guard", case_bench },
};

int main(int argc, char **argv)
{
	const char *scale = getenv("UFFD_TIMEOUT_SCALE");
	bool slow = scale && atoi(scale) > 1;

	parse_test_opts(argc, argv, &opts);
	page = sysconf(_SC_PAGESIZE);
	if (slow)
		diag("UFFD_TIMEOUT_SCALE=%s: a slowed kernel, no timing to judge", scale);
	if (opts.bench) {
		static const int bench_counts[] = { 1, 16, 256, 1024, 4096 };

		if (!opts.nr_sizes) {
			opts.nr_sizes = ARRAY_SIZE(bench_counts);
			memcpy(opts.sizes, bench_counts, sizeof(bench_counts));
		}
		return run_cases(bench_cases, 1, CASE_TIMEOUT, slow);
	}
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, slow);
}
