// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-bench: the workloads make bench times on an unpatched and a
 * patched kernel, for the series' cost where it must cost nothing.
 *
 *  fault.{anon,shmem,hugetlb}
 *	userfaultfd fault resolution throughput, in the manner of the
 *	kernel's uffd-stress: FAULTERS threads read every page of an armed
 *	range once, a monitor thread resolves each fault with UFFDIO_COPY.
 *	Faults per second; the range is zapped between rounds.
 *  upkeep.{register,mprotect,fork,munmap}
 *	what the per-inode uffd-missing count adds to the operations that
 *	change it, on MISSING-armed shmem VMAs: UFFDIO_REGISTER +
 *	UFFDIO_UNREGISTER pairs; mprotect() splitting an armed VMA in three
 *	and merging it back; fork() of a process with ARMED_VMAS armed VMAs
 *	(the child's copies are counted, then disarmed: no UFFD_EVENT_FORK);
 *	munmap() of an armed VMA. Operations per second.
 *  upkeep.register_pair, upkeep.mprotect_pair
 *	the register pairs, or the mprotect() split + merge of an armed
 *	VMA, in MISSING and in MINOR mode, in interleaved blocks of
 *	PAIR_BLOCK operations: microseconds per operation of each, MISSING
 *	less MINOR (the count's share, only MISSING is counted) and MINOR
 *	over MISSING, within one boot.
 *
 * Each case runs -r ROUNDS (default 7) rounds and prints one "bench:"
 * line with the median rate and the spread of the rounds (least, most);
 * the host (TCG) decides absolute figures, only ratios between kernels
 * measured by the same run mean anything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "uffd-case-runner.h"

#define CASE_TIMEOUT	240
#define MAX_ROUNDS	64
#define FAULTERS	2
#define ARMED_VMAS	64
/* Operations per timed block of the MISSING/MINOR pairs. */
#define PAIR_BLOCK	5000

static struct test_opts opts = { .rounds = 7, .seconds = 200 };
static size_t page;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of @n sorted values. */
static double median(const double *v, int n)
{
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Print the median, least and most of @n rates; sorts them. */
static void report_rates(const char *key, double *rate, int n, const char *unit)
{
	qsort(rate, n, sizeof(*rate), cmp_double);
	diag("bench: %s %s=%.1f min=%.1f max=%.1f rounds=%d", key, unit, median(rate, n),
	     rate[0], rate[n - 1], n);
}

static int rounds(void)
{
	return opts.rounds < MAX_ROUNDS ? opts.rounds : MAX_ROUNDS;
}

/* ---- fault resolution throughput ---- */

struct fault_run {
	const struct mem_type *mt;
	char *area;
	size_t page;
	long npages;
	int uffd;
	char *src;
	atomic_int stop;
	atomic_long copies;
	int id;			/* next faulter's slice */
};

static void *faulter(void *arg)
{
	struct fault_run *f = arg;
	int id = __atomic_fetch_add(&f->id, 1, __ATOMIC_RELAXED);
	long per = f->npages / FAULTERS;

	/* One read per page; the empty asm keeps the compiler from dropping it */
	for (long p = id * per; p < (id + 1) * per; p++)
		asm volatile("" : : "r"(f->area[p * f->page]));
	return NULL;
}

static void *fault_monitor(void *arg)
{
	struct fault_run *f = arg;
	struct uffd_msg msg[32];

	while (!atomic_load(&f->stop)) {
		struct pollfd pfd = { .fd = f->uffd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(f->uffd, msg, sizeof(msg));
		for (int i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			unsigned long addr = msg[i].arg.pagefault.address & ~(f->page - 1);

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			/* EEXIST: a faulter raced the zap; nothing to do */
			if (!uffd_copy(f->uffd, (void *)addr, f->src, f->page))
				atomic_fetch_add(&f->copies, 1);
		}
	}
	return NULL;
}

static int case_fault(const struct named_case *c, const struct mem_type *mt)
{
	struct fault_run f = { .mt = mt, .page = mt->page_size() };
	double rate[MAX_ROUNDS];
	pthread_t mon, thr[FAULTERS];
	size_t len;
	char key[32];

	/* About 32 MiB: a few hundred ms per round for small pages under TCG */
	f.npages = f.page > 65536 ? 24 : 8192;
	len = f.npages * f.page;
	f.area = mt->map(len);
	if (!f.area) {
		diag("%s: cannot map %zu bytes: %s", mt->name, len, strerror(errno));
		return CASE_SKIP;
	}
	f.uffd = uffd_race_open_api(0, NULL);
	f.src = malloc(f.page);
	if (f.uffd < 0 || !f.src ||
	    uffd_register_mode(f.uffd, f.area, len, UFFDIO_REGISTER_MODE_MISSING)) {
		diag("arming %s: %s", mt->name, strerror(errno));
		return CASE_FAIL;
	}
	memset(f.src, 0x5a, f.page);
	pthread_create(&mon, NULL, fault_monitor, &f);
	/* Round -1 is not timed: page tables and the caches warm up in it. */
	for (int r = -1; r < rounds(); r++) {
		long before = atomic_load(&f.copies);
		double t;

		if (mt->zap(f.area, len)) {
			diag("zapping %s: %s", mt->name, strerror(errno));
			return CASE_FAIL;
		}
		f.id = 0;
		t = now();
		for (int i = 0; i < FAULTERS; i++)
			pthread_create(&thr[i], NULL, faulter, &f);
		for (int i = 0; i < FAULTERS; i++)
			pthread_join(thr[i], NULL);
		t = now() - t;
		/* The monitor counts a copy after the copy woke its faulter. */
		for (int ms = 0; ms < 2000 && atomic_load(&f.copies) - before < f.npages; ms++)
			usleep(1000);
		if (atomic_load(&f.copies) - before != f.npages) {
			diag("%s round %d: %ld faults resolved for %ld pages", mt->name, r,
			     atomic_load(&f.copies) - before, f.npages);
			return CASE_FAIL;
		}
		if (r >= 0)
			rate[r] = f.npages / t;
	}
	atomic_store(&f.stop, 1);
	pthread_join(mon, NULL);
	snprintf(key, sizeof(key), "fault.%s", mt->name);
	report_rates(key, rate, rounds(), "faults_per_s");
	close(f.uffd);
	mt->unmap(f.area, len);
	return CASE_PASS;
}

/* ---- counter upkeep ---- */

static int uffd_unregister(int uffd, void *addr, size_t len)
{
	struct uffdio_range range = { .start = (unsigned long)addr, .len = len };

	return ioctl(uffd, UFFDIO_UNREGISTER, &range);
}

/* A memfd of @pages pages and a userfaultfd; -1 with a diagnostic. */
static int shmem_and_uffd(long pages, int *memfd, int *uffd)
{
	*memfd = memfd_create("uffd-bench", 0);
	*uffd = uffd_race_open_api(0, NULL);
	if (*memfd < 0 || *uffd < 0 || ftruncate(*memfd, pages * page)) {
		diag("memfd or userfaultfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Map ARMED_VMAS one-page VMAs of @memfd at every other file page (so no
 * two can merge) and arm each MISSING; 0, or -1 with a diagnostic.
 */
static int map_armed(int memfd, int uffd, char **vma)
{
	for (int i = 0; i < ARMED_VMAS; i++) {
		vma[i] = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
			      2 * i * page);
		if (vma[i] == MAP_FAILED ||
		    uffd_register_mode(uffd, vma[i], page, UFFDIO_REGISTER_MODE_MISSING)) {
			diag("arming VMA %d: %s", i, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* @ops operations per round, timed by @op: seconds for @ops, or < 0. */
static int upkeep(const char *key, int ops, double (*op)(int ops, int memfd, int uffd))
{
	double rate[MAX_ROUNDS];
	int memfd, uffd;

	if (shmem_and_uffd(2 * ARMED_VMAS, &memfd, &uffd))
		return CASE_FAIL;
	/* A first, untimed round: page tables, slab caches, the page cache. */
	if (op(ops / 4, memfd, uffd) < 0)
		return CASE_FAIL;
	for (int r = 0; r < rounds(); r++) {
		double t = op(ops, memfd, uffd);

		if (t < 0)
			return CASE_FAIL;
		rate[r] = ops / t;
	}
	report_rates(key, rate, rounds(), "ops_per_s");
	return CASE_PASS;
}

/* @ops UFFDIO_REGISTER + UNREGISTER pairs of one shmem range in @mode. */
static double register_pairs(int ops, int memfd, int uffd, __u64 mode)
{
	size_t len = 2 * ARMED_VMAS * page;
	char *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	double t;

	if (area == MAP_FAILED)
		return -1;
	t = now();
	for (int i = 0; i < ops; i++) {
		if (uffd_register_mode(uffd, area, len, mode) ||
		    uffd_unregister(uffd, area, len)) {
			diag("register/unregister: %s", strerror(errno));
			return -1;
		}
	}
	t = now() - t;
	munmap(area, len);
	return t;
}

static double op_register(int ops, int memfd, int uffd)
{
	return register_pairs(ops, memfd, uffd, UFFDIO_REGISTER_MODE_MISSING);
}

/* @ops mprotect() split + merge cycles of one shmem VMA armed in @mode. */
static double mprotect_splits(int ops, int memfd, int uffd, __u64 mode)
{
	size_t len = 2 * ARMED_VMAS * page;
	char *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	char *mid = area + len / 4;
	double t;

	if (area == MAP_FAILED || uffd_register_mode(uffd, area, len, mode))
		return -1;
	t = now();
	for (int i = 0; i < ops; i++) {
		/* Split in three, then merge back into one. */
		if (mprotect(mid, len / 4, PROT_READ) ||
		    mprotect(mid, len / 4, PROT_READ | PROT_WRITE)) {
			diag("mprotect: %s", strerror(errno));
			return -1;
		}
	}
	t = now() - t;
	munmap(area, len);
	return t;
}

static double op_mprotect(int ops, int memfd, int uffd)
{
	return mprotect_splits(ops, memfd, uffd, UFFDIO_REGISTER_MODE_MISSING);
}

static double op_fork(int ops, int memfd, int uffd)
{
	char *vma[ARMED_VMAS];
	double t;

	if (map_armed(memfd, uffd, vma))
		return -1;
	t = now();
	for (int i = 0; i < ops; i++) {
		pid_t pid = fork();
		int status;

		if (pid < 0) {
			diag("fork: %s", strerror(errno));
			return -1;
		}
		if (!pid)
			_exit(0);
		waitpid(pid, &status, 0);
	}
	t = now() - t;
	for (int i = 0; i < ARMED_VMAS; i++)
		munmap(vma[i], page);
	return t;
}

/* Only the munmap() calls are timed; @ops is rounded to ARMED_VMAS. */
static double op_munmap(int ops, int memfd, int uffd)
{
	char *vma[ARMED_VMAS];
	double t = 0;

	for (int done = 0; done < ops; done += ARMED_VMAS) {
		double t0;

		if (map_armed(memfd, uffd, vma))
			return -1;
		t0 = now();
		for (int i = 0; i < ARMED_VMAS; i++)
			munmap(vma[i], page);
		t += now() - t0;
	}
	return t;
}

static int case_register(const struct named_case *c, const struct mem_type *unused)
{
	return upkeep("upkeep.register", 4000, op_register);
}

typedef double (*mode_op)(int ops, int memfd, int uffd, __u64 mode);

/*
 * The same operations in MISSING and in MINOR mode, in blocks of
 * PAIR_BLOCK that alternate in one process: only MISSING arms the range,
 * so only it updates the uffd-missing count. MINOR runs the same path but
 * for what both kernels do for MISSING alone (unregister's wakeup of
 * MISSING waiters, an empty waitqueue here): compare the kernels' MISSING
 * - MINOR, not MISSING - MINOR alone.
 * Boots of one kernel differ in speed by up to 1.9x under TCG (make
 * bench's A/A), more than the count could cost; MISSING less MINOR, or
 * MINOR over MISSING, within one boot, is not moved by that. A block must
 * span many ticks of the guest's clock, which on mainline's tinyconfig
 * guest is refined-jiffies (a tick is 4 ms at HZ=250): a block of 5000
 * register pairs takes about 50 ms under TCG, an mprotect() block more.
 */
static int mode_pair(const char *key, mode_op op)
{
	double miss[MAX_ROUNDS], minor[MAX_ROUNDS], extra[MAX_ROUNDS], rel[MAX_ROUNDS];
	__u64 modes[2] = { UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_MINOR };
	char extra_fields[80];
	/* Three times the rounds: cheap, and the difference is small. */
	int memfd, uffd, n = 3 * rounds() < MAX_ROUNDS ? 3 * rounds() : MAX_ROUNDS;

	memfd = memfd_create("uffd-bench", 0);
	uffd = uffd_race_open_api(UFFD_FEATURE_MINOR_SHMEM, NULL);
	if (uffd < 0) {
		diag("no MINOR mode on shmem: %s", strerror(errno));
		return CASE_SKIP;
	}
	if (memfd < 0 || ftruncate(memfd, 2 * ARMED_VMAS * page)) {
		diag("memfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	/* Warm both paths up before the first timed block. */
	if (op(PAIR_BLOCK / 4, memfd, uffd, modes[0]) < 0 ||
	    op(PAIR_BLOCK / 4, memfd, uffd, modes[1]) < 0)
		return CASE_FAIL;
	for (int r = 0; r < n; r++) {
		double t[2];

		/* Alternate which goes first: a drift within a round hits both. */
		for (int i = 0; i < 2; i++) {
			int m = (r + i) % 2;

			t[m] = op(PAIR_BLOCK, memfd, uffd, modes[m]);
			if (t[m] < 0)
				return CASE_FAIL;
		}
		miss[r] = 1e6 * t[0] / PAIR_BLOCK;
		minor[r] = 1e6 * t[1] / PAIR_BLOCK;
		extra[r] = miss[r] - minor[r];
		rel[r] = minor[r] / miss[r];
	}
	qsort(miss, n, sizeof(double), cmp_double);
	qsort(minor, n, sizeof(double), cmp_double);
	qsort(extra, n, sizeof(double), cmp_double);
	qsort(rel, n, sizeof(double), cmp_double);
	snprintf(extra_fields, sizeof(extra_fields), "extra_us=%.3f extra_min=%.3f extra_max=%.3f",
		 median(extra, n), extra[0], extra[n - 1]);
	diag("bench: %s missing_us=%.3f minor_us=%.3f %s rel=%.4f rounds=%d", key,
	     median(miss, n), median(minor, n), extra_fields, median(rel, n), n);
	close(uffd);
	close(memfd);
	return CASE_PASS;
}

static int case_register_pair(const struct named_case *c, const struct mem_type *unused)
{
	return mode_pair("upkeep.register_pair", register_pairs);
}

static int case_mprotect_pair(const struct named_case *c, const struct mem_type *unused)
{
	return mode_pair("upkeep.mprotect_pair", mprotect_splits);
}

static int case_mprotect(const struct named_case *c, const struct mem_type *unused)
{
	return upkeep("upkeep.mprotect", 4000, op_mprotect);
}

static int case_fork(const struct named_case *c, const struct mem_type *unused)
{
	return upkeep("upkeep.fork", 200, op_fork);
}

static int case_munmap(const struct named_case *c, const struct mem_type *unused)
{
	return upkeep("upkeep.munmap", 4096, op_munmap);
}

static const struct named_case cases[] = {
	{ .name = "fault", .fn = case_fault, .mem = MEM_ALL },
	{ .name = "upkeep.register", .fn = case_register },
	{ .name = "upkeep.register_pair", .fn = case_register_pair },
	{ .name = "upkeep.mprotect_pair", .fn = case_mprotect_pair },
	{ .name = "upkeep.mprotect", .fn = case_mprotect },
	{ .name = "upkeep.fork", .fn = case_fork },
	{ .name = "upkeep.munmap", .fn = case_munmap },
};

int main(int argc, char **argv)
{
	parse_test_opts(argc, argv, &opts);
	page = sysconf(_SC_PAGESIZE);
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, &opts, NULL);
}
