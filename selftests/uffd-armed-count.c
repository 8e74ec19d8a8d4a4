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

/* A new file: even pages written, odd pages holes. */
static int make_file(void)
{
	char *a;

	fd = memfd_create("uffd-armed-count", 0);
	if (fd < 0 || ftruncate(fd, HPAGE)) {
		diag("memfd: %s", strerror(errno));
		return -1;
	}
	a = map_file(MAP_SHARED);
	if (!a)
		return -1;
	for (int i = 0; i < npages; i += 2)
		memset(a + i * page, 0x40 + i % 64, page);
	munmap(a, HPAGE);
	return 0;
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

#define NO_LONGER_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and filled %d of %d holes: the file no longer counts as armed"
#define STILL_ARMED	"%s: MADV_COLLAPSE returned %d (%s) and left %d of %d holes: the file still counts as armed"

/* The file must count as armed: a collapse leaves every hole a hole. */
static int expect_armed(const char *when)
{
	int err, ret = collapse_from_outside(&err), left = holes_left();

	if (left != npages / 2) {
		diag(NO_LONGER_ARMED, when, ret,
		     ret ? strerror(err) : "success", npages / 2 - left, npages / 2);
		return -1;
	}
	diag("%s: armed (MADV_COLLAPSE: %s, %d holes kept)", when,
	     ret ? strerror(err) : "success", left);
	return 0;
}

/*
 * The file must count as unarmed: a collapse fills the holes. (What it
 * returns is not the point: 6.1 collapses the file from a process that
 * maps it and still returns EINVAL for that process's page tables.)
 */
static int expect_unarmed(const char *when)
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
	if (left) {
		diag(STILL_ARMED, when, ret,
		     ret ? strerror(err) : "success", left, npages / 2);
		return -1;
	}
	diag("%s: unarmed (collapsed; MADV_COLLAPSE: %s)", when, ret ? strerror(err) : "success");
	return 0;
}

static int open_uffd(__u64 features)
{
	int uffd = uffd_race_open_api(features, NULL);

	if (uffd < 0)
		diag("UFFDIO_API features %#llx: %s", (unsigned long long)features,
		     strerror(errno));
	return uffd;
}

static int arm(int uffd, char *addr, size_t len)
{
	if (uffd_register_mode(uffd, addr, len, UFFDIO_REGISTER_MODE_MISSING)) {
		diag("UFFDIO_REGISTER: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int disarm(int uffd, char *addr, size_t len)
{
	struct uffdio_range r = { .start = (unsigned long)addr, .len = len };

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r)) {
		diag("UFFDIO_UNREGISTER: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The file mapped and armed MISSING with a new userfaultfd. */
static char *armed_mapping(int uffd, int flags)
{
	char *a = map_file(flags);

	if (!a || arm(uffd, a, HPAGE))
		return NULL;
	return a;
}

/* A new file and one armed mapping of it; NULL on failure. */
static char *armed_file(int uffd, int flags)
{
	if (uffd < 0 || make_file())
		return NULL;
	return armed_mapping(uffd, flags);
}

/* Split one armed VMA in three, merge it back, then unregister it. */
static int case_split_merge(void)
{
	int uffd = open_uffd(0);
	char *a;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	if (mprotect(a + HPAGE / 4, HPAGE / 4, PROT_READ))
		return CASE_FAIL;
	if (expect_armed("split in three by mprotect"))
		return CASE_FAIL;
	if (mprotect(a + HPAGE / 4, HPAGE / 4, PROT_READ | PROT_WRITE))
		return CASE_FAIL;
	if (expect_armed("merged back by mprotect"))
		return CASE_FAIL;
	if (disarm(uffd, a, HPAGE))
		return CASE_FAIL;
	return expect_unarmed("unregistered") ? CASE_FAIL : CASE_PASS;
}

/* Unregister the middle of an armed VMA, then the two armed ends. */
static int case_unregister_part(void)
{
	int uffd = open_uffd(0);
	char *a;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	if (disarm(uffd, a + HPAGE / 4, HPAGE / 2))
		return CASE_FAIL;
	if (expect_armed("middle unregistered"))
		return CASE_FAIL;
	if (disarm(uffd, a, HPAGE / 4))
		return CASE_FAIL;
	if (expect_armed("first quarter unregistered"))
		return CASE_FAIL;
	if (disarm(uffd, a + 3 * HPAGE / 4, HPAGE / 4))
		return CASE_FAIL;
	return expect_unarmed("last quarter unregistered") ? CASE_FAIL : CASE_PASS;
}

/* munmap the middle of an armed VMA, then the two ends. */
static int case_unmap_parts(void)
{
	int uffd = open_uffd(0);
	char *a;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	if (munmap(a + HPAGE / 4, HPAGE / 2))
		return CASE_FAIL;
	if (expect_armed("middle unmapped"))
		return CASE_FAIL;
	if (munmap(a, HPAGE / 4))
		return CASE_FAIL;
	if (expect_armed("first quarter unmapped"))
		return CASE_FAIL;
	if (munmap(a + 3 * HPAGE / 4, HPAGE / 4))
		return CASE_FAIL;
	return expect_unarmed("last quarter unmapped") ? CASE_FAIL : CASE_PASS;
}

/* A MAP_PRIVATE mapping watches the same page cache holes. */
static int case_private(void)
{
	int uffd = open_uffd(0);
	char *a;

	a = armed_file(uffd, MAP_PRIVATE);
	if (!a)
		return CASE_FAIL;
	if (expect_armed("private mapping armed"))
		return CASE_FAIL;
	if (munmap(a, HPAGE))
		return CASE_FAIL;
	return expect_unarmed("private mapping unmapped") ? CASE_FAIL : CASE_PASS;
}

/* Two armed VMAs; @a moves without EVENT_REMAP and so loses its arming. */
static int case_mremap(void)
{
	int uffd = open_uffd(0);
	char *a, *b, *to;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	b = armed_mapping(uffd, MAP_SHARED);
	if (!b)
		return CASE_FAIL;
	to = reserve_hpage_aligned(HPAGE);
	if (!to)
		return CASE_FAIL;
	if (mremap(a, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED) {
		diag("mremap: %s", strerror(errno));
		return CASE_FAIL;
	}
	if (expect_armed("one of two moved without EVENT_REMAP"))
		return CASE_FAIL;
	if (disarm(uffd, b, HPAGE))
		return CASE_FAIL;
	return expect_unarmed("the other unregistered") ? CASE_FAIL : CASE_PASS;
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
static int case_mremap_event(void)
{
	int uffd = open_uffd(UFFD_FEATURE_EVENT_REMAP);
	struct monitor m;
	char *a, *to;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	to = reserve_hpage_aligned(2 * HPAGE);
	if (!to || start_monitor(&m, uffd))
		return CASE_FAIL;
	if (mremap(a, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED ||
	    mremap(to + HPAGE / 2, HPAGE / 2, HPAGE / 2, MREMAP_MAYMOVE | MREMAP_FIXED,
		   to + HPAGE + HPAGE / 2) == MAP_FAILED) {
		diag("mremap: %s", strerror(errno));
		return CASE_FAIL;
	}
	stop_monitor(&m);
	if (expect_armed("moved whole, then half, with EVENT_REMAP"))
		return CASE_FAIL;
	if (disarm(uffd, to, HPAGE / 2))
		return CASE_FAIL;
	if (expect_armed("first half unregistered"))
		return CASE_FAIL;
	if (disarm(uffd, to + HPAGE + HPAGE / 2, HPAGE / 2))
		return CASE_FAIL;
	return expect_unarmed("moved half unregistered") ? CASE_FAIL : CASE_PASS;
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
static int case_fork(void)
{
	int uffd = open_uffd(0), pipefd[2];
	char *a;
	pid_t pid;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	pid = fork_waiting_child(pipefd);
	if (pid < 0)
		return CASE_FAIL;
	if (expect_armed("forked without EVENT_FORK"))
		return CASE_FAIL;
	if (disarm(uffd, a, HPAGE))
		return CASE_FAIL;
	if (expect_unarmed("parent unregistered, child alive"))
		return CASE_FAIL;
	return end_child(pid, pipefd) ? CASE_FAIL : CASE_PASS;
}

/*
 * With EVENT_FORK the child's copy is armed by a new context. @how ends
 * it: the child exits, or the monitor closes the child's uffd.
 */
enum fork_end { CHILD_EXITS, CHILD_UFFD_CLOSED };

static int fork_event(enum fork_end how)
{
	int uffd = open_uffd(UFFD_FEATURE_EVENT_FORK), pipefd[2];
	struct monitor m;
	char *a;
	pid_t pid;

	a = armed_file(uffd, MAP_SHARED);
	if (!a)
		return CASE_FAIL;
	if (start_monitor(&m, uffd))
		return CASE_FAIL;
	pid = fork_waiting_child(pipefd);
	if (pid < 0)
		return CASE_FAIL;
	stop_monitor(&m);
	if (m.child_uffd < 0) {
		diag("no fork event (%d events)", m.events);
		return CASE_FAIL;
	}
	if (disarm(uffd, a, HPAGE))
		return CASE_FAIL;
	if (expect_armed("parent unregistered, child armed by EVENT_FORK"))
		return CASE_FAIL;
	if (how == CHILD_EXITS) {
		if (end_child(pid, pipefd))
			return CASE_FAIL;
		if (expect_unarmed("child exited"))
			return CASE_FAIL;
		close(m.child_uffd);
		return CASE_PASS;
	}
	close(m.child_uffd);
	if (expect_unarmed("child's uffd closed, child alive"))
		return CASE_FAIL;
	return end_child(pid, pipefd) ? CASE_FAIL : CASE_PASS;
}

static int case_fork_event_exit(void)
{
	return fork_event(CHILD_EXITS);
}

static int case_fork_event_close(void)
{
	return fork_event(CHILD_UFFD_CLOSED);
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
static int case_fork_event_dropped(void)
{
	int uffd = open_uffd(UFFD_FEATURE_EVENT_FORK), ret;
	struct forker f;
	pthread_t t;

	if (!armed_file(uffd, MAP_SHARED))
		return CASE_FAIL;
	if (pthread_create(&t, NULL, forker_fn, &f))
		return CASE_FAIL;
	usleep(200000);		/* let fork block on the unread event */
	close(uffd);
	pthread_join(t, NULL);
	if (f.pid < 0) {
		diag("clone: %s", strerror(errno));
		return CASE_FAIL;
	}
	ret = expect_unarmed("uffd closed with the fork event unread, child alive");
	kill(f.pid, SIGKILL);
	waitpid(f.pid, NULL, 0);
	return ret ? CASE_FAIL : CASE_PASS;
}

/* A process that armed a mapping exits without unregistering or closing. */
static int case_exit(void)
{
	int pipefd[2], uffd;
	pid_t pid;
	char byte;

	if (make_file() || pipe(pipefd))
		return CASE_FAIL;
	pid = fork();
	if (!pid) {
		uffd = open_uffd(0);
		if (uffd < 0 || !armed_mapping(uffd, MAP_SHARED) ||
		    !armed_mapping(uffd, MAP_SHARED))
			_exit(1);
		write(pipefd[1], "x", 1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &byte, 1) != 1) {
		diag("the child could not arm its mappings");
		return CASE_FAIL;
	}
	if (expect_armed("another process armed two mappings"))
		return CASE_FAIL;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return expect_unarmed("that process was killed") ? CASE_FAIL : CASE_PASS;
}

FIXTURE(count) {
};

FIXTURE_SETUP(count)
{
	page = sysconf(_SC_PAGESIZE);
	npages = HPAGE / page;
}

FIXTURE_TEARDOWN(count)
{
}

TEST_F_TIMEOUT(count, split_merge, CASE_TIMEOUT)
{
	case_end(_metadata, case_split_merge());
}

TEST_F_TIMEOUT(count, unregister_part, CASE_TIMEOUT)
{
	case_end(_metadata, case_unregister_part());
}

TEST_F_TIMEOUT(count, unmap_parts, CASE_TIMEOUT)
{
	case_end(_metadata, case_unmap_parts());
}

TEST_F_TIMEOUT(count, private, CASE_TIMEOUT)
{
	case_end(_metadata, case_private());
}

TEST_F_TIMEOUT(count, mremap, CASE_TIMEOUT)
{
	case_end(_metadata, case_mremap());
}

TEST_F_TIMEOUT(count, mremap_event, CASE_TIMEOUT)
{
	case_end(_metadata, case_mremap_event());
}

TEST_F_TIMEOUT(count, fork, CASE_TIMEOUT)
{
	case_end(_metadata, case_fork());
}

TEST_F_TIMEOUT(count, fork_event_exit, CASE_TIMEOUT)
{
	case_end(_metadata, case_fork_event_exit());
}

TEST_F_TIMEOUT(count, fork_event_close, CASE_TIMEOUT)
{
	case_end(_metadata, case_fork_event_close());
}

TEST_F_TIMEOUT(count, fork_event_dropped, CASE_TIMEOUT)
{
	case_end(_metadata, case_fork_event_dropped());
}

TEST_F_TIMEOUT(count, exit, CASE_TIMEOUT)
{
	case_end(_metadata, case_exit());
}

TEST_HARNESS_MAIN
