// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-recheck: a page the monitor has installed must never fault as
 * MISSING (or MINOR) again while UFFDIO_WRITEPROTECT changes its pte.
 *
 * Changing the protection of a present pte clears it for a moment under
 * the page table lock (ptep_modify_prot_start/commit). A fault that reads
 * the pte without that lock in that moment sees none; unless the fault
 * path rechecks under the lock, it reports a MISSING (MINOR) fault for a
 * page that is there. 6.1 hugetlb rechecks since commit 2ea7ff1e39cb
 * ("mm/hugetlb: fix race condition of uffd missing/minor handling");
 * with that recheck reverted, this test sees the race.
 *
 * Each case arms a few pages MISSING|WP (MINOR|WP for shmem) and runs:
 *  - faulting threads that touch random pages, always reading a page
 *    before they first write it, then writing it over and over;
 *  - a monitor that resolves MISSING with UFFDIO_COPY (MINOR with
 *    UFFDIO_CONTINUE) and WP faults by write-unprotecting the page;
 *  - a toggler that write-protects and unprotects the whole range in a
 *    loop, without waking anyone.
 * Since every thread has read a page (so it was installed) before it
 * writes it, a MISSING or MINOR fault that carries the WRITE flag is one
 * raised for an installed page: a wrong event the monitor cannot resolve. A
 * read fault for an installed page is not counted: it may have read the
 * pte before UFFDIO_COPY installed it and been queued after, which the
 * userfaultfd API allows. Every read also checks the page's contents.
 *
 * Variants: hugetlb_private (MISSING|WP: the mapping the bug hit; shared
 * hugetlb faults serialise against the protection change on the vma lock),
 * hugetlb_shared (MISSING|WP), shmem_minor (MINOR|WP: its fault path
 * reads the pte locklessly and raises MINOR without a recheck). A case
 * runs for 20 s, or $UFFD_SECONDS.
 *
 * shmem_minor runs only with UFFD_ALL_TYPES=1: it finds a live race on
 * both trees (shmem_get_folio_gfp() raises MINOR from the pte that the
 * fault read without the page table lock), every run on mainline within a
 * few seconds but only in some 20 s runs on 6.1, too seldom for a verdict.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "uffd-race-common.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

#define NPAGES		2	/* few pages: each pte is toggled often */
#define FAULTERS	1
#define TOGGLE_JITTER_US	200
#define MAX_REPORTS	3	/* wrong events printed before giving up */

#define SECONDS		20	/* per case */

enum kind { HUGETLB_PRIVATE, HUGETLB_SHARED, SHMEM_MINOR };

struct state {
	char *area;
	size_t page;
	int uffd;
	char *src;		/* one page of the pattern, for UFFDIO_COPY */
	double t0;
	atomic_int stop;	/* faulters and toggler stop */
	atomic_int stop_monitor;
	atomic_int wrong;	/* wrong events seen */
	atomic_int bad_data;
	atomic_long installs, wp_faults, early_faults, toggles, writes;
	atomic_int installed[NPAGES];
	double t_installed[NPAGES];
	unsigned int rand;
};

FIXTURE(wp_recheck) {
	struct state st;
};

struct wp_case {
	enum kind kind;
	__u64 features;
	__u64 mode;
	const char *opt_in_why;	/* runs only with UFFD_ALL_TYPES=1, because */
};

FIXTURE_VARIANT(wp_recheck) {
	struct wp_case c;
};

FIXTURE_VARIANT_ADD(wp_recheck, hugetlb_private) {
	.c = { HUGETLB_PRIVATE,
	       UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS,
	       UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP },
};

FIXTURE_VARIANT_ADD(wp_recheck, hugetlb_shared) {
	.c = { HUGETLB_SHARED,
	       UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS,
	       UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP },
};

/* A live race on both trees, too rare on 6.1 for a verdict. */
FIXTURE_VARIANT_ADD(wp_recheck, shmem_minor) {
	.c = { SHMEM_MINOR, UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MINOR_SHMEM,
	       UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP,
	       "shmem raises MINOR from an unlocked pte read" },
};

/* The case running (one per process: the harness forks each). */
static const struct wp_case *cur;

static unsigned char pattern(int i)
{
	return (unsigned char)(0xa0 + i);
}

static int wp_range(struct state *st, char *addr, size_t len, bool wp, bool wake)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (unsigned long)addr, .len = len },
		/* Protecting never wakes; the API refuses DONTWAKE with it. */
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP :
			wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	return ioctl(st->uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

static void wake_page(struct state *st, char *addr)
{
	struct uffdio_range r = { .start = (unsigned long)addr, .len = st->page };

	ioctl(st->uffd, UFFDIO_WAKE, &r);
}

/* Install page @i: UFFDIO_COPY for MISSING, UFFDIO_CONTINUE for MINOR. */
static int install(struct state *st, int i)
{
	char *addr = st->area + i * st->page;
	int r;

	if (cur->kind == SHMEM_MINOR) {
		struct uffdio_continue c = {
			.range = { .start = (unsigned long)addr, .len = st->page },
		};

		r = ioctl(st->uffd, UFFDIO_CONTINUE, &c) ? -errno : 0;
	} else {
		memset(st->src, pattern(i), st->page);
		r = uffd_copy(st->uffd, addr, st->src, st->page);
	}
	if (r == -EEXIST) {
		/* Someone else's fault installed it: just wake this one. */
		wake_page(st, addr);
		r = 0;
	}
	if (!r && !atomic_exchange(&st->installed[i], 1)) {
		st->t_installed[i] = now() - st->t0;
		st->installs++;
	}
	return r;
}

#define WRONG_FAULT	"page %d: %s fault on a write at +%.3f s, but the page was installed at +%.3f s and the writer had read it: expected a WP fault or none, got %s (flags %#llx)"

static void *monitor(void *arg)
{
	struct state *st = arg;
	struct uffd_msg msg;

	pin_to_cpu(0);
	while (!st->stop_monitor) {
		unsigned long addr;
		__u64 flags;
		int n, i;

		n = uffd_race_read_msg(st->uffd, &msg, 50);
		if (n < 0) {
			diag("reading the uffd: %s", strerror(errno));
			atomic_fetch_add(&st->wrong, 1);
			break;
		}
		if (!n)
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			diag("unexpected event %u", msg.event);
			atomic_fetch_add(&st->wrong, 1);
			continue;
		}
		addr = msg.arg.pagefault.address;
		flags = msg.arg.pagefault.flags;
		i = (addr - (unsigned long)st->area) / st->page;
		if (i < 0 || i >= NPAGES) {
			diag("fault at %#lx, outside the range", addr);
			atomic_fetch_add(&st->wrong, 1);
			continue;
		}
		/* The toggler's next unprotect wakes the writer. */
		if (flags & UFFD_PAGEFAULT_FLAG_WP) {
			st->wp_faults++;
			continue;
		}
		if ((flags & UFFD_PAGEFAULT_FLAG_WRITE) &&
		    atomic_fetch_add(&st->wrong, 1) < MAX_REPORTS)
			diag(WRONG_FAULT, i, cur->kind == SHMEM_MINOR ? "MINOR" : "MISSING",
			     now() - st->t0, st->t_installed[i],
			     cur->kind == SHMEM_MINOR ? "MINOR" : "MISSING",
			     (unsigned long long)flags);
		if (!atomic_load(&st->installed[i]))
			st->early_faults++;
		n = install(st, i);
		if (n) {
			diag("page %d: installing: %s", i, strerror(-n));
			atomic_fetch_add(&st->wrong, 1);
			wake_page(st, st->area + i * st->page);
		}
	}
	return NULL;
}

static void *toggler(void *arg)
{
	struct state *st = arg;
	size_t len = NPAGES * st->page;

	unsigned int s = st->rand;

	pin_to_cpu(1);
	while (!st->stop) {
		double until;
		int r;

		/*
		 * The unprotect wakes the writer, whose retried fault reads
		 * the pte a little later; wait a random while before the
		 * next protect so that its change of the pte sometimes lands
		 * right on that read.
		 */
		r = wp_range(st, st->area, len, true, false);
		if (!r)
			r = wp_range(st, st->area, len, false, true);
		until = now() + (rnd(&s) % TOGGLE_JITTER_US) / 1e6;
		while (now() < until)
			;
		if (r) {
			diag("UFFDIO_WRITEPROTECT of the range: %s", strerror(-r));
			atomic_fetch_add(&st->wrong, 1);
			break;
		}
		st->toggles++;
	}
	return NULL;
}

struct faulter {
	struct state *st;
	int id;
};

static void *faulter(void *arg)
{
	struct faulter *f = arg;
	struct state *st = f->st;
	unsigned int s = st->rand ^ (f->id * 0x9e3779b9);
	bool seen[NPAGES] = { false };

	/*
	 * The faulter shares CPU 0 with the monitor, which runs while the
	 * faulter waits for it; the toggler has CPU 1 to itself, so its
	 * protection changes overlap the faults as often as possible.
	 */
	pin_to_cpu(0);
	while (!st->stop) {
		int i = rnd(&s) % NPAGES;
		unsigned char *p =
			(unsigned char *)st->area + i * st->page + 64 * (f->id + 1);

		if (!seen[i]) {
			unsigned char got = *(st->area + i * st->page);

			if (got != pattern(i)) {
				if (atomic_fetch_add(&st->bad_data, 1) < MAX_REPORTS)
					diag("page %d: read %#x, expected %#x", i, got, pattern(i));
			}
			seen[i] = true;
		}
		for (int k = 0; k < 64; k++)
			__atomic_store_n(p, (unsigned char)k, __ATOMIC_RELAXED);
		st->writes++;
	}
	return NULL;
}

static char *map_case(struct state *st)
{
	size_t len = NPAGES * st->page;
	int fd, flags = cur->kind == SHMEM_MINOR ? 0 : MFD_HUGETLB;
	char *p, *alias;

	fd = memfd_create("uffd-wp-recheck", flags);
	if (fd < 0 || ftruncate(fd, len))
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 cur->kind == HUGETLB_PRIVATE ? MAP_PRIVATE : MAP_SHARED, fd, 0);
	if (p != MAP_FAILED && cur->kind == SHMEM_MINOR) {
		/* MINOR faults need the pages in the page cache already. */
		alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (alias == MAP_FAILED) {
			munmap(p, len);
			p = MAP_FAILED;
		} else {
			for (int i = 0; i < NPAGES; i++)
				memset(alias + i * st->page, pattern(i), st->page);
			munmap(alias, len);
		}
	}
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

#define RUN_SUMMARY	"%.1f s: %ld pages installed (%ld faults before that), %ld WP faults, %ld protect/unprotect cycles, %ld write bursts, %d wrong events, %d bad reads"

/* Set up the race; NULL, or why the case cannot run here. */
static const char *setup_race(struct state *st)
{
	static char why[200];
	__u64 ioctls;

	if (cur->opt_in_why && !env_int("UFFD_ALL_TYPES", 0)) {
		snprintf(why, sizeof(why), "opt-in (UFFD_ALL_TYPES=1): %s", cur->opt_in_why);
		return why;
	}
	st->rand = random_start();
	st->page = cur->kind == SHMEM_MINOR ? (size_t)sysconf(_SC_PAGESIZE) :
		   mem_types[2].page_size();
	if (!st->page)
		return "no huge page size: hugetlb not available";
	st->uffd = uffd_race_open_api(cur->features, &ioctls);
	if (st->uffd < 0) {
		snprintf(why, sizeof(why), "UFFDIO_API with features %#llx: %s",
			 (unsigned long long)cur->features, strerror(errno));
		return why;
	}
	st->area = map_case(st);
	st->src = malloc(st->page);
	if (!st->area || !st->src) {
		snprintf(why, sizeof(why), "mapping %d pages of %zu bytes: %s%s", NPAGES,
			 st->page, strerror(errno), cur->kind == SHMEM_MINOR ? "" :
			 " (hugetlb pool too small?)");
		return why;
	}
	return NULL;
}

FIXTURE_SETUP(wp_recheck)
{
	cur = &variant->c;
}

FIXTURE_TEARDOWN(wp_recheck)
{
}

TEST_F_TIMEOUT(wp_recheck, race, SECONDS * 4 + 30)
{
	struct state *st = &self->st;
	struct faulter f[FAULTERS];
	pthread_t thr[FAULTERS], mon, tog;
	int seconds = env_int("UFFD_SECONDS", SECONDS);
	const char *why = setup_race(st);

	/* Here, not in the setup: 6.1's harness runs the test after a SKIP there. */
	if (why)
		SKIP(return, "%s", why);
	if (uffd_register_mode(st->uffd, st->area, NPAGES * st->page, cur->mode)) {
		if (errno == EINVAL)
			SKIP(return, "UFFDIO_REGISTER mode %#llx: not supported",
			     (unsigned long long)cur->mode);
		ASSERT_EQ(0, errno) TH_LOG("UFFDIO_REGISTER: %s", strerror(errno));
	}

	st->t0 = now();
	pthread_create(&mon, NULL, monitor, st);
	pthread_create(&tog, NULL, toggler, st);
	for (int i = 0; i < FAULTERS; i++) {
		f[i].st = st;
		f[i].id = i;
		pthread_create(&thr[i], NULL, faulter, &f[i]);
	}
	/* A kernel with the race fails at the first wrong event. */
	while (now() - st->t0 < seconds && !st->wrong && !st->bad_data)
		usleep(20000);
	st->stop = 1;
	pthread_join(tog, NULL);
	/* Release writers waiting on a WP fault the toggler caused. */
	wp_range(st, st->area, NPAGES * st->page, false, true);
	for (int i = 0; i < FAULTERS; i++)
		pthread_join(thr[i], NULL);
	st->stop_monitor = 1;
	pthread_join(mon, NULL);

	diag(RUN_SUMMARY, now() - st->t0, (long)st->installs,
	     (long)st->early_faults, (long)st->wp_faults, (long)st->toggles,
	     (long)st->writes, (int)st->wrong, (int)st->bad_data);
	ASSERT_EQ(0, st->wrong);
	ASSERT_EQ(0, st->bad_data);
	/* No race was run: say so instead of passing. */
	EXPECT_NE(0, st->wp_faults) TH_LOG("no WP fault happened");
	EXPECT_NE(0, st->toggles) TH_LOG("no protect/unprotect cycle happened");
}

TEST_HARNESS_MAIN
