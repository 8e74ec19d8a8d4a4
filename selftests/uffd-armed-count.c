// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-armed-count: whether a shmem file counts as armed with userfaultfd
 * MISSING must follow every VMA lifecycle operation, exactly.
 *
 * Collapse refuses to fill the holes of a file while any VMA maps it with
 * VM_UFFD_MISSING. That decision is the observable form of the
 * file's uffd-armed state, so each case drives the VMAs of a fresh 2 MiB
 * memfd with holes at its odd pages through one lifecycle operation and
 * probes the state from a separate process that maps the file without
 * userfaultfd and calls MADV_COLLAPSE:
 *
 *  armed     the collapse must leave every hole a hole (whatever it
 *            returns); a count too low shows here;
 *  unarmed   once no VMA is armed, the collapse must succeed and fill the
 *            holes; a count too high (a leak) shows here.
 *
 * Each case arms two VMAs or one VMA twice over where it can, takes one
 * away, probes "armed", takes the last away and probes "unarmed". The
 * operations: split and merge (mprotect), munmap of parts, UFFDIO_UNREGISTER
 * of a part, mremap with and without UFFD_FEATURE_EVENT_REMAP, fork with and
 * without UFFD_FEATURE_EVENT_FORK (the child exiting, the child's uffd
 * closed, the fork event never read because the uffd was closed while fork
 * waited), exit of the arming process, and a MAP_PRIVATE mapping.
 *
 * Whether the count can underflow is the kernel's to report (a WARN);
 * check the kernel log after a run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "uffd-race-common.h"

#define CASE_TIMEOUT	60

static size_t page;
static int npages;
static int fd = -1;	/* the case's file */

/* Map the whole file at a 2 MiB-aligned address; NULL on error. */
static char *map_file(int flags)
{
	char *a = map_hpage_aligned(fd, HPAGE, flags);

	if (!a)
		diag("mmap: %s", strerror(errno));
	return a;
}

/* Holes of the file that are still holes. */
static int holes_left(void)
{
	int n = 0;

	for (int i = 1; i < npages; i += 2)
		if (lseek(fd, (off_t)(i * page), SEEK_HOLE) == (off_t)(i * page))
			n++;
	return n;
}

/* MADV_COLLAPSE of the file from a new process that maps it unarmed. */
static int collapse_from_outside(int *err)
{
	int pipefd[2], out[2] = { -1, EPIPE };
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (!pid) {
		char *a = map_file(MAP_SHARED);

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

#define META	struct __test_metadata *_metadata

#define NO_LONGER_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and filled %d of %d holes: the file no longer counts as armed"
#define STILL_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and left %d of %d holes: the file still counts as armed"

/* The file must count as armed: a collapse leaves every hole a hole. */
static void expect_armed(META, const char *when)
{
	int err, ret = collapse_from_outside(&err), left = holes_left();
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
		ret = collapse_from_outside(&err);
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
	char *a = map_file(flags);

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
	fd = memfd_create("uffd-armed-count", 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, HPAGE));
	a = map_file(MAP_SHARED);
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
