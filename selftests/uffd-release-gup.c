// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-release-gup: closing a userfaultfd while GUP runs on its range must
 * not livelock.
 *
 * Each round maps a range, arms it MISSING and starts: GUP threads that
 * read or write random pages of it through /proc/self/mem (GUP that may
 * not drop mmap_lock) or process_vm_readv/writev (GUP that may), a monitor
 * resolving the faults that reach it with UFFDIO_COPY, and a zapper that
 * keeps dropping pages so that faults keep coming. After a random delay
 * the userfaultfd is closed. Its release takes mmap_lock for write, so a
 * GUP thread that spins on the released context while holding mmap_lock
 * for read blocks it forever, and with it every later taker of mmap_lock.
 * The round passes when, within PROBE_TIMEOUT seconds, close() has
 * returned and the closing thread could map and unmap a page (which takes
 * mmap_lock for write). A round that fails leaves threads that only exit
 * can free: the case child exits at once, before the hung-task detector
 * fires.
 *
 * Cases: {anon,shmem,hugetlb}.{proc_read,proc_write,vm_read,vm_write}.
 * hugetlb runs only with UFFD_ALL_TYPES=1: on 6.1 its GUP takes and drops
 * mmap_lock around each 4 KiB chunk (/proc/pid/mem) or copies outside it
 * (process_vm_*), so the window is narrow there; it hit once in about 130
 * rounds under TCG, too seldom for a verdict.
 *
 * A case is 150 rounds ($UFFD_ROUNDS), a count rather than a time, so that
 * a slow guest gets as many chances to hit the race as a fast one: on a
 * busy host a 5 s budget once ran out after 66 rounds without one, where
 * the race usually hits within 20. 20 s ($UFFD_SECONDS) caps it for
 * kernels that are slow by design (lock debugging and KASAN under
 * emulation: about 100 rounds).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "uffd-race-common.h"
#ifdef UFFD_BENCH
#include "uffd-case-runner.h"
#endif

#define GUP_THREADS	3
#define PROBE_TIMEOUT	5	/* s: mmap_lock must be free again by then */
#define CLOSE_DELAY_US	20000	/* the close comes within this of the start */
#define ROUNDS		150
#define SECONDS		20

enum gup_op { PROC_READ, PROC_WRITE, VM_READ, VM_WRITE };

static enum gup_op cur_op;
static unsigned int rand0;	/* where this run's random numbers start */

struct round {
	const struct mem_type *mt;
	char *area;
	size_t page;
	int npages;
	int uffd;
	int memfd;		/* /proc/self/mem */
	int nr_gup;		/* GUP threads */
	atomic_int stop;
	atomic_int quiet;	/* the monitor is to stop resolving and exit */
	atomic_int monitor_done;
	atomic_long gups;	/* GUP calls made */
	atomic_long copies;	/* faults the monitor resolved */
	pthread_t monitor;
	double t_close;		/* when close() was called */
	double t_closed;	/* when close() returned, 0 until then */
	double t_released;	/* when the monitor had exited, 0 until then */
	double t_free;		/* when mmap_lock was taken, 0 until then */
};

/*
 * Each GUP call spans an even page, kept present, and the odd page after
 * it, which the zapper keeps dropping: the call holds mmap_lock while it
 * copies the present page (milliseconds for a huge page under TCG) and
 * only then faults. That widens the window in which the release can flip
 * the context to released under a GUP that is about to fault.
 */
/*
 * With two CPUs or more, GUP threads run on CPU 0 and everything else on
 * CPU 1: a GUP that spins without rescheduling (6.1's hugetlb GUP loop
 * does) must not take every CPU from the thread that detects it.
 */

static void *gup_thread(void *arg)
{
	struct round *r = arg;
	unsigned int state = (unsigned int)(uintptr_t)&state ^ rand0;
	size_t len = 2 * r->page;
	char *buf = calloc(1, len);

	if (!buf)
		return NULL;
	pin_to_cpu(0);
	while (!atomic_load(&r->stop)) {
		char *addr = r->area + 2 * (rnd(&state) % (r->npages / 2)) * r->page;
		struct iovec local = { buf, len }, remote = { addr, len };

		/* Errors (EIO, EFAULT) are expected: only progress matters. */
		switch (cur_op) {
		case PROC_READ:
			pread(r->memfd, buf, len, (off_t)(uintptr_t)addr);
			break;
		case PROC_WRITE:
			pwrite(r->memfd, buf, len, (off_t)(uintptr_t)addr);
			break;
		case VM_READ:
			process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
			break;
		case VM_WRITE:
			process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
			break;
		}
		atomic_fetch_add(&r->gups, 1);
	}
	free(buf);
	return NULL;
}

/* Resolve what reaches the monitor until the userfaultfd goes away. */
static void *monitor_thread(void *arg)
{
	struct round *r = arg;
	char *src = malloc(r->page);

	if (!src)
		return NULL;
	memset(src, 0x5a, r->page);
	while (!atomic_load(&r->stop) && !atomic_load(&r->quiet)) {
		struct pollfd pfd = { .fd = r->uffd, .events = POLLIN };
		struct uffd_msg msg;
		unsigned long off;

		if (poll(&pfd, 1, 10) <= 0)
			continue;
		if (pfd.revents & (POLLNVAL | POLLERR | POLLHUP))
			break;
		if (read(r->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		off = (msg.arg.pagefault.address - (unsigned long)r->area) &
		      ~(r->page - 1);
		/* EEXIST, EAGAIN, ENOENT: the page came or went meanwhile. */
		if (!uffd_copy(r->uffd, r->area + off, src, r->page))
			atomic_fetch_add(&r->copies, 1);
	}
	free(src);
	atomic_store(&r->monitor_done, 1);
	return NULL;
}

static void *zap_thread(void *arg)
{
	struct round *r = arg;
	unsigned int state = rand0 ^ 0x9e3779b9;

	while (!atomic_load(&r->stop)) {
		int odd = 2 * (rnd(&state) % (r->npages / 2)) + 1;

		r->mt->zap(r->area + odd * r->page, r->page);
		usleep(200);
	}
	return NULL;
}

/*
 * Close the userfaultfd, wait for its release, then take mmap_lock for
 * write (mmap and munmap). The release runs in close() unless the monitor
 * holds the file at that moment; then it runs when the monitor's poll()
 * returns, and the monitor exits right after (POLLNVAL). Either way a GUP
 * thread spinning on the released context with mmap_lock held for read
 * keeps this thread from finishing.
 */
static void *close_thread(void *arg)
{
	struct round *r = arg;
	void *p;

	r->t_close = now();
	close(r->uffd);
	r->t_closed = now();
	pthread_join(r->monitor, NULL);
	r->t_released = now();
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		munmap(p, 4096);
	r->t_free = now();
	return NULL;
}

static int join_within(pthread_t t, double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	return pthread_timedjoin_np(t, NULL, &ts);
}

#define CLOSE_STUCK	"round %d: close(uffd) did not return within %d s: GUP livelock on the released userfaultfd (%ld GUP calls)"
#define RELEASE_STUCK	"round %d: close(uffd) returned after %.3f s, but the release (run by the monitor thread) did not finish within %d s: GUP livelock on the released userfaultfd (%ld GUP calls)"
#define LOCK_STUCK	"round %d: the release finished after %.3f s, but mmap_lock was still taken %d s after close(uffd) (%ld GUP calls)"

/*
 * Map and arm a range, populate its even pages, and start the monitor, the
 * zapper and @r->nr_gup GUP threads on it: 0, -1 on error, 1 when the
 * memory type is not available.
 */
static int start_round(struct round *r, pthread_t *gup, pthread_t *zap)
{
	const struct mem_type *mt = r->mt;
	char *src;
	int i;

	r->page = mt->page_size();
	r->npages = r->page > 65536 ? 6 : 64;
	/* Threads created below inherit this; GUP threads move to CPU 0. */
	pin_to_cpu(1);
	r->area = mt->map(r->npages * r->page);
	if (!r->area) {
		diag("%s: cannot map %zu bytes: %s", mt->name, r->npages * r->page,
		     strerror(errno));
		return 1;
	}
	r->memfd = open("/proc/self/mem", O_RDWR);
	r->uffd = uffd_race_open_api(0, NULL);
	if (r->memfd < 0 || r->uffd < 0) {
		diag("open /proc/self/mem or userfaultfd: %s", strerror(errno));
		return -1;
	}
	if (uffd_register_mode(r->uffd, r->area, r->npages * r->page,
			       UFFDIO_REGISTER_MODE_MISSING)) {
		diag("UFFDIO_REGISTER MISSING on %s: %s", mt->name, strerror(errno));
		return -1;
	}
	/* The even pages stay present: see gup_thread(). */
	src = malloc(r->page);
	if (!src)
		return -1;
	memset(src, 0xa5, r->page);
	for (i = 0; i < r->npages; i += 2) {
		int ret = uffd_copy(r->uffd, r->area + i * r->page, src, r->page);

		if (ret) {
			diag("UFFDIO_COPY to populate %s page %d: %s", mt->name, i,
			     strerror(-ret));
			return -1;
		}
	}
	free(src);
	pthread_create(&r->monitor, NULL, monitor_thread, r);
	pthread_create(zap, NULL, zap_thread, r);
	for (i = 0; i < r->nr_gup; i++)
		pthread_create(&gup[i], NULL, gup_thread, r);
	return 0;
}

/*
 * Close the userfaultfd in a thread of its own and wait up to
 * PROBE_TIMEOUT s for it to take mmap_lock for write; when it cannot, fail
 * the case at once, saying where it stopped.
 */
static void close_within(struct round *r, int round)
{
	pthread_t closer;

	pthread_create(&closer, NULL, close_thread, r);
	if (!join_within(closer, PROBE_TIMEOUT))
		return;
	/*
	 * No page fault from here on: it would wait for mmap_lock too.
	 * Exiting kills the spinning GUP threads, which frees the lock.
	 */
	if (!r->t_closed)
		case_fail_fast(CLOSE_STUCK, round, PROBE_TIMEOUT, atomic_load(&r->gups));
	if (!r->t_released)
		case_fail_fast(RELEASE_STUCK, round, r->t_closed - r->t_close, PROBE_TIMEOUT,
			       atomic_load(&r->gups));
	case_fail_fast(LOCK_STUCK, round, r->t_released - r->t_close, PROBE_TIMEOUT,
		       atomic_load(&r->gups));
}

/* Stop and join the round's threads, unmap its range. */
static void finish_round(struct round *r, int round, pthread_t *gup, pthread_t zap)
{
	atomic_store(&r->stop, 1);
	for (int i = 0; i < r->nr_gup; i++)
		if (join_within(gup[i], PROBE_TIMEOUT))
			case_fail_fast("round %d: a GUP thread is still stuck %d s after the round",
				       round, PROBE_TIMEOUT);
	if (join_within(zap, PROBE_TIMEOUT))
		case_fail_fast("round %d: the zapper is stuck", round);
	close(r->memfd);
	r->mt->unmap(r->area, r->npages * r->page);
}

/* One round: 0, or start_round()'s error. */
static int one_round(const struct mem_type *mt, int round, unsigned int *state)
{
	struct round r = { .mt = mt, .nr_gup = GUP_THREADS };
	pthread_t gup[GUP_THREADS], zap;
	double t_free;
	int ret = start_round(&r, gup, &zap);

	if (ret)
		return ret;
	usleep(1000 + rnd(state) % CLOSE_DELAY_US);
	close_within(&r, round);
	t_free = r.t_free - r.t_close;
	finish_round(&r, round, gup, zap);
	if (t_free > 1.0)
		diag("round %d: mmap_lock took %.3f s to come free", round, t_free);
	return 0;
}

/* Run rounds of @op on memory type @type until one fails or the budget ends. */
static void release_gup(struct __test_metadata *_metadata, int type, enum gup_op op)
{
	const struct mem_type *mt = &mem_types[type];
	int rounds = env_int("UFFD_ROUNDS", ROUNDS);
	double end = now() + env_int("UFFD_SECONDS", SECONDS);
	unsigned int state;
	int round, ret = 0;

	if (type == 2 && !env_int("UFFD_ALL_TYPES", 0))
		SKIP(return, "opt-in (UFFD_ALL_TYPES=1): the window is too narrow for a verdict");
	rand0 = random_start();
	cur_op = op;
	state = rand0 ^ (op << 8) ^ (unsigned int)type;
	/* Reporting a wedged mm must not fault: see case_fail_fast(). */
	case_prepare_fail_fast();
	for (round = 1; round <= rounds && now() < end && !ret; round++)
		ret = one_round(mt, round, &state);
	if (ret > 0)
		SKIP(return, "%s: cannot map the range", mt->name);
	ASSERT_EQ(0, ret);
	diag("%d rounds, no livelock", round - 1);
}

FIXTURE(release_gup) {
};

FIXTURE_VARIANT(release_gup) {
	int type;		/* index in mem_types[] */
};

FIXTURE_VARIANT_ADD(release_gup, anon) { .type = 0 };
FIXTURE_VARIANT_ADD(release_gup, shmem) { .type = 1 };
FIXTURE_VARIANT_ADD(release_gup, hugetlb) { .type = 2 };

FIXTURE_SETUP(release_gup)
{
}

FIXTURE_TEARDOWN(release_gup)
{
}

/* Each case: up to ROUNDS rounds in SECONDS, each PROBE_TIMEOUT at most. */
#define CASE_TIMEOUT	(SECONDS + 4 * PROBE_TIMEOUT + 30)

TEST_F_TIMEOUT(release_gup, proc_read, CASE_TIMEOUT)
{
	release_gup(_metadata, variant->type, PROC_READ);
}

TEST_F_TIMEOUT(release_gup, proc_write, CASE_TIMEOUT)
{
	release_gup(_metadata, variant->type, PROC_WRITE);
}

TEST_F_TIMEOUT(release_gup, vm_read, CASE_TIMEOUT)
{
	release_gup(_metadata, variant->type, VM_READ);
}

TEST_F_TIMEOUT(release_gup, vm_write, CASE_TIMEOUT)
{
	release_gup(_metadata, variant->type, VM_WRITE);
}

#ifdef UFFD_BENCH
/*
 * The benchmark, uffd-release-gup-bench: for each GUP thread count of -n
 * (default 0,1,4,16; 0 is the floor: no GUP at all), proc_read on anon,
 * the monitor stops resolving a random time into each round and the
 * userfaultfd is closed with faults still waiting in it (a monitor going
 * away mid-fault). It prints the p50/p99/max time from close() to
 * mmap_lock taken for write, and p50/p99 of close() alone. A round that
 * livelocks fails the case as above.
 */
#define MAX_GUP_THREADS	64
#define MAX_BENCH_ROUNDS 1000

static struct test_opts opts = { .rounds = 150, .seconds = SECONDS };

/*
 * One round of the measurement: the monitor resolves faults for a random time,
 * then stops, and the userfaultfd is closed with GUP faults waiting in it.
 * Returns the time from close() to mmap_lock taken, in us, or -1.
 */
static double bench_round(int nr_gup, int round, unsigned int *state, double *close_us)
{
	struct round r = { .mt = &mem_types[0], .nr_gup = nr_gup };
	pthread_t gup[MAX_GUP_THREADS], zap;

	if (start_round(&r, gup, &zap))
		return -1;
	usleep(1000 + rnd(state) % CLOSE_DELAY_US);
	atomic_store(&r.quiet, 1);
	while (!atomic_load(&r.monitor_done))
		usleep(100);
	/* The monitor holds no reference now: close() runs the release. */
	close_within(&r, round);
	finish_round(&r, round, gup, zap);
	*close_us = (r.t_closed - r.t_close) * 1e6;
	return (r.t_free - r.t_close) * 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int case_bench(const struct named_case *c, const struct mem_type *unused)
{
	static double us[MAX_BENCH_ROUNDS], close_us[MAX_BENCH_ROUNDS];
	const int bench_threads = *(const int *)c->data;
	unsigned int state = rand0 ^ bench_threads;
	double end = now() + opts.seconds;
	int n = 0;

	while (n < opts.rounds && n < MAX_BENCH_ROUNDS && (n < 10 || now() < end)) {
		double v = bench_round(bench_threads, n + 1, &state, &close_us[n]);

		if (v < 0)
			return CASE_FAIL;
		us[n++] = v;
	}
	qsort(us, n, sizeof(*us), cmp_double);
	qsort(close_us, n, sizeof(*close_us), cmp_double);
	/* Nearest rank: with fewer than 100 rounds p99 is the maximum. */
	diag("bench: release.gup%d p50_us=%.0f p99_us=%.0f max_us=%.0f %s=%.0f %s=%.0f rounds=%d",
	     bench_threads, us[(n - 1) / 2], us[(99 * n + 99) / 100 - 1], us[n - 1],
	     "close_p50_us", close_us[(n - 1) / 2],
	     "close_p99_us", close_us[(99 * n + 99) / 100 - 1], n);
	return CASE_PASS;
}

/* One case per GUP thread count of -n: the table is made at run time. */
static int bench_main(void)
{
	static const int defaults[] = { 0, 1, 4, 16 };
	static struct named_case cases[MAX_SIZES];
	static char names[MAX_SIZES][32];
	static int threads[MAX_SIZES];

	if (!nr_bench_sizes) {
		nr_bench_sizes = ARRAY_SIZE(defaults);
		memcpy(bench_sizes, defaults, sizeof(defaults));
	}
	for (int i = 0; i < nr_bench_sizes; i++) {
		threads[i] = bench_sizes[i] < MAX_GUP_THREADS ? bench_sizes[i] : MAX_GUP_THREADS;
		snprintf(names[i], sizeof(names[i]), "bench.gup%d", threads[i]);
		cases[i] = (struct named_case){ .name = names[i], .fn = case_bench,
						.data = &threads[i] };
	}
	return run_cases(cases, nr_bench_sizes, opts.seconds + 6 * PROBE_TIMEOUT, &opts, NULL);
}

int main(int argc, char **argv)
{
	parse_test_opts(argc, argv, &opts);
	rand0 = opts.rand;
	return bench_main();
}
#else
TEST_HARNESS_MAIN
#endif /* UFFD_BENCH */
