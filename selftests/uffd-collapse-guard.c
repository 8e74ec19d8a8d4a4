// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-collapse-guard: MADV_COLLAPSE must decide whether a shmem range with
 * holes is armed with userfaultfd MISSING without walking the mappings of
 * the file with interrupts off: the cost of such a walk grows with the
 * number of mappings of the file, and any task can add mappings.
 *
 * A 2 MiB memfd with holes at its odd pages is mapped N times (N = 1, 64,
 * 1024, 4096) and collapsed through one of the mappings (the file
 * is punched and refilled between rounds). A kprobe event on the iterator
 * of the file's VMA tree (mapping_rmap_tree_iter_next() on 7.3,
 * vma_interval_tree_iter_next() on 6.1) records every VMA the collapsing
 * task visits, with the probed context's flags register; three trace
 * instances count them: all visits, those made with interrupts off and
 * those made with interrupts on. What is judged is the count with
 * interrupts off, the work done there, not a duration: the host's load
 * cannot change it (under TCG the irqsoff tracer measures host wall time,
 * and a busy host lengthens any section it measures). The other counts
 * are the controls, and the case SKIPs, saying so, when they fail: off and
 * on must add up to all in every round, and retracting the page tables
 * of a collapsed range walks every mapping of the file with interrupts
 * on, so fewer than N visits in all mean the probe misses the walk.
 *
 *  flat        no mapping armed (the uffd-armed count is zero): the visits
 *              made with interrupts off at the largest N must not exceed
 *              those at N = 1 by more than FLAT_SLACK. 7.3 walks the VMAs
 *              of the range with interrupts off and fails it;
 *  flat_armed  the same with one more mapping, of the file's third 2 MiB,
 *              armed: the count is not zero, the collapse must look at the
 *              VMAs of the range (with interrupts on) and still collapse.
 *
 * Needs tracefs with kprobe events (CONFIG_KPROBE_EVENTS) and x86's flags
 * register in fetch arguments; skips without them. -r ROUNDS (default 2)
 * collapses per N, each judged by its largest count.
 *
 * With -b it judges nothing: it measures the unarmed file at
 * each N of -n (default 1,16,256,1024,4096) with the irqsoff tracer and
 * prints one "bench:" line per N with the median interrupts-off time and
 * the least wall time (-r 9 gives a steady figure).
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
#include <sys/stat.h>
#include <sys/wait.h>

#include "uffd-case-runner.h"

#define CASE_TIMEOUT	240
#define FLAT_SLACK	8
#define MAX_ROUNDS	32
/* x86's interrupt flag (0x200) in the flags register the probe fetches */
#define PROBE_GROUP	"uffd_guard"
#define PROBE_EVENT	PROBE_GROUP "/visit"

/*
 * Three trace instances count the visits of the collapsing task: all of
 * them, those with interrupts off, and those with interrupts on. A round
 * whose off and on counts do not add up to all has a filter or an
 * instance that does not count, and is not judged.
 */
enum { INST_ALL, INST_IRQSOFF, INST_IRQSON, NR_INST };
static const char *const instances[NR_INST] = {
	"instances/uffd_guard_all", "instances/uffd_guard_irqsoff",
	"instances/uffd_guard_irqson",
};

/* The filter of each, after "common_pid == PID" */
static const char *const inst_filter[NR_INST] = {
	"", " && !(flags & 0x200)", " && (flags & 0x200)",
};

static struct test_opts opts = { .rounds = 2, .seconds = 200 };
/*
 * The counts are exact, so N need not be large to show a walk: 4096
 * mappings visited against 1. A kernel declared slow (the debug
 * flavour's KASAN) stops at 1024, where making the mappings takes a
 * minute, not ten.
 */
static const int counts[] = { 1, 64, 1024, 4096 };
#define NR_COUNTS	((int)ARRAY_SIZE(counts))
#define NR_COUNTS_SLOW	3
static int nr_counts = NR_COUNTS;
static const char *tracing;
static size_t page;

/* Write @val to tracefs file @file opened with @flags (O_TRUNC or O_APPEND). */
static int tracing_put(const char *file, const char *val, int flags)
{
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", tracing, file);
	fd = open(path, O_WRONLY | flags);
	if (fd < 0)
		return -1;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		ret = -1;
	close(fd);
	return ret;
}

static int tracing_write(const char *file, const char *val)
{
	return tracing_put(file, val, O_TRUNC);
}

/* Append a line to kprobe_events, whose writes add or remove one probe each. */
static int kprobe_events_add(const char *def)
{
	return tracing_put("kprobe_events", def, O_APPEND);
}

static int tracing_read(const char *file, char *buf, size_t len)
{
	char path[256];
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

static const char *find_tracefs(void)
{
	static const char *const dirs[] = { "/sys/kernel/tracing",
					    "/sys/kernel/debug/tracing" };

	for (int i = 0; i < 2 && !tracing; i++) {
		char probe[128];

		snprintf(probe, sizeof(probe), "%s/tracing_on", dirs[i]);
		if (access(probe, R_OK) && i == 0)
			mount("tracefs", dirs[0], "tracefs", 0, NULL);
		if (!access(probe, R_OK))
			tracing = dirs[i];
	}
	return tracing ? NULL : "no tracefs";
}

/* Select the irqsoff tracer (-b); a reason when it cannot. */
static const char *setup_irqsoff(void)
{
	char buf[4096];

	if (find_tracefs())
		return "no tracefs";
	if (tracing_read("available_tracers", buf, sizeof(buf)) || !strstr(buf, "irqsoff"))
		return "no irqsoff tracer (CONFIG_IRQSOFF_TRACER)";
	if (tracing_write("current_tracer", "irqsoff") || tracing_write("tracing_on", "1"))
		return "cannot select the irqsoff tracer";
	return NULL;
}

/* Remove what setup_probe() made, also after a run that was killed. */
static void remove_probe(void)
{
	char path[256];

	if (!tracing)
		return;
	for (int i = 0; i < NR_INST; i++) {
		snprintf(path, sizeof(path), "%s/events/%s/enable", instances[i], PROBE_EVENT);
		tracing_write(path, "0");
		snprintf(path, sizeof(path), "%s/%s", tracing, instances[i]);
		rmdir(path);
	}
	kprobe_events_add("-:" PROBE_EVENT "\n");
}

/*
 * A kprobe event on the VMA tree iterator that fetches the flags register,
 * enabled in trace instances of their own; a reason when it cannot be.
 */
static const char *setup_probe(const char **probed)
{
	static const char *const iters[] = { "mapping_rmap_tree_iter_next",
					     "vma_interval_tree_iter_next" };
	char def[160], path[256];

	if (find_tracefs())
		return "no tracefs";
	snprintf(path, sizeof(path), "%s/kprobe_events", tracing);
	if (access(path, W_OK))
		return "no kprobe events (CONFIG_KPROBE_EVENTS)";
	remove_probe();
	*probed = NULL;
	for (int i = 0; i < (int)ARRAY_SIZE(iters) && !*probed; i++) {
		snprintf(def, sizeof(def), "p:%s %s flags=%%flags:x64\n", PROBE_EVENT, iters[i]);
		if (!kprobe_events_add(def))
			*probed = iters[i];
	}
	if (!*probed)
		return "cannot probe the VMA tree iterator with the flags register";
	for (int i = 0; i < NR_INST; i++) {
		snprintf(path, sizeof(path), "%s/%s", tracing, instances[i]);
		/* Fresh: remove_probe() removed any left by a killed run. */
		if (mkdir(path, 0755))
			return "cannot make a trace instance";
		/* Room for every visit at the largest N, twice over. */
		snprintf(path, sizeof(path), "%s/buffer_size_kb", instances[i]);
		if (tracing_write(path, "2048"))
			return "cannot size a trace instance";
		snprintf(path, sizeof(path), "%s/events/%s/enable", instances[i], PROBE_EVENT);
		if (tracing_write(path, "1"))
			return "cannot enable the probe in a trace instance";
	}
	return NULL;
}

/* Count the visits of task @pid only, in each instance by its filter. */
static int probe_filter(pid_t pid)
{
	char path[256], f[128];

	for (int i = 0; i < NR_INST; i++) {
		snprintf(path, sizeof(path), "%s/events/%s/filter", instances[i], PROBE_EVENT);
		snprintf(f, sizeof(f), "common_pid == %d%s", pid, inst_filter[i]);
		if (tracing_write(path, f))
			return -1;
	}
	return 0;
}

/* Empty the instances' buffers. */
static int probe_clear(void)
{
	char path[256];

	for (int i = 0; i < NR_INST; i++) {
		snprintf(path, sizeof(path), "%s/trace", instances[i]);
		if (tracing_write(path, ""))
			return -1;
	}
	return 0;
}

/*
 * The events an instance holds, summed over its CPUs' buffers; -1 when
 * unreadable, -2 when a buffer overflowed (events were lost).
 */
static long probe_count(const char *inst)
{
	char path[256], buf[1024];
	long sum = 0, v;
	int cpu;

	for (cpu = 0; ; cpu++) {
		snprintf(path, sizeof(path), "%s/per_cpu/cpu%d/stats", inst, cpu);
		if (tracing_read(path, buf, sizeof(buf)))
			break;
		if (!text_number(buf, "entries:", &v))
			return -1;
		sum += v;
		if (text_number(buf, "overrun:", &v) && v)
			return -2;
	}
	return cpu ? sum : -1;
}

/*
 * The longest interrupts-off section since the last reset, in us (-b),
 * and whether it started and ended in collapse_file().
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

/* The largest of @n readings; sorts them. */
static long largest(long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	return v[n - 1];
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

/*
 * The visits of the last call in @c, by instance: NULL, or why they
 * cannot be judged.
 */
static const char *probe_counts(long *c)
{
	for (int i = 0; i < NR_INST; i++) {
		c[i] = probe_count(instances[i]);
		if (c[i] == -2)
			return "a trace buffer overflowed: visits were lost";
		if (c[i] < 0)
			return "cannot read a trace instance's counts";
	}
	if (c[INST_IRQSOFF] + c[INST_IRQSON] != c[INST_ALL])
		return "visits with interrupts off and on do not add up to all visits";
	return NULL;
}

/* measure()'s results besides 0: a failure, and no verdict. */
#define MEASURE_FAIL	(-1)
#define MEASURE_VOID	1

/* What measure() found at one N. */
struct reading {
	long irqsoff;	/* the largest count of visits with interrupts off */
	long visits;	/* the least count of all visits (the control) */
	long irqsoff_us; /* -b: median of the longest sections */
	long wall_us;	/* least wall time of MADV_COLLAPSE */
};

/*
 * Collapse through one of @n mappings, opts.rounds times, counting or
 * timing: 0, MEASURE_FAIL or MEASURE_VOID (the tracer cannot tell).
 */
static int measure(int n, bool armed, struct reading *out)
{
	long irq[MAX_ROUNDS], all[MAX_ROUNDS], wall[MAX_ROUNDS];
	int rounds = opts.rounds < MAX_ROUNDS ? opts.rounds : MAX_ROUNDS;
	int void_rounds = 0;
	int fd = memfd_create("uffd-collapse-guard", 0), uffd = -1;
	char *area, *next;
	unsigned char vec[512];
	char seen[24 * MAX_ROUNDS];

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
		uffd = uffd_race_open_api(0, NULL);
		if (next == MAP_FAILED || uffd < 0 ||
		    uffd_register_mode(uffd, next, HPAGE, UFFDIO_REGISTER_MODE_MISSING)) {
			diag("arming the third 2 MiB: %s", strerror(errno));
			return -1;
		}
	}
	if (!bench_mode && probe_filter(getpid())) {
		diag("cannot set the probe's filters");
		return -1;
	}
	seen[0] = '\0';
	for (int r = 0; r < rounds; r++) {
		bool in_collapse = false;
		const char *why = NULL;
		long c[NR_INST];
		double t;
		int ret, err;

		if (refill(fd, area))
			return -1;
		if (bench_mode ? tracing_write("tracing_max_latency", "0") : probe_clear()) {
			diag("cannot reset the tracer");
			return -1;
		}
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
		err = errno;
		wall[r] = (now() - t) * 1e6;
		if (bench_mode) {
			irq[r] = max_irqsoff(&in_collapse);
			all[r] = 0;
		} else {
			why = probe_counts(c);
			irq[r] = c[INST_IRQSOFF];
			all[r] = c[INST_ALL];
		}
		if (ret) {
			diag("N=%d: MADV_COLLAPSE: %s", n, strerror(err));
			return -1;
		}
		if (mincore(area, HPAGE, vec) || !(vec[1] & 1)) {
			diag("N=%d: MADV_COLLAPSE returned 0 but the holes were not filled", n);
			return -1;
		}
		if (why) {
			diag("N=%d: %s: no verdict", n, why);
			return MEASURE_VOID;
		}
		if (irq[r] < 0) {
			diag("N=%d: reading the irqsoff tracer failed", n);
			return -1;
		}
		if (bench_mode)
			/* '*': the longest section was elsewhere, the collapse's shorter */
			snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), " %ld%s",
				 irq[r], in_collapse ? "" : "*");
		else
			snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), " %ld/%ld",
				 irq[r], all[r]);
	}
	diag("N=%d %s per round:%s%s", n, bench_mode ? "irqs-off us" :
	     "visits with irqs off/all", seen, void_rounds ? " (void rounds redone)" : "");
	if (bench_mode) {
		out->irqsoff_us = median(irq, rounds);
	} else {
		out->irqsoff = largest(irq, rounds);
		out->visits = least(all, rounds);
	}
	out->wall_us = least(wall, rounds);
	if (uffd >= 0)
		close(uffd);
	/* The mappings go with the child that ran the case. */
	return 0;
}

/*
 * measure() in a child, so that its mappings are gone when it returns;
 * returns what measure() did.
 */
static int measure_in_child(int n, bool armed, struct reading *out)
{
	struct reading v;
	int pfd[2], status;
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
		int ret = measure(n, armed, &v);

		if (!ret && write(pfd[1], &v, sizeof(v)) != sizeof(v))
			ret = MEASURE_FAIL;
		fflush(stdout);
		_exit(ret == MEASURE_VOID ? 2 : ret ? 1 : 0);
	}
	close(pfd[1]);
	got = read(pfd[0], &v, sizeof(v));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		return MEASURE_VOID;
	if (got != sizeof(v) || !WIFEXITED(status) || WEXITSTATUS(status))
		return MEASURE_FAIL;
	*out = v;
	case_progress();
	return 0;
}

static int flat(bool armed)
{
	const int last = nr_counts - 1;
	struct reading rd[NR_COUNTS];
	const char *probed = NULL;
	const char *why = setup_probe(&probed);
	int ret = CASE_PASS;

	if (why) {
		remove_probe();
		return case_skip("%s", why);
	}
	diag("%-6s %-16s %-12s %-16s  (%s, probing %s, %d rounds)", "N", "irqs-off visits",
	     "all visits", "MADV_COLLAPSE us", armed ? "one other VMA armed" : "no VMA armed",
	     probed, opts.rounds);
	for (int i = 0; i < nr_counts; i++) {
		int m = measure_in_child(counts[i], armed, &rd[i]);

		if (m) {
			remove_probe();
			return m == MEASURE_VOID ? CASE_SKIP : CASE_FAIL;
		}
		diag("%-6d %-16ld %-12ld %-16ld", counts[i], rd[i].irqsoff, rd[i].visits,
		     rd[i].wall_us);
	}
	remove_probe();
	/*
	 * The control: collapsing retracts the page tables of every mapping
	 * of the range, walking them all with interrupts on. A probe that saw
	 * fewer visits than mappings does not see the walk: no verdict.
	 */
	for (int i = 0; i < nr_counts; i++)
		if (rd[i].visits < counts[i])
			return case_skip("%d mappings, %ld visits seen: %s", counts[i],
					 rd[i].visits, "the probe misses the walk, no verdict");
	if (rd[last].irqsoff > rd[0].irqsoff + FLAT_SLACK) {
		diag("visits with interrupts off grow with N: %ld with %d mappings, %ld with 1",
		     rd[last].irqsoff, counts[last], rd[0].irqsoff);
		ret = CASE_FAIL;
	} else {
		diag("no growth: %ld VMAs visited with interrupts off with %d mappings, %ld with 1",
		     rd[last].irqsoff, counts[last], rd[0].irqsoff);
	}
	return ret;
}

/* @c->data: whether a mapping of the file elsewhere is armed. */
static int case_flat(const struct named_case *c, const struct mem_type *unused)
{
	return flat(*(const bool *)c->data);
}

static const bool unarmed, armed = true;

static const struct named_case cases[] = {
	{ .name = "guard.flat", .fn = case_flat, .data = &unarmed },
	{ .name = "guard.flat_armed", .fn = case_flat, .data = &armed },
};

static int case_bench(const struct named_case *c, const struct mem_type *unused)
{
	const char *why = setup_irqsoff();
	struct reading rd;

	if (why)
		return case_skip("%s", why);
	for (int i = 0; i < nr_bench_sizes; i++) {
		if (measure_in_child(bench_sizes[i], false, &rd))
			return CASE_FAIL;
		diag("bench: guard.n%d irqsoff_us=%ld collapse_us=%ld rounds=%d",
		     bench_sizes[i], rd.irqsoff_us, rd.wall_us, opts.rounds);
	}
	tracing_write("current_tracer", "nop");
	return CASE_PASS;
}

static const struct named_case bench_cases[] = {
	{ .name = "bench.guard", .fn = case_bench },
};

/* At the test's exit: a case killed by its watchdog cannot clean up. */
static void remove_leftovers(void)
{
	if (!find_tracefs())
		remove_probe();
}

int main(int argc, char **argv)
{
	parse_test_opts(argc, argv, &opts);
	page = sysconf(_SC_PAGESIZE);
	if (bench_mode) {
		static const int bench_counts[] = { 1, 16, 256, 1024, 4096 };

		if (!nr_bench_sizes) {
			nr_bench_sizes = ARRAY_SIZE(bench_counts);
			memcpy(bench_sizes, bench_counts, sizeof(bench_counts));
		}
		return run_cases(bench_cases, 1, CASE_TIMEOUT, &opts, NULL);
	}
	if (timeout_scale() > 1) {
		nr_counts = NR_COUNTS_SLOW;
		diag("UFFD_TIMEOUT_SCALE=%d: a slow kernel, up to %d mappings",
		     timeout_scale(), counts[nr_counts - 1]);
	}
	atexit(remove_leftovers);
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, &opts, NULL);
}
