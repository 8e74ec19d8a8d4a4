// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-release-gup: closing a userfaultfd while GUP runs on its range must
 * not livelock (seed 000).
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
 * Cases: {proc_read,proc_write,vm_read,vm_write}.{anon,shmem}, and with -a
 * also .hugetlb: on 6.1 its GUP takes and drops mmap_lock around each
 * 4 KiB chunk (/proc/pid/mem) or copies outside it (process_vm_*), so the
 * window is narrow there; it hit once in about 130 rounds under TCG, too
 * seldom for a verdict, so hugetlb is opt-in until it has a wider window.
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
#include <sys/mman.h>
#include <sys/uio.h>

#include "uffd-race-common.h"

#define GUP_THREADS	3
#define PROBE_TIMEOUT	5	/* s: mmap_lock must be free again by then */
#define CLOSE_DELAY_US	20000	/* the close comes within this of the start */

enum gup_op { PROC_READ, PROC_WRITE, VM_READ, VM_WRITE };

static const char *const op_names[] = {
	[PROC_READ] = "proc_read", [PROC_WRITE] = "proc_write",
	[VM_READ] = "vm_read", [VM_WRITE] = "vm_write",
};

static struct test_opts opts = { .rounds = 150, .seconds = 5 };
static enum gup_op cur_op;

struct round {
	const struct mem_type *mt;
	char *area;
	size_t page;
	int npages;
	int uffd;
	int memfd;		/* /proc/self/mem */
	atomic_int stop;
	atomic_long gups;	/* GUP calls made */
	atomic_long copies;	/* faults the monitor resolved */
	pthread_t monitor;
	double t_closed;	/* when close() returned, 0 until then */
	double t_released;	/* when the monitor had exited, 0 until then */
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
	unsigned int state = (unsigned int)(uintptr_t)&state ^ opts.seed;
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
	while (!atomic_load(&r->stop)) {
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
	return NULL;
}

static void *zap_thread(void *arg)
{
	struct round *r = arg;
	unsigned int state = opts.seed ^ 0x9e3779b9;

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

	close(r->uffd);
	r->t_closed = now();
	pthread_join(r->monitor, NULL);
	r->t_released = now();
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		munmap(p, 4096);
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

static int one_round(const struct mem_type *mt, int round, unsigned int *state)
{
	struct round r = { .mt = mt, .page = mt->page_size() };
	pthread_t gup[GUP_THREADS], zap, closer;
	double t_close, t_free;
	char *src;
	int i;

	r.npages = r.page > 65536 ? 6 : 64;
	/* Threads created below inherit this; GUP threads move to CPU 0. */
	pin_to_cpu(1);
	r.area = mt->map(r.npages * r.page);
	if (!r.area) {
		diag("%s: cannot map %zu bytes: %s", mt->name, r.npages * r.page,
		     strerror(errno));
		return CASE_SKIP;
	}
	r.memfd = open("/proc/self/mem", O_RDWR);
	r.uffd = uffd_open_api(0, NULL);
	if (r.memfd < 0 || r.uffd < 0) {
		diag("open /proc/self/mem or userfaultfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	if (uffd_register_mode(r.uffd, r.area, r.npages * r.page,
			       UFFDIO_REGISTER_MODE_MISSING)) {
		diag("UFFDIO_REGISTER MISSING on %s: %s", mt->name, strerror(errno));
		return CASE_FAIL;
	}
	/* The even pages stay present: see gup_thread(). */
	src = malloc(r.page);
	if (!src)
		return CASE_FAIL;
	memset(src, 0xa5, r.page);
	for (i = 0; i < r.npages; i += 2) {
		int ret = uffd_copy(r.uffd, r.area + i * r.page, src, r.page);

		if (ret) {
			diag("UFFDIO_COPY to populate %s page %d: %s", mt->name, i,
			     strerror(-ret));
			return CASE_FAIL;
		}
	}
	free(src);
	pthread_create(&r.monitor, NULL, monitor_thread, &r);
	pthread_create(&zap, NULL, zap_thread, &r);
	for (i = 0; i < GUP_THREADS; i++)
		pthread_create(&gup[i], NULL, gup_thread, &r);

	usleep(1000 + rnd(state) % CLOSE_DELAY_US);
	t_close = now();
	pthread_create(&closer, NULL, close_thread, &r);
	if (join_within(closer, PROBE_TIMEOUT)) {
		/*
		 * No page fault from here on: it would wait for mmap_lock too.
		 * Exiting kills the spinning GUP threads, which frees the lock.
		 */
		if (!r.t_closed)
			case_fail_fast(CLOSE_STUCK, round, PROBE_TIMEOUT, atomic_load(&r.gups));
		if (!r.t_released)
			case_fail_fast(RELEASE_STUCK, round, r.t_closed - t_close, PROBE_TIMEOUT,
				       atomic_load(&r.gups));
		case_fail_fast(LOCK_STUCK, round, r.t_released - t_close, PROBE_TIMEOUT,
			       atomic_load(&r.gups));
	}
	t_free = now() - t_close;

	atomic_store(&r.stop, 1);
	for (i = 0; i < GUP_THREADS; i++)
		if (join_within(gup[i], PROBE_TIMEOUT))
			case_fail_fast("round %d: a GUP thread is still stuck %d s after the round",
				       round, PROBE_TIMEOUT);
	if (join_within(zap, PROBE_TIMEOUT))
		case_fail_fast("round %d: the zapper is stuck", round);
	if (t_free > 1.0)
		diag("round %d: mmap_lock took %.3f s to come free", round, t_free);
	close(r.memfd);
	mt->unmap(r.area, r.npages * r.page);
	return CASE_PASS;
}

static int case_release_gup(const struct mem_type *mt)
{
	unsigned int state = opts.seed ^ (cur_op << 8) ^ (unsigned int)(mt - mem_types);
	double end = now() + opts.seconds;
	int round;

	for (round = 1; round <= opts.rounds && now() < end; round++) {
		int ret = one_round(mt, round, &state);

		if (ret != CASE_PASS)
			return ret;
	}
	diag("%s.%s: %d rounds, no livelock", op_names[cur_op], mt->name, round - 1);
	return CASE_PASS;
}

int main(int argc, char **argv)
{
	char name[64];

	ksft_print_header();
	parse_test_opts(argc, argv, &opts);
	ksft_set_plan(4 * nr_mem_types);
	for (cur_op = PROC_READ; cur_op <= VM_WRITE; cur_op++) {
		for (int i = 0; i < nr_mem_types; i++) {
			snprintf(name, sizeof(name), "%s.%s", op_names[cur_op],
				 mem_types[i].name);
			/* hugetlb is last in mem_types: see above */
			if (i == nr_mem_types - 1 && !opts.all_types) {
				diag("%s: opt-in (-a): the window is too narrow for a verdict",
				     name);
				ksft_test_result_skip("%s\n", name);
				continue;
			}
			report_case(name, run_case(name, case_release_gup, &mem_types[i],
						   opts.seconds + 6 * PROBE_TIMEOUT));
		}
	}
	return finish_tests();
}
