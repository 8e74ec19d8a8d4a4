// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-collapse: collapsing shmem into a huge page must not fill the holes
 * of a range some VMA has armed with userfaultfd MISSING, and whether a
 * file counts as armed must follow every VMA lifecycle operation.
 *
 * A 2 MiB memfd is mapped 2 MiB-aligned, its even pages written and its
 * odd pages left as holes, and the mapping is armed MISSING. Then:
 *
 *  self         the arming process calls MADV_COLLAPSE on its own mapping;
 *  other        a second process maps the same file, without userfaultfd,
 *               and calls MADV_COLLAPSE on its mapping;
 *  partial      only the first half of the file is mapped and armed; the
 *               same process collapses through a second, unarmed mapping
 *               of the whole file;
 *  khugepaged   the daemon, with shmem_enabled=always and a 100 ms scan
 *               sleep, next to an unarmed control file that it must
 *               collapse (so that "no collapse" means the guard, not an
 *               idle daemon);
 *  register_race another process keeps calling MADV_COLLAPSE on the file
 *               while the range is registered at a random moment: the
 *               holes there when UFFDIO_REGISTER returned must stay holes;
 *  register_race_armed  the same while the file's next 2 MiB, mapped
 *               right after the range, are already armed with the same
 *               userfaultfd: the collapse has to look at the VMAs of the
 *               range instead of a zero count, and the registration merges
 *               the range into that armed VMA instead of arming a new one;
 *  armed_elsewhere  only the file's next 2 MiB are armed, from the page
 *               right after the range: the first 2 MiB, which no armed VMA
 *               maps, must collapse (mainline's guard is per range; 6.1's,
 *               a per-inode count, refuses by design);
 *  unregistered after UFFDIO_UNREGISTER, MADV_COLLAPSE must succeed (the
 *               guard must not outlive the registration);
 *  closed, unmapped  the same after close(uffd) / munmap of the armed VMA;
 *  minor_only, wp_only  a MINOR-only or WP-only registration must not
 *               block the collapse of the file;
 *  count.OP     the file's armed state after split and merge, partial
 *               munmap or UNREGISTER, mremap and fork with and without
 *               their events, exit, a MAP_PRIVATE mapping (see below).
 *
 * Invariant for the armed cases: whatever MADV_COLLAPSE returns (6.1 can
 * fill the file's holes and then fail to map the huge page), every hole
 * is still a hole (mincore), and reading one raises a MISSING fault whose
 * UFFDIO_COPY is what the read returns, never zeros. For the liveness
 * cases the file collapses: every hole becomes resident.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "uffd-race-common.h"

#define CASE_TIMEOUT	60
/*
 * khugepaged is judged on its own clock, its full scans, not on the wall's:
 * a busy host slows the daemon down but does not stop it. The control must
 * collapse within CONTROL_SCANS full scans, and the armed range is judged
 * once ARMED_SCANS more have ended after that (one more than a whole scan
 * that began after the control's collapse needs: a scan can skip an mm
 * whose mmap_lock it could not take). KHUGEPAGED_WAIT bounds the time
 * between two full scans, for a daemon that stopped scanning; it stays
 * below CASE_TIMEOUT so that the case restores the knobs itself.
 */
#define CONTROL_SCANS	10
#define ARMED_SCANS	3
#define KHUGEPAGED_WAIT	40	/* s */

static struct test_opts opts = { .rounds = 30, .seconds = 15 };
static size_t page;
static int npages;

/*
 * A 2 MiB memfd with holes at its odd pages, mapped whole at @area; @armed
 * is the mapping registered with @uffd (the whole @area, or part of it).
 */
struct range {
	int fd;
	char *area;
	char *armed;
	int armed_pages;
	int uffd;
};

static unsigned char pattern(int i)
{
	return (unsigned char)(0x40 + i);
}

/* Map @fd's first 2 MiB at a 2 MiB-aligned address. */
static char *map_aligned(int fd)
{
	return map_hpage_aligned(fd, HPAGE, MAP_SHARED);
}

#define META	struct __test_metadata *_metadata

/* Create the file, write its even pages and leave the odd ones holes. */
static void make_file(META, struct range *r)
{
	memset(r, 0, sizeof(*r));
	r->uffd = -1;
	r->fd = memfd_create("uffd-collapse", 0);
	ASSERT_LE(0, r->fd) TH_LOG("memfd: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(r->fd, HPAGE));
	r->area = map_aligned(r->fd);
	ASSERT_NE(NULL, r->area) TH_LOG("mmap: %s", strerror(errno));
	for (int i = 0; i < npages; i += 2)
		memset(r->area + i * page, pattern(i), page);
	/*
	 * Ask for THP on the mapping, twice: 6.1 enters the mm into
	 * khugepaged only when the flags it checks already carry it.
	 */
	madvise(r->area, HPAGE, MADV_HUGEPAGE);
	madvise(r->area, HPAGE, MADV_HUGEPAGE);
}

/*
 * Register [addr, addr + len) of @r with its userfaultfd, a new one if
 * none: 0, -1 on error, 1 when the kernel lacks @features or @mode.
 */
static int try_arm(struct range *r, char *addr, size_t len, __u64 features, __u64 mode)
{
	if (r->uffd < 0)
		r->uffd = uffd_race_open_api(features, NULL);
	if (r->uffd < 0) {
		diag("UFFDIO_API features %#llx: %s", (unsigned long long)features,
		     strerror(errno));
		return 1;
	}
	if (uffd_register_mode(r->uffd, addr, len, mode)) {
		diag("UFFDIO_REGISTER mode %#llx: %s", (unsigned long long)mode, strerror(errno));
		return errno == EINVAL ? 1 : -1;
	}
	r->armed = addr;
	r->armed_pages = len / page;
	return 0;
}

/* Arm [addr, addr + len) MISSING. */
static void arm(META, struct range *r, char *addr, size_t len)
{
	ASSERT_EQ(0, try_arm(r, addr, len, 0, UFFDIO_REGISTER_MODE_MISSING));
}

/* The file with its whole mapping armed MISSING. */
static void setup(META, struct range *r)
{
	make_file(_metadata, r);
	arm(_metadata, r, r->area, HPAGE);
}

/* Page cache residency of the file's pages, through the whole mapping. */
static int resident(struct range *r, unsigned char *vec)
{
	if (mincore(r->area, HPAGE, vec)) {
		diag("mincore: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Holes of the file among its first @n pages that are resident now. */
static int filled_holes(struct range *r, int n, int *first)
{
	unsigned char vec[512];
	int filled = 0;

	if (resident(r, vec))
		return -1;
	*first = -1;
	for (int i = 1; i < n; i += 2)
		if (vec[i] & 1) {
			if (*first < 0)
				*first = i;
			filled++;
		}
	return filled;
}

#define LOST_FAULTS	"MADV_COLLAPSE from %s returned %d (%s) and filled %d of %d armed holes, first page %d: the uffd-armed range lost its MISSING faults"

/* 0 when every hole under the armed mapping is still a hole. */
static int check_holes(struct range *r, const char *who, int ret, int err)
{
	int first, filled = filled_holes(r, r->armed_pages, &first);

	if (filled < 0)
		return -1;
	if (filled) {
		diag(LOST_FAULTS, who, ret, ret ? strerror(err) : "success", filled,
		     r->armed_pages / 2, first);
		return -1;
	}
	diag("MADV_COLLAPSE from %s returned %d (%s); all %d armed holes still holes",
	     who, ret, ret ? strerror(err) : "success", r->armed_pages / 2);
	return 0;
}

struct reader {
	unsigned char *p;
	unsigned char got;
};

static void *read_hole(void *arg)
{
	struct reader *rd = arg;

	rd->got = __atomic_load_n(rd->p, __ATOMIC_RELAXED);
	return NULL;
}

/* Reading a hole must fault to the monitor and return what it copies. */
static int check_fault(struct range *r, int hole)
{
	struct reader rd = { .p = (unsigned char *)r->armed + hole * page + 7 };
	unsigned char *src = malloc(page);
	struct uffd_msg msg;
	pthread_t thr;
	int n;

	if (!src)
		return -1;
	pthread_create(&thr, NULL, read_hole, &rd);
	n = uffd_race_read_msg(r->uffd, &msg, 3000);
	if (n != 1 || msg.event != UFFD_EVENT_PAGEFAULT) {
		pthread_join(thr, NULL);
		diag("page %d: reading the hole raised no MISSING fault within 3 s; "
		     "read %#x, expected the monitor's %#x", hole, rd.got, pattern(hole));
		return -1;
	}
	memset(src, pattern(hole), page);
	n = uffd_copy(r->uffd, r->armed + hole * page, src, page);
	if (n)
		diag("page %d: UFFDIO_COPY: %s", hole, strerror(-n));
	pthread_join(thr, NULL);
	free(src);
	if (rd.got != pattern(hole)) {
		diag("page %d: read %#x after the MISSING fault, expected %#x",
		     hole, rd.got, pattern(hole));
		return -1;
	}
	return 0;
}

/* The collapser of a register race's round, killed whatever the verdict. */
static pid_t collapser_pid;

static void stop_collapser(void)
{
	if (collapser_pid > 0) {
		kill(collapser_pid, SIGKILL);
		waitpid(collapser_pid, NULL, 0);
	}
	collapser_pid = 0;
}

FIXTURE(madv_collapse) {
	struct range r;
};

FIXTURE_SETUP(madv_collapse)
{
	page = sysconf(_SC_PAGESIZE);
	npages = HPAGE / page;
	test_opts_from_env(&opts);
	make_file(_metadata, &self->r);
}

FIXTURE_TEARDOWN(madv_collapse)
{
	stop_collapser();
}

/* The register races run for opts.seconds, the rest take a moment. */
#define MADV_TIMEOUT	(15 + CASE_TIMEOUT)

TEST_F_TIMEOUT(madv_collapse, self, MADV_TIMEOUT)
{
	struct range *r = &self->r;
	int ret, err;

	arm(_metadata, r, r->area, HPAGE);
	/* Whatever it returns: a collapse may fill holes and still fail. */
	ret = madvise(r->area, HPAGE, MADV_COLLAPSE);
	err = errno;
	/* Both checks, so that a failure also says what reading a hole gives. */
	EXPECT_EQ(0, check_holes(r, "the arming process", ret, err));
	EXPECT_EQ(0, check_fault(r, 1));
}

/*
 * MADV_COLLAPSE of the file @fd from a new process that maps it without
 * userfaultfd: what it returned, and its errno in @err.
 */
static int collapse_elsewhere(int fd, int *err)
{
	int pipefd[2], out[2] = { -1, EPIPE };
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (!pid) {
		char *a = map_hpage_aligned(fd, HPAGE, MAP_SHARED);

		if (a) {
			/* Twice: 6.1 acts on the flags the first call found. */
			madvise(a, HPAGE, MADV_HUGEPAGE);
			madvise(a, HPAGE, MADV_HUGEPAGE);
			out[0] = madvise(a, HPAGE, MADV_COLLAPSE);
			out[1] = errno;
		}
		write(pipefd[1], out, sizeof(out));
		_exit(0);
	}
	if (read(pipefd[0], out, sizeof(out)) != sizeof(out))
		out[0] = -1, out[1] = EPIPE;
	close(pipefd[0]);
	close(pipefd[1]);
	waitpid(pid, NULL, 0);
	*err = out[1];
	return out[0];
}

TEST_F_TIMEOUT(madv_collapse, other, MADV_TIMEOUT)
{
	struct range *r = &self->r;
	int err, ret;

	arm(_metadata, r, r->area, HPAGE);
	ret = collapse_elsewhere(r->fd, &err);
	EXPECT_EQ(0, check_holes(r, "another process", ret, err));
	EXPECT_EQ(0, check_fault(r, 3));
}

TEST_F_TIMEOUT(madv_collapse, partial, MADV_TIMEOUT)
{
	struct range *r = &self->r;
	char *half;
	int ret, err;

	/* A second VMA, over the first half only, is the armed one. */
	half = mmap(NULL, HPAGE / 2, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ASSERT_NE(MAP_FAILED, half) TH_LOG("mmap: %s", strerror(errno));
	arm(_metadata, r, half, HPAGE / 2);
	ret = madvise(r->area, HPAGE, MADV_COLLAPSE);
	err = errno;
	EXPECT_EQ(0, check_holes(r, "an unarmed mapping of the whole file", ret, err));
	EXPECT_EQ(0, check_fault(r, 5));
}

/* khugepaged's knobs: saved, set for the case, restored. */
#define KHUGEPAGED "/sys/kernel/mm/transparent_hugepage/khugepaged/"
static const char *const thp_knobs[] = {
	"/sys/kernel/mm/transparent_hugepage/shmem_enabled",
	KHUGEPAGED "scan_sleep_millisecs",
	KHUGEPAGED "alloc_sleep_millisecs",
};

static int knob_rw(const char *path, char *val, size_t len, bool write_it)
{
	int fd = open(path, write_it ? O_WRONLY : O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write_it ? write(fd, val, strlen(val)) : read(fd, val, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	if (!write_it) {
		char *b, *e;

		val[n] = 0;
		/* "always [never] ..." lists the choices: keep the chosen one. */
		b = strchr(val, '[');
		e = b ? strchr(b, ']') : NULL;
		if (e) {
			*e = 0;
			memmove(val, b + 1, strlen(b + 1) + 1);
		}
		val[strcspn(val, "\n")] = 0;
	}
	return 0;
}

#define NO_CONTROL	"khugepaged did not collapse the unarmed control file in %ld full scans (%.0f s): cannot judge the armed one"

/* khugepaged's count of full scans, or -1. */
static long full_scans(void)
{
	char v[32];

	if (knob_rw(KHUGEPAGED "full_scans", v, sizeof(v), false))
		return -1;
	return atol(v);
}

FIXTURE(khugepaged) {
};

FIXTURE_SETUP(khugepaged)
{
	page = sysconf(_SC_PAGESIZE);
	npages = HPAGE / page;
}

FIXTURE_TEARDOWN(khugepaged)
{
}

/* Every full scan the case waits for may take KHUGEPAGED_WAIT. */
TEST_F_TIMEOUT(khugepaged, armed, (CONTROL_SCANS + ARMED_SCANS) * KHUGEPAGED_WAIT + CASE_TIMEOUT)
{
	char saved[3][64], set[3][16] = { "always", "100", "100" };
	char scans[2][32] = { "?", "?" }, thp_enabled[64] = "?";
	struct range r, control;
	double t0, t_scan, t_control = 0;
	long scans0, at_control = -1, at = -1;
	int first, filled = 0, cfilled = 0;
	bool passed = false;

	for (int i = 0; i < 3; i++)
		if (knob_rw(thp_knobs[i], saved[i], sizeof(saved[i]), false))
			SKIP(return, "%s: %s", thp_knobs[i], strerror(errno));
	/* Files first: with shmem_enabled=always a write would fault in a THP. */
	setup(_metadata, &r);
	make_file(_metadata, &control);
	knob_rw(KHUGEPAGED "full_scans", scans[0], sizeof(scans[0]), false);
	knob_rw("/sys/kernel/mm/transparent_hugepage/enabled", thp_enabled,
		sizeof(thp_enabled), false);
	for (int i = 0; i < 3; i++)
		if (knob_rw(thp_knobs[i], set[i], 0, true))
			diag("%s <- %s: %s", thp_knobs[i], set[i], strerror(errno));
	/*
	 * Enter the mm into khugepaged now that shmem THP is on: mainline
	 * looks only when the flags change, 6.1 only when they were set.
	 */
	for (int i = 0; i < 3; i++) {
		int advice = i ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;

		madvise(r.area, HPAGE, advice);
		madvise(control.area, HPAGE, advice);
	}

	t0 = now();
	t_scan = t0;
	scans0 = full_scans();
	at = scans0;
	while (scans0 >= 0 && now() - t_scan < KHUGEPAGED_WAIT) {
		int cfirst;
		long scans = full_scans();

		cfilled = filled_holes(&control, npages, &cfirst);
		filled = filled_holes(&r, npages, &first);
		if (filled || cfilled < 0)
			break;
		if (scans != at) {
			at = scans;
			t_scan = now();
		}
		if (cfilled == npages / 2 && !t_control) {
			t_control = now() - t0;
			at_control = scans;
		}
		/*
		 * The armed range is in the same mm as the control: a full
		 * scan that began after the control's collapse covered it.
		 */
		if (t_control && scans >= at_control + ARMED_SCANS)
			break;
		if (!t_control && scans >= scans0 + CONTROL_SCANS)
			break;
		usleep(100000);
	}
	for (int i = 0; i < 3; i++)
		knob_rw(thp_knobs[i], saved[i], 0, true);
	knob_rw(KHUGEPAGED "full_scans", scans[1], sizeof(scans[1]), false);
	diag("khugepaged full scans %s -> %s, THP %s, shmem %s", scans[0], scans[1],
	     thp_enabled, set[0]);

	if (filled > 0)
		diag("khugepaged filled %d of %d armed holes after %.1f s, first page %d",
		     filled, npages / 2, now() - t0, first);
	else if (scans0 < 0)
		diag("cannot read %sfull_scans", KHUGEPAGED);
	else if (filled < 0 || cfilled < 0)
		diag("cannot read which pages of the files are resident (mincore)");
	else if (!t_control)
		diag(NO_CONTROL, at - scans0, now() - t0);
	else if (at < at_control + ARMED_SCANS)
		/* Never a pass: the armed range may not have been looked at. */
		diag("khugepaged stopped: %ld full scans after the control's, none in %d s",
		     at - at_control, KHUGEPAGED_WAIT);
	else
		passed = true;
	if (t_control)
		diag("khugepaged collapsed the control file after %.1f s", t_control);
	EXPECT_TRUE(passed);
	EXPECT_EQ(0, check_fault(&r, 7));
}

/*
 * Grow @r's file to 4 MiB and arm a mapping of its second 2 MiB with a
 * userfaultfd of its own: the file's count is non-zero, its first 2 MiB
 * are mapped by no armed VMA.
 */
static int arm_next_hpage(META, struct range *r)
{
	char *next;
	int uffd;

	ASSERT_EQ(0, ftruncate(r->fd, 2 * HPAGE));
	next = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, HPAGE);
	ASSERT_NE(MAP_FAILED, next) TH_LOG("mmap: %s", strerror(errno));
	uffd = uffd_race_open_api(0, NULL);
	ASSERT_LE(0, uffd);
	ASSERT_EQ(0, uffd_register_mode(uffd, next, HPAGE, UFFDIO_REGISTER_MODE_MISSING))
		TH_LOG("arming the second 2 MiB: %s", strerror(errno));
	return uffd;
}

TEST_F_TIMEOUT(madv_collapse, armed_elsewhere, MADV_TIMEOUT)
{
	struct range *r = &self->r;
	int uffd = arm_next_hpage(_metadata, r), ret, err, first, filled;

	ret = madvise(r->area, HPAGE, MADV_COLLAPSE);
	err = errno;
	filled = filled_holes(r, npages, &first);
	diag("MADV_COLLAPSE of the unarmed first 2 MiB returned %d (%s), %d of %d holes resident",
	     ret, ret ? strerror(err) : "success", filled, npages / 2);
	close(uffd);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(npages / 2, filled);
}

/*
 * Grow @r's file to 4 MiB, map all of it in place of @r's mapping (the
 * first 2 MiB where they were, 2 MiB-aligned) and arm the second 2 MiB
 * with @r's userfaultfd: registering the first 2 MiB later merges them
 * into that armed VMA.
 */
static void arm_adjacent_next(META, struct range *r)
{
	char *area;

	ASSERT_EQ(0, ftruncate(r->fd, 2 * HPAGE));
	area = map_hpage_aligned(r->fd, 2 * HPAGE, MAP_SHARED);
	ASSERT_NE(NULL, area) TH_LOG("mmap of 4 MiB: %s", strerror(errno));
	munmap(r->area, HPAGE);
	r->area = area;
	madvise(area, 2 * HPAGE, MADV_HUGEPAGE);
	madvise(area, 2 * HPAGE, MADV_HUGEPAGE);
	r->uffd = uffd_race_open_api(0, NULL);
	ASSERT_LE(0, r->uffd);
	ASSERT_EQ(0, uffd_register_mode(r->uffd, area + HPAGE, HPAGE,
					UFFDIO_REGISTER_MODE_MISSING))
		TH_LOG("arming the second 2 MiB: %s", strerror(errno));
}

/* How many VMAs of /proc/self/maps overlap [@start, @end). */
static int vmas_in(char *start, char *end)
{
	unsigned long s, e;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 &&
		    s < (unsigned long)end && e > (unsigned long)start)
			n++;
	fclose(f);
	return n;
}

struct collapser {
	int fd;
	/* In shared memory: the collapser is a process. */
	atomic_int *stop;
	atomic_int *calls;	/* MADV_COLLAPSE calls started */
};

/* Collapse the file through another process's mapping until stopped. */
static pid_t start_collapser(struct collapser *c)
{
	pid_t pid = fork();

	if (!pid) {
		char *a = map_aligned(c->fd);

		if (!a)
			_exit(1);
		madvise(a, HPAGE, MADV_HUGEPAGE);
		while (!atomic_load(c->stop)) {
			atomic_fetch_add(c->calls, 1);
			madvise(a, HPAGE, MADV_COLLAPSE);
		}
		_exit(0);
	}
	return pid;
}

#define FILLED_LATER	"round %d: %d of the %d holes there when UFFDIO_REGISTER returned were filled by a later collapse, first page %d"
#define RACE_SUMMARY	"%d rounds, %d with holes left at registration (the others lost the race to a collapse before it), none filled afterwards"

/*
 * One round: register @r's range at a random point (within @window_us) of
 * a collapse by another process; the holes there when UFFDIO_REGISTER
 * returned must stay holes, and one of them must fault to the monitor.
 * Returns how many holes there were. @end: when the whole race ends.
 */
static int race_round(META, struct range *r, int round, bool armed_next, int window_us,
		      unsigned int *s, atomic_int *shared, double end)
{
	struct collapser c = { .fd = r->fd, .stop = &shared[0], .calls = &shared[1] };
	unsigned char before[512], after[512];
	int holes = 0, filled = 0, first = -1, start, pick;

	atomic_store(c.stop, 0);
	atomic_store(c.calls, 0);
	collapser_pid = start_collapser(&c);
	/* Register at a random point of the collapser's first call. */
	while (!atomic_load(c.calls) && now() < end)
		;
	usleep(rnd(s) % window_us);
	arm(_metadata, r, r->area, HPAGE);
	ASSERT_EQ(0, resident(r, before));
	if (armed_next)
		ASSERT_EQ(1, vmas_in(r->area, r->area + 2 * HPAGE))
			TH_LOG("the registration did not merge into the armed VMA");
	/* Let it try again after the registration, then judge. */
	start = atomic_load(c.calls);
	while (atomic_load(c.calls) < start + 3 && now() < end + 5)
		usleep(1000);
	atomic_store(c.stop, 1);
	waitpid(collapser_pid, NULL, 0);
	collapser_pid = 0;
	ASSERT_EQ(0, resident(r, after));
	for (int i = 1; i < npages; i += 2) {
		if (before[i] & 1)
			continue;
		holes++;
		if (after[i] & 1) {
			if (first < 0)
				first = i;
			filled++;
		}
	}
	if (filled)
		check_fault(r, first);
	ASSERT_EQ(0, filled) TH_LOG(FILLED_LATER, round, filled, holes, first);
	/* And a hole still faults to the monitor: try a random one. */
	if (!holes)
		return 0;
	pick = rnd(s) % holes;
	for (first = 1; first < npages; first += 2)
		if (!(before[first] & 1) && !pick--)
			break;
	ASSERT_EQ(0, check_fault(r, first));
	return holes;
}

static void register_race(META, struct range *cal, bool armed_next)
{
	atomic_int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned int s = opts.rand;
	double end = now() + opts.seconds, t;
	int judged = 0, round, window_us;

	ASSERT_NE(MAP_FAILED, shared);
	/* How long one collapse takes here: registrations land inside it. */
	t = now();
	madvise(cal->area, HPAGE, MADV_COLLAPSE);
	window_us = (now() - t) * 1e6 + 1;
	diag("one MADV_COLLAPSE takes %d us here", window_us);
	for (round = 1; round <= opts.rounds && now() < end; round++) {
		struct range r;

		make_file(_metadata, &r);
		if (armed_next)
			arm_adjacent_next(_metadata, &r);
		if (race_round(_metadata, &r, round, armed_next, window_us, &s, shared, end))
			judged++;
		close(r.uffd);
		munmap(r.area, armed_next ? 2 * HPAGE : HPAGE);
		close(r.fd);
	}
	diag(RACE_SUMMARY, round - 1, judged);
	ASSERT_LT(0, judged) TH_LOG("no round registered before the collapse: nothing was judged");
}

TEST_F_TIMEOUT(madv_collapse, register_race, MADV_TIMEOUT)
{
	register_race(_metadata, &self->r, false);
}

TEST_F_TIMEOUT(madv_collapse, register_race_armed, MADV_TIMEOUT)
{
	register_race(_metadata, &self->r, true);
}

/* Once armed and then disarmed by @how, the file must collapse again. */
enum disarm { UNREGISTER, CLOSE, UNMAP };

static void collapses_after(META, struct range *r, enum disarm how)
{
	static const char *const what[] = { "UFFDIO_UNREGISTER", "close(uffd)", "munmap" };
	struct uffdio_range range;
	int ret, first, filled;
	char *armed;

	/* A separate armed VMA, so that munmap leaves the collapsing one. */
	armed = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ASSERT_NE(MAP_FAILED, armed);
	arm(_metadata, r, armed, HPAGE);
	switch (how) {
	case UNREGISTER:
		range.start = (unsigned long)armed;
		range.len = HPAGE;
		ret = ioctl(r->uffd, UFFDIO_UNREGISTER, &range);
		break;
	case CLOSE:
		ret = close(r->uffd);
		break;
	default:
		ret = munmap(armed, HPAGE);
		break;
	}
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", what[how], strerror(errno));
	ASSERT_EQ(0, madvise(r->area, HPAGE, MADV_COLLAPSE))
		TH_LOG("MADV_COLLAPSE after %s: %s: the guard outlived the registration",
		       what[how], strerror(errno));
	filled = filled_holes(r, npages, &first);
	ASSERT_EQ(npages / 2, filled)
		TH_LOG("MADV_COLLAPSE after %s returned 0 but only %d of %d holes are resident",
		       what[how], filled, npages / 2);
}

TEST_F_TIMEOUT(madv_collapse, unregistered, MADV_TIMEOUT)
{
	collapses_after(_metadata, &self->r, UNREGISTER);
}

TEST_F_TIMEOUT(madv_collapse, closed, MADV_TIMEOUT)
{
	collapses_after(_metadata, &self->r, CLOSE);
}

TEST_F_TIMEOUT(madv_collapse, unmapped, MADV_TIMEOUT)
{
	collapses_after(_metadata, &self->r, UNMAP);
}

/*
 * A registration without MISSING promises no fault for a hole: the file
 * must collapse. 1 when the kernel lacks @features or @mode.
 */
static int collapses_with(META, struct range *r, __u64 features, __u64 mode,
			  const char *name)
{
	int ret = try_arm(r, r->area, HPAGE, features, mode), err, first, filled;

	if (ret > 0)
		return 1;
	ASSERT_EQ(0, ret);
	ret = madvise(r->area, HPAGE, MADV_COLLAPSE);
	err = errno;
	filled = filled_holes(r, npages, &first);
	diag("%s registration: MADV_COLLAPSE returned %d (%s), %d of %d holes resident",
	     name, ret, ret ? strerror(err) : "success", filled, npages / 2);
	ASSERT_EQ(npages / 2, filled);
	return 0;
}

TEST_F_TIMEOUT(madv_collapse, minor_only, MADV_TIMEOUT)
{
	if (collapses_with(_metadata, &self->r, UFFD_FEATURE_MINOR_SHMEM,
			   UFFDIO_REGISTER_MODE_MINOR, "MINOR-only"))
		SKIP(return, "MINOR registration of shmem: not supported");
}

TEST_F_TIMEOUT(madv_collapse, wp_only, MADV_TIMEOUT)
{
	if (collapses_with(_metadata, &self->r, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
			   UFFDIO_REGISTER_MODE_WP, "WP-only"))
		SKIP(return, "WP registration of shmem: not supported");
}

/*
 * count: whether the file counts as armed must follow every VMA lifecycle
 * operation. Each case drives the VMAs of a fresh file through one
 * operation and probes the state with collapse_elsewhere(): "armed", the
 * collapse leaves every hole a hole (a count too low shows here);
 * "unarmed", once no VMA is armed it fills them (a count too high, a
 * leak, shows here). Where it can, a case arms two VMAs or one VMA twice
 * over, takes one away and probes "armed", then the last and probes
 * "unarmed". Whether the count can underflow is the kernel's to report (a
 * WARN): check the kernel log after a run.
 */
static int count_fd = -1;	/* the case's file */

/* Holes of the file that are still holes. */
static int holes_left(void)
{
	int n = 0;

	for (int i = 1; i < npages; i += 2)
		if (lseek(count_fd, (off_t)(i * page), SEEK_HOLE) == (off_t)(i * page))
			n++;
	return n;
}

#define NO_LONGER_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and filled %d of %d holes: the file no longer counts as armed"
#define STILL_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and left %d of %d holes: the file still counts as armed"

/* The file must count as armed: a collapse leaves every hole a hole. */
static void expect_armed(META, const char *when)
{
	int err, ret = collapse_elsewhere(count_fd, &err), left = holes_left();
	const char *res = ret ? strerror(err) : "success";

	ASSERT_EQ(npages / 2, left)
		TH_LOG(NO_LONGER_ARMED, when, ret, res, npages / 2 - left, npages / 2);
	diag("%s: armed (MADV_COLLAPSE: %s, %d holes kept)", when, res, left);
}

/*
 * The file must count as unarmed: a collapse fills the holes. (What it
 * returns is not the point: 6.1 collapses the file from a process that
 * maps it and still returns EINVAL for that process's page tables.)
 */
static void expect_unarmed(META, const char *when)
{
	int err = 0, ret, left;

	/* A transient failure (a page locked or off the LRU) is retried. */
	for (int i = 0; i < 5; i++) {
		ret = collapse_elsewhere(count_fd, &err);
		left = holes_left();
		if (!left || !ret || err != EAGAIN)
			break;
		usleep(20000);
	}
	ASSERT_EQ(0, left)
		TH_LOG(STILL_ARMED, when, ret, ret ? strerror(err) : "success", left, npages / 2);
	diag("%s: unarmed (collapsed; MADV_COLLAPSE: %s)", when, ret ? strerror(err) : "success");
}

static int open_uffd(META, __u64 features)
{
	int uffd = uffd_race_open_api(features, NULL);

	ASSERT_LE(0, uffd)
		TH_LOG("UFFDIO_API features %#llx: %s", (unsigned long long)features,
		       strerror(errno));
	return uffd;
}

static void disarm(META, int uffd, char *addr, size_t len)
{
	struct uffdio_range r = { .start = (unsigned long)addr, .len = len };

	ASSERT_EQ(0, ioctl(uffd, UFFDIO_UNREGISTER, &r))
		TH_LOG("UFFDIO_UNREGISTER: %s", strerror(errno));
}

/* The file mapped and armed MISSING with @uffd; NULL on error. */
static char *armed_mapping(int uffd, int flags)
{
	char *a = map_hpage_aligned(count_fd, HPAGE, flags);

	if (!a || uffd_register_mode(uffd, a, HPAGE, UFFDIO_REGISTER_MODE_MISSING))
		return NULL;
	return a;
}

static char *arm_file(META, int uffd, int flags)
{
	char *a = armed_mapping(uffd, flags);

	ASSERT_NE(NULL, a) TH_LOG("mapping and arming the file: %s", strerror(errno));
	return a;
}

/* Each case: a new file whose even pages are written and odd pages holes. */
FIXTURE(count) {
};

FIXTURE_SETUP(count)
{
	char *a;

	page = sysconf(_SC_PAGESIZE);
	npages = HPAGE / page;
	count_fd = memfd_create("uffd-collapse", 0);
	ASSERT_LE(0, count_fd);
	ASSERT_EQ(0, ftruncate(count_fd, HPAGE));
	a = map_hpage_aligned(count_fd, HPAGE, MAP_SHARED);
	ASSERT_NE(NULL, a);
	for (int i = 0; i < npages; i += 2)
		memset(a + i * page, 0x40 + i % 64, page);
	munmap(a, HPAGE);
}

/* A child a case left waiting for SIGKILL, or 0. */
static pid_t forked;

FIXTURE_TEARDOWN(count)
{
	if (forked > 0) {
		kill(forked, SIGKILL);
		waitpid(forked, NULL, 0);
	}
}

/* Split one armed VMA in three, merge it back, then unregister it. */
TEST_F_TIMEOUT(count, split_merge, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0);
	char *a = arm_file(_metadata, uffd, MAP_SHARED);

	ASSERT_EQ(0, mprotect(a + HPAGE / 4, HPAGE / 4, PROT_READ));
	expect_armed(_metadata, "split in three by mprotect");
	ASSERT_EQ(0, mprotect(a + HPAGE / 4, HPAGE / 4, PROT_READ | PROT_WRITE));
	expect_armed(_metadata, "merged back by mprotect");
	disarm(_metadata, uffd, a, HPAGE);
	expect_unarmed(_metadata, "unregistered");
}

/* Unregister the middle of an armed VMA, then the two armed ends. */
TEST_F_TIMEOUT(count, unregister_part, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0);
	char *a = arm_file(_metadata, uffd, MAP_SHARED);

	disarm(_metadata, uffd, a + HPAGE / 4, HPAGE / 2);
	expect_armed(_metadata, "middle unregistered");
	disarm(_metadata, uffd, a, HPAGE / 4);
	expect_armed(_metadata, "first quarter unregistered");
	disarm(_metadata, uffd, a + 3 * HPAGE / 4, HPAGE / 4);
	expect_unarmed(_metadata, "last quarter unregistered");
}

/* munmap the middle of an armed VMA, then the two ends. */
TEST_F_TIMEOUT(count, unmap_parts, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0);
	char *a = arm_file(_metadata, uffd, MAP_SHARED);

	ASSERT_EQ(0, munmap(a + HPAGE / 4, HPAGE / 2));
	expect_armed(_metadata, "middle unmapped");
	ASSERT_EQ(0, munmap(a, HPAGE / 4));
	expect_armed(_metadata, "first quarter unmapped");
	ASSERT_EQ(0, munmap(a + 3 * HPAGE / 4, HPAGE / 4));
	expect_unarmed(_metadata, "last quarter unmapped");
}

/* A MAP_PRIVATE mapping watches the same page cache holes. */
TEST_F_TIMEOUT(count, private, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0);
	char *a = arm_file(_metadata, uffd, MAP_PRIVATE);

	expect_armed(_metadata, "private mapping armed");
	ASSERT_EQ(0, munmap(a, HPAGE));
	expect_unarmed(_metadata, "private mapping unmapped");
}

/* Two armed VMAs; @a moves without EVENT_REMAP and so loses its arming. */
TEST_F_TIMEOUT(count, mremap, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0);
	char *a = arm_file(_metadata, uffd, MAP_SHARED);
	char *b = arm_file(_metadata, uffd, MAP_SHARED);
	char *to = reserve_hpage_aligned(HPAGE);

	ASSERT_NE(NULL, to);
	ASSERT_NE(MAP_FAILED, mremap(a, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to))
		TH_LOG("mremap: %s", strerror(errno));
	expect_armed(_metadata, "one of two moved without EVENT_REMAP");
	disarm(_metadata, uffd, b, HPAGE);
	expect_unarmed(_metadata, "the other unregistered");
}

/* Read and acknowledge events on @uffd until told to stop. */
struct monitor {
	int uffd;
	atomic_bool stop;
	int child_uffd;		/* from a fork event, -1 if none */
	int events;
	pthread_t thread;
};

static void *monitor_fn(void *arg)
{
	struct monitor *m = arg;
	struct uffd_msg msg;

	while (!atomic_load(&m->stop)) {
		int r = uffd_race_read_msg(m->uffd, &msg, 50);

		if (r < 0)
			break;
		if (r == 0)
			continue;
		m->events++;
		if (msg.event == UFFD_EVENT_FORK)
			m->child_uffd = msg.arg.fork.ufd;
	}
	return NULL;
}

static int start_monitor(struct monitor *m, int uffd)
{
	memset(m, 0, sizeof(*m));
	m->uffd = uffd;
	m->child_uffd = -1;
	return pthread_create(&m->thread, NULL, monitor_fn, m);
}

static void stop_monitor(struct monitor *m)
{
	atomic_store(&m->stop, true);
	pthread_join(m->thread, NULL);
}

/* With EVENT_REMAP the moved VMA stays armed; move all of it, then half. */
TEST_F_TIMEOUT(count, mremap_event, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, UFFD_FEATURE_EVENT_REMAP);
	char *a = arm_file(_metadata, uffd, MAP_SHARED);
	char *to = reserve_hpage_aligned(2 * HPAGE);
	struct monitor m;

	ASSERT_NE(NULL, to);
	ASSERT_EQ(0, start_monitor(&m, uffd));
	ASSERT_NE(MAP_FAILED, mremap(a, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to));
	ASSERT_NE(MAP_FAILED, mremap(to + HPAGE / 2, HPAGE / 2, HPAGE / 2,
				     MREMAP_MAYMOVE | MREMAP_FIXED, to + HPAGE + HPAGE / 2));
	stop_monitor(&m);
	expect_armed(_metadata, "moved whole, then half, with EVENT_REMAP");
	disarm(_metadata, uffd, to, HPAGE / 2);
	expect_armed(_metadata, "first half unregistered");
	disarm(_metadata, uffd, to + HPAGE + HPAGE / 2, HPAGE / 2);
	expect_unarmed(_metadata, "moved half unregistered");
}

/* Fork a child that waits for a byte on @pipefd[0] (or EOF) and exits. */
static pid_t fork_waiting_child(int pipefd[2])
{
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (!pid) {
		char c;

		close(pipefd[1]);
		read(pipefd[0], &c, 1);
		_exit(0);
	}
	close(pipefd[0]);
	return pid;
}

static int end_child(pid_t pid, int pipefd[2])
{
	close(pipefd[1]);
	return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

/* Without EVENT_FORK the child's copy is not armed. */
TEST_F_TIMEOUT(count, fork, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, 0), pipefd[2];
	char *a = arm_file(_metadata, uffd, MAP_SHARED);
	pid_t pid = fork_waiting_child(pipefd);

	ASSERT_LE(0, pid);
	expect_armed(_metadata, "forked without EVENT_FORK");
	disarm(_metadata, uffd, a, HPAGE);
	expect_unarmed(_metadata, "parent unregistered, child alive");
	ASSERT_EQ(0, end_child(pid, pipefd));
}

/*
 * With EVENT_FORK the child's copy is armed by a new context. @how ends
 * it: the child exits, or the monitor closes the child's uffd.
 */
enum fork_end { CHILD_EXITS, CHILD_UFFD_CLOSED };

static void fork_event(META, enum fork_end how)
{
	int uffd = open_uffd(_metadata, UFFD_FEATURE_EVENT_FORK), pipefd[2];
	char *a = arm_file(_metadata, uffd, MAP_SHARED);
	struct monitor m;
	pid_t pid;

	ASSERT_EQ(0, start_monitor(&m, uffd));
	pid = fork_waiting_child(pipefd);
	ASSERT_LE(0, pid);
	stop_monitor(&m);
	ASSERT_LE(0, m.child_uffd) TH_LOG("no fork event (%d events)", m.events);
	disarm(_metadata, uffd, a, HPAGE);
	expect_armed(_metadata, "parent unregistered, child armed by EVENT_FORK");
	if (how == CHILD_EXITS) {
		ASSERT_EQ(0, end_child(pid, pipefd));
		expect_unarmed(_metadata, "child exited");
		close(m.child_uffd);
		return;
	}
	close(m.child_uffd);
	expect_unarmed(_metadata, "child's uffd closed, child alive");
	ASSERT_EQ(0, end_child(pid, pipefd));
}

TEST_F_TIMEOUT(count, fork_event_exit, CASE_TIMEOUT)
{
	fork_event(_metadata, CHILD_EXITS);
}

TEST_F_TIMEOUT(count, fork_event_close, CASE_TIMEOUT)
{
	fork_event(_metadata, CHILD_UFFD_CLOSED);
}

struct forker {
	pid_t pid;
};

/*
 * Fork sharing the file table (CLONE_FILES): a plain fork would copy the
 * uffd into the child's table before it blocks on the fork event, and
 * closing ours would not release the context. The child waits for SIGKILL.
 */
static void *forker_fn(void *arg)
{
	struct forker *f = arg;

	f->pid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, NULL, NULL, NULL, NULL);
	if (!f->pid) {
		for (;;)
			pause();
	}
	return NULL;
}

/*
 * The fork event is never read: the uffd is closed while fork waits for
 * it, and the child's copy must lose its arming with the dropped context.
 */
TEST_F_TIMEOUT(count, fork_event_dropped, CASE_TIMEOUT)
{
	int uffd = open_uffd(_metadata, UFFD_FEATURE_EVENT_FORK);
	struct forker f;
	pthread_t t;

	arm_file(_metadata, uffd, MAP_SHARED);
	ASSERT_EQ(0, pthread_create(&t, NULL, forker_fn, &f));
	usleep(200000);		/* let fork block on the unread event */
	close(uffd);
	pthread_join(t, NULL);
	ASSERT_LE(0, f.pid) TH_LOG("clone: %s", strerror(errno));
	/* The child must go whatever the verdict: a teardown of its own. */
	forked = f.pid;
	expect_unarmed(_metadata, "uffd closed with the fork event unread, child alive");
}

/* A process that armed a mapping exits without unregistering or closing. */
TEST_F_TIMEOUT(count, exit, CASE_TIMEOUT)
{
	int pipefd[2], uffd;
	char byte;

	ASSERT_EQ(0, pipe(pipefd));
	forked = fork();
	if (!forked) {
		uffd = uffd_race_open_api(0, NULL);
		if (uffd < 0 || !armed_mapping(uffd, MAP_SHARED) ||
		    !armed_mapping(uffd, MAP_SHARED))
			_exit(1);
		write(pipefd[1], "x", 1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	ASSERT_EQ(1, read(pipefd[0], &byte, 1)) TH_LOG("the child could not arm its mappings");
	expect_armed(_metadata, "another process armed two mappings");
	kill(forked, SIGKILL);
	waitpid(forked, NULL, 0);
	forked = 0;
	expect_unarmed(_metadata, "that process was killed");
}

TEST_HARNESS_MAIN
