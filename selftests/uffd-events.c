// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-events: the non-cooperative userfaultfd events and what the
 * documentation promises around them.
 *
 * A target process opens a userfaultfd with UFFD_FEATURE_EVENT_FORK,
 * _REMAP, _REMOVE and _UNMAP, registers NPAGES pages MISSING, lets the
 * monitor (this test) take the uffd with pidfd_getfd() and then does what
 * the monitor asks through a pipe. The uffd belongs to the target's mm, as
 * a CRIU or postcopy monitor's does: that is what the exit cases need.
 * (pidfd_getfd() rather than SCM_RIGHTS: a minimal test kernel may have no
 * networking, so no unix sockets.) The cases, each over anon, shmem and
 * hugetlb:
 *
 *  fork, remap, remove, unmap
 *	the target forks, moves pages 2-3 elsewhere (mremap), drops them
 *	(MADV_DONTNEED, and MADV_REMOVE on shmem and hugetlb) or unmaps them.
 *	While the event is queued the target must still be in its call and
 *	UFFDIO_COPY must return -EAGAIN; the event's fields must be exact;
 *	once it is read the call returns and UFFDIO_COPY works again. For
 *	fork, msg.arg.fork.ufd must be a working uffd of the child: the
 *	child's read of a missing page faults there, at its address, and is
 *	resolved there.
 *  exit_copy
 *	UFFDIO_COPY after the target exited, and after it was killed while
 *	blocked in a MISSING fault, fails with ESRCH (ENOSPC before 5.2):
 *	it never hangs and never fails with EFAULT.
 *  unread_kill, unread_close, unread_monitor_exit
 *	with a fork, remap, remove or unmap event queued and unread, the
 *	target is SIGKILLed, or the monitor closes the uffd, or a monitor
 *	process holding its only reference exits. The target must be reaped
 *	(kill) or return from its call (close, exit) within REAP_S seconds
 *	and never be seen in D state after DSTATE_GRACE_S. While it waits for
 *	the monitor it is in D state: the wait is TASK_KILLABLE.
 *  fork_race
 *	fork against UFFDIO_COPY, as CRIU's lazy pages see it: a copier thread fills the
 *	range with UFFDIO_COPY in random order while the target forks again
 *	and again. Once the fork event is queued (POLLIN), dup_mmap() is over
 *	and mmap_changing is raised, so no UFFDIO_COPY can succeed until the
 *	event is read: the monitor snapshots the pages whose UFFDIO_COPY
 *	returned 0, then reads the event. Every page of the snapshot must be
 *	in the child with its content; a MISSING fault for one on the child's
 *	uffd is a failure (answered with a marker so the child can finish).
 *
 * Every message read is checked: only the documented five events exist,
 * and only the one expected may arrive. There is no exit event: once the
 * target has exited, nothing can be read from its uffd.
 *
 * fork_race is randomised (-s SEED replays it) and runs up to -r ROUNDS
 * or -t SECONDS per memory type; the other cases are deterministic. On
 * hugetlb the calls act on a VMA of their own unless -a is given: then they
 * split one, which makes 6.1.192 warn (see map_unsplit()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "uffd-case-runner.h"

#define NPAGES		6	/* 0-1 stay, 2-3 are the call's, 4-5 probes */
#define EVENT_MS	5000	/* an event or a fault must be there by then */
#define QUIET_MS	200	/* how long "no message" is watched for */
#define REAP_S		3.0	/* a released target must be done by then */
#define DSTATE_GRACE_S	0.5	/* and out of D state by then */
#define STALL_S		10	/* a syscall of the monitor taking longer hangs */
#define CASE_TIMEOUT	40
#define RACE_MAX_PAGES	512
#define RACE_MAX_BAD	8	/* mismatches a child reports in detail */
#define MARKER		0xee	/* what a fork_race child gets for a lost page */

#define ALL_EVENTS	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
			 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

static struct test_opts opts = { .rounds = 1000, .seconds = 4 };

/* What the monitor asks of the target. */
enum op {
	OP_EXIT, OP_DROP_UFFD, OP_MUNMAP, OP_MADVISE, OP_MREMAP, OP_FORK, OP_TOUCH,
	OP_FORK_LOOP,
};

struct cmd {
	int op;
	int advice;
	unsigned long addr, len, to;
};

struct reply {
	long ret;	/* the call's result, negative when it failed */
	int err;	/* its errno then */
	int status;	/* OP_FORK: the child's wait status; OP_TOUCH: the byte */
};

/* The target's first message. */
struct hello {
	int fd;		/* its uffd, for pidfd_getfd() */
	int err;	/* errno when setup failed (no uffd then) */
	int skip;	/* and whether that means the type is unavailable */
	char what[40];	/* what failed */
	unsigned long area, spare;
};

struct target {
	const struct mem_type *mt;
	pid_t pid;
	int cmd, rep;		/* pipes to the target and back */
	int uffd;		/* the monitor's reference */
	size_t ps;
	unsigned long area;	/* registered pages, in the target's mm */
	unsigned long spare;	/* as many free pages there, for mremap */
};

enum ev_kind { EV_FORK, EV_REMAP, EV_REMOVE, EV_UNMAP };

static const char *const ev_calls[] = {
	[EV_FORK] = "fork", [EV_REMAP] = "mremap",
	[EV_REMOVE] = "madvise", [EV_UNMAP] = "munmap",
};

/* fork_race: shared by the monitor, the target and its children. */
static struct race {
	atomic_int stop;	/* the target stops forking */
	atomic_int child_done;	/* the current child checked its pages */
	int npages;
	unsigned int round;
	int nbad;		/* pages the child found wrong */
	struct {
		int page, off, want, got;
	} bad[RACE_MAX_BAD];
	unsigned char snap[RACE_MAX_PAGES];	/* must be in the child */
} *race;

/* Content of page @i: never 0, so a zero page never passes for it. */
static unsigned char page_byte(unsigned int round, int i)
{
	return 1 + (round * 131 + i * 7) % 251;
}

static const char *event_name(unsigned int event)
{
	switch (event) {
	case UFFD_EVENT_PAGEFAULT:
		return "PAGEFAULT";
	case UFFD_EVENT_FORK:
		return "FORK";
	case UFFD_EVENT_REMAP:
		return "REMAP";
	case UFFD_EVENT_REMOVE:
		return "REMOVE";
	case UFFD_EVENT_UNMAP:
		return "UNMAP";
	}
	return NULL;
}

static const char *describe(const struct uffd_msg *m)
{
	static char buf[160];
	const char *name = event_name(m->event);

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		snprintf(buf, sizeof(buf), "PAGEFAULT address %#llx flags %#llx",
			 m->arg.pagefault.address, m->arg.pagefault.flags);
		break;
	case UFFD_EVENT_FORK:
		snprintf(buf, sizeof(buf), "FORK ufd %u", m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		snprintf(buf, sizeof(buf), "REMAP from %#llx to %#llx len %#llx",
			 m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		snprintf(buf, sizeof(buf), "%s start %#llx end %#llx", name,
			 m->arg.remove.start, m->arg.remove.end);
		break;
	default:
		snprintf(buf, sizeof(buf), "unknown event %#x", m->event);
		break;
	}
	return buf;
}

static int field(const char *when, const char *ev, const char *name,
		 unsigned long long got, unsigned long long want)
{
	if (got == want)
		return 0;
	diag("%s: %s %s is %#llx, expected %#llx", when, ev, name, got, want);
	return -1;
}

/*
 * 0 when @got is the message @want, field by field. A FORK message's fd is
 * the caller's to check and close.
 */
static int check_msg(const char *when, const struct uffd_msg *got,
		     const struct uffd_msg *want)
{
	const char *name = event_name(got->event);
	int bad = 0;

	if (!name) {
		diag("%s: read %s: only PAGEFAULT, FORK, REMAP, REMOVE and UNMAP exist",
		     when, describe(got));
		return -1;
	}
	if (got->event != want->event) {
		diag("%s: read %s, expected a %s event", when, describe(got),
		     event_name(want->event));
		return -1;
	}
	switch (got->event) {
	case UFFD_EVENT_PAGEFAULT:
		bad |= field(when, name, "address", got->arg.pagefault.address,
			     want->arg.pagefault.address);
		break;
	case UFFD_EVENT_REMAP:
		bad |= field(when, name, "from", got->arg.remap.from, want->arg.remap.from);
		bad |= field(when, name, "to", got->arg.remap.to, want->arg.remap.to);
		bad |= field(when, name, "len", got->arg.remap.len, want->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		bad |= field(when, name, "start", got->arg.remove.start, want->arg.remove.start);
		bad |= field(when, name, "end", got->arg.remove.end, want->arg.remove.end);
		break;
	}
	return bad;
}

/* 0 when nothing can be read from @uffd for QUIET_MS. */
static int no_message(int uffd, const char *when)
{
	struct uffd_msg m;
	int n = uffd_race_read_msg(uffd, &m, QUIET_MS);

	if (!n)
		return 0;
	if (n < 0) {
		diag("%s: read(uffd): %s", when, strerror(errno));
		return -1;
	}
	diag("%s: read %s, expected no message at all%s", when, describe(&m),
	     event_name(m.event) ? "" : " (and no such event exists)");
	if (m.event == UFFD_EVENT_FORK)
		close(m.arg.fork.ufd);
	return -1;
}

/* A read the compiler must do: the point of it may be the fault. */
static unsigned char read_byte(const void *p)
{
	return __atomic_load_n((const unsigned char *)p, __ATOMIC_RELAXED);
}

/* The state letter of @pid in /proc/PID/stat; 0 when it is gone. */
static char task_state(pid_t pid)
{
	struct task_stat st;

	return read_task_stat(pid, 0, &st) ? 0 : st.state;
}

/*
 * The monitor's syscalls that could hang (UFFDIO_COPY on a dead mm, the
 * release in close()) are watched: stuck STALL_S seconds in one fails the
 * case naming it, which says more than the case's deadline would.
 */
static const char *stall_what;
static long stall_since_ms;

static void *watchdog(void *unused)
{
	for (;;) {
		const char *what = __atomic_load_n(&stall_what, __ATOMIC_ACQUIRE);

		if (what && now() * 1000 - __atomic_load_n(&stall_since_ms, __ATOMIC_RELAXED) >
			    STALL_S * 1000)
			case_fail_fast("stuck for %d s in %s", STALL_S, what);
		usleep(100000);
	}
	return NULL;
}

static void watch(const char *what)
{
	static pthread_t thr;

	if (!thr && pthread_create(&thr, NULL, watchdog, NULL))
		diag("watchdog: %s", strerror(errno));
	__atomic_store_n(&stall_since_ms, (long)(now() * 1000), __ATOMIC_RELAXED);
	__atomic_store_n(&stall_what, what, __ATOMIC_RELEASE);
}

/* 1 when @fd is readable within @ms, else 0. */
static int readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&pfd, 1, ms);
	} while (r < 0 && errno == EINTR);
	return r > 0;
}

/* Messages are records of at most PIPE_BUF bytes: pipes keep them whole. */
static void write_all(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(2);
}

static void target_reply(int out, long ret, int status)
{
	struct reply r = { .ret = ret, .err = ret < 0 ? errno : 0, .status = status };

	write_all(out, &r, sizeof(r));
}

/* A fork_race child: check that the snapshot's pages came with the fork. */
static __noreturn void race_child(const char *area, size_t ps)
{
	for (int i = 0; i < race->npages; i++) {
		const unsigned char *p;
		unsigned char want = page_byte(race->round, i);
		size_t off;

		if (!race->snap[i])
			continue;
		p = (const unsigned char *)area + i * ps;
		for (off = 0; off < ps; off++)
			if (read_byte(p + off) != want)
				break;
		if (off == ps)
			continue;
		if (race->nbad < RACE_MAX_BAD) {
			race->bad[race->nbad].page = i;
			race->bad[race->nbad].off = off;
			race->bad[race->nbad].want = want;
			race->bad[race->nbad].got = read_byte(p + off);
		}
		race->nbad++;
	}
	atomic_store(&race->child_done, 1);
	_exit(0);
}

static void do_fork_loop(int out, const char *area, size_t ps)
{
	int forks = 0, status;
	pid_t pid;

	while (!atomic_load(&race->stop)) {
		pid = fork();
		if (!pid)
			race_child(area, ps);
		if (pid < 0) {
			target_reply(out, -1, forks);
			return;
		}
		waitpid(pid, &status, 0);
		forks++;
	}
	target_reply(out, 0, forks);
}

/*
 * hugetlb, unless -a: pages 2-3 come from a second file, so that they are a
 * VMA of their own and the calls on them never split a VMA. 6.1.192 warns
 * (lockdep) on every hugetlb VMA split, uffd or not: its backport of
 * hugetlb_split() runs in __vma_adjust() before i_mmap_rwsem is taken.
 */
static char *map_unsplit(size_t ps)
{
	int a = memfd_create("uffd-events", MFD_HUGETLB);
	int b = memfd_create("uffd-events", MFD_HUGETLB);
	char *p = mmap(NULL, (NPAGES + 1) * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const int prot = PROT_READ | PROT_WRITE, fl = MAP_SHARED | MAP_FIXED;

	if (a < 0 || b < 0 || p == MAP_FAILED || ftruncate(a, 4 * ps) || ftruncate(b, 2 * ps))
		return NULL;
	p = (char *)(((unsigned long)p + ps - 1) & ~(ps - 1));
	if (mmap(p, 2 * ps, prot, fl, a, 0) == MAP_FAILED ||
	    mmap(p + 2 * ps, 2 * ps, prot, fl, b, 0) == MAP_FAILED ||
	    mmap(p + 4 * ps, 2 * ps, prot, fl, a, 2 * ps) == MAP_FAILED)
		return NULL;
	close(a);
	close(b);
	return p;
}

/* The target: set up, hand over the uffd, then do what it is told. */
static __noreturn void target_main(const struct mem_type *mt, int in, int out, int npages)
{
	size_t ps = mt->page_size(), len = npages * ps;
	struct hello h = { 0 };
	char *area, *spare;
	int uffd = -1, status;
	struct cmd c;
	pid_t pid;
	void *p;

	if (npages == NPAGES && !opts.all_types && !strcmp(mt->name, "hugetlb"))
		area = map_unsplit(ps);
	else
		area = mt->map(len);
	spare = mmap(NULL, len + ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		     -1, 0);
	if (!area || spare == MAP_FAILED) {
		h.err = errno;
		h.skip = !area;
		snprintf(h.what, sizeof(h.what), "map %zu bytes", len);
	} else {
		uffd = uffd_race_open_api(ALL_EVENTS, NULL);
		if (uffd < 0 || uffd_register_mode(uffd, area, len, UFFDIO_REGISTER_MODE_MISSING)) {
			h.err = errno;
			snprintf(h.what, sizeof(h.what), uffd < 0 ? "UFFDIO_API" :
				 "UFFDIO_REGISTER");
		}
	}
	h.area = (unsigned long)area;
	/* mremap of hugetlb wants an aligned destination */
	h.spare = ((unsigned long)spare + ps - 1) & ~(ps - 1);
	h.fd = uffd;
	write_all(out, &h, sizeof(h));
	if (h.err)
		_exit(0);

	while (read(in, &c, sizeof(c)) == sizeof(c)) {
		switch (c.op) {
		case OP_EXIT:
			_exit(0);
		case OP_DROP_UFFD:
			/* The monitor's must be the only reference: see unread_close. */
			target_reply(out, close(uffd), 0);
			break;
		case OP_MUNMAP:
			target_reply(out, munmap((void *)c.addr, c.len), 0);
			break;
		case OP_MADVISE:
			target_reply(out, madvise((void *)c.addr, c.len, c.advice), 0);
			break;
		case OP_MREMAP:
			p = mremap((void *)c.addr, c.len, c.len, MREMAP_MAYMOVE | MREMAP_FIXED,
				   (void *)c.to);
			target_reply(out, p == MAP_FAILED ? -1 : 0, 0);
			break;
		case OP_FORK:
			/* The child reads a missing page of its copy, and exits with it. */
			pid = fork();
			if (!pid)
				_exit(read_byte((void *)c.addr));
			status = 0;
			if (pid > 0)
				waitpid(pid, &status, 0);
			target_reply(out, pid, status);
			break;
		case OP_TOUCH:
			target_reply(out, 0, read_byte((void *)c.addr));
			break;
		case OP_FORK_LOOP:
			do_fork_loop(out, area, ps);
			break;
		}
	}
	_exit(0);
}

static void target_send(struct target *t, const struct cmd *c)
{
	if (write(t->cmd, c, sizeof(*c)) != sizeof(*c))
		diag("write to the target: %s", strerror(errno));
}

static void target_close(struct target *t)
{
	close(t->cmd);
	close(t->rep);
	if (t->uffd >= 0)
		close(t->uffd);
	t->uffd = -1;
}

static void target_abort(struct target *t);

/* Start a target with @npages registered pages: CASE_PASS, _SKIP or _FAIL. */
static int target_start(struct target *t, const struct mem_type *mt, int npages)
{
	struct cmd c = { .op = OP_DROP_UFFD };
	int down[2], up[2], pidfd, status;
	struct hello h;
	struct reply r;

	memset(t, 0, sizeof(*t));
	t->mt = mt;
	t->ps = mt->page_size();
	t->uffd = -1;
	if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC)) {
		diag("pipe: %s", strerror(errno));
		return CASE_FAIL;
	}
	fflush(stdout);
	fflush(stderr);
	t->pid = fork();
	if (!t->pid) {
		close(down[1]);
		close(up[0]);
		target_main(mt, down[0], up[1], npages);
	}
	close(down[0]);
	close(up[1]);
	t->cmd = down[1];
	t->rep = up[0];
	if (t->pid < 0) {
		diag("fork: %s", strerror(errno));
		return CASE_FAIL;
	}
	if (!readable(t->rep, EVENT_MS) || read(t->rep, &h, sizeof(h)) != sizeof(h)) {
		diag("%s: the target did not start", mt->name);
		return CASE_FAIL;
	}
	if (h.err) {
		waitpid(t->pid, &status, 0);
		target_close(t);
		if (h.skip)
			return case_skip("%s: target: %s: %s", mt->name, h.what, strerror(h.err));
		diag("%s: target: %s: %s", mt->name, h.what, strerror(h.err));
		return CASE_FAIL;
	}
	pidfd = syscall(__NR_pidfd_open, t->pid, 0);
	if (pidfd >= 0) {
		t->uffd = syscall(__NR_pidfd_getfd, pidfd, h.fd, 0);
		close(pidfd);
	}
	if (t->uffd < 0) {
		diag("pidfd_open, pidfd_getfd: %s", strerror(errno));
		target_abort(t);
		return CASE_FAIL;
	}
	target_send(t, &c);
	if (!readable(t->rep, EVENT_MS) || read(t->rep, &r, sizeof(r)) != sizeof(r) || r.ret) {
		diag("the target could not close its uffd");
		target_abort(t);
		return CASE_FAIL;
	}
	t->area = h.area;
	t->spare = h.spare;
	return CASE_PASS;
}

/*
 * Whether the target stays out of D state: @t0 is when it was released,
 * by a kill, a close or the monitor's exit, or its event being read.
 */
static int check_not_d(pid_t pid, double t0, const char *what)
{
	if (now() < t0 + DSTATE_GRACE_S || task_state(pid) != 'D')
		return 0;
	diag("%s: target %d in D state %.2f s after it was released", what, pid, now() - t0);
	return -1;
}

/* Wait up to REAP_S after @t0 for the target to exit, and reap it. */
static int target_reap(struct target *t, double t0, const char *what)
{
	int status;

	while (now() < t0 + REAP_S) {
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->pid = 0;
			return 0;
		}
		if (check_not_d(t->pid, t0, what))
			break;
		usleep(2000);
	}
	diag("%s: target %d not gone %.1f s after it was released (state %c)", what,
	     t->pid, now() - t0, task_state(t->pid) ?: '-');
	return -1;
}

/* Wait up to REAP_S after @t0 for the target's reply to its last command. */
static int target_wait(struct target *t, double t0, const char *what, struct reply *r)
{
	while (now() < t0 + REAP_S) {
		if (readable(t->rep, 2)) {
			if (read(t->rep, r, sizeof(*r)) == sizeof(*r))
				return 0;
			diag("%s: the target died (state %c)", what, task_state(t->pid) ?: '-');
			return -1;
		}
		if (check_not_d(t->pid, t0, what))
			return -1;
	}
	diag("%s: the target's %s did not return %.1f s after it was released (state %c)",
	     what, what, now() - t0, task_state(t->pid) ?: '-');
	return -1;
}

/* Tell the target to exit, reap it: nothing may be read after that. */
static int target_finish(struct target *t)
{
	struct cmd c = { .op = OP_EXIT };
	int bad = 0;

	target_send(t, &c);
	bad |= target_reap(t, now(), "exit");
	if (t->uffd >= 0)
		bad |= no_message(t->uffd, "after the target exited");
	target_close(t);
	return bad;
}

static void target_abort(struct target *t)
{
	int status;

	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, &status, 0);
	}
	target_close(t);
}

/* Page @i of the target's range. */
static unsigned long pg(struct target *t, int i)
{
	return t->area + i * t->ps;
}

/* UFFDIO_COPY of page @i filled with its byte. */
static int copy_page(int uffd, struct target *t, int i, unsigned char byte)
{
	static char *src;
	static size_t len;
	int ret;

	if (len != t->ps) {
		free(src);
		src = malloc(t->ps);
		len = src ? t->ps : 0;
		if (!src)
			return -ENOMEM;
	}
	memset(src, byte, len);
	ret = uffd_copy(uffd, (void *)pg(t, i), src, len);
	return ret;
}

/*
 * Start the call that raises @kind; @want gets the messages it must produce,
 * in order, and the number of them is returned. mremap() moves the pages
 * and then unmaps the old range: REMAP, then UNMAP of the old range (the
 * documentation's "implicitly (e.g. during mremap())").
 */
static int start_event(struct target *t, enum ev_kind kind, int advice,
		       struct uffd_msg want[2])
{
	unsigned long a = pg(t, 2), len = 2 * t->ps;
	struct cmd c = { .addr = a, .len = len, .advice = advice };
	int n = 1;

	memset(want, 0, 2 * sizeof(*want));
	switch (kind) {
	case EV_FORK:
		c.op = OP_FORK;
		/* Not page aligned: the fault must report the page. */
		c.addr = pg(t, 1) + 5;
		want[0].event = UFFD_EVENT_FORK;
		break;
	case EV_REMAP:
		c.op = OP_MREMAP;
		c.to = t->spare;
		want[0].event = UFFD_EVENT_REMAP;
		want[0].arg.remap.from = a;
		want[0].arg.remap.to = t->spare;
		want[0].arg.remap.len = len;
		want[1].event = UFFD_EVENT_UNMAP;
		want[1].arg.remove.start = a;
		want[1].arg.remove.end = a + len;
		n = 2;
		break;
	case EV_REMOVE:
		c.op = OP_MADVISE;
		want[0].event = UFFD_EVENT_REMOVE;
		want[0].arg.remove.start = a;
		want[0].arg.remove.end = a + len;
		break;
	case EV_UNMAP:
		c.op = OP_MUNMAP;
		want[0].event = UFFD_EVENT_UNMAP;
		want[0].arg.remove.start = a;
		want[0].arg.remove.end = a + len;
		break;
	}
	target_send(t, &c);
	return n;
}

/*
 * Wait for the event the call raises: 1 when it is queued, 0 when the
 * call returned without one (*@r is its reply), -1 when neither came.
 */
static int wait_event(struct target *t, struct reply *r)
{
	struct pollfd pfd[2] = {
		{ .fd = t->uffd, .events = POLLIN },
		{ .fd = t->rep, .events = POLLIN },
	};

	if (poll(pfd, 2, EVENT_MS) <= 0)
		return -1;
	if (pfd[0].revents & POLLIN)
		return 1;
	if (read(t->rep, r, sizeof(*r)) != sizeof(*r))
		return -1;
	return 0;
}

/*
 * The fork event was read and the child is running: its read of page 1
 * must fault on the child's uffd, @ufd, and only there.
 */
static int serve_fork_child(struct target *t, int ufd)
{
	struct uffd_msg msg, want = { .event = UFFD_EVENT_PAGEFAULT };
	const char *when = "fork: the child's read of page 1";
	int ret, bad = 0;

	want.arg.pagefault.address = pg(t, 1);
	ret = uffd_race_read_msg(ufd, &msg, EVENT_MS);
	if (ret != 1) {
		diag("%s raised no fault on msg.arg.fork.ufd within %d ms: %s", when,
		     EVENT_MS, ret ? strerror(errno) : "timeout");
		if (uffd_race_read_msg(t->uffd, &msg, 0) == 1)
			diag("%s: the parent's uffd had %s", when, describe(&msg));
		return -1;
	}
	if (check_msg(when, &msg, &want))
		return -1;
	if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) {
		diag("%s came as a write fault (flags %#llx)", when, msg.arg.pagefault.flags);
		bad = -1;
	}
	ret = copy_page(ufd, t, 1, page_byte(0, 1));
	if (ret) {
		diag("%s: UFFDIO_COPY on the child's uffd: %s", when, strerror(-ret));
		return -1;
	}
	return bad;
}

/*
 * One call: each event must be queued while the call waits, UFFDIO_COPY
 * must fail with EAGAIN meanwhile, the events must be exact, and after they
 * are read the call returns and UFFDIO_COPY works.
 */
static int event_round(const struct mem_type *mt, enum ev_kind kind, int advice,
		       const char *name)
{
	struct uffd_msg want[2], msg;
	struct target t;
	struct reply r;
	int ret, nwant, bad = 0, ufd = -1;
	char when[96];
	double t0 = 0;

	ret = target_start(&t, mt, NPAGES);
	if (ret)
		return ret;
	nwant = start_event(&t, kind, advice, want);
	for (int k = 0; k < nwant; k++) {
		const char *ev = event_name(want[k].event);

		ret = wait_event(&t, &r);
		if (ret <= 0) {
			if (!ret && r.ret < 0 && kind == EV_REMAP && !strcmp(mt->name, "hugetlb")) {
				target_abort(&t);
				return case_skip("%s: mremap of hugetlb: %s", name,
						 strerror(r.err));
			}
			if (ret)
				diag("%s: no %s event within %d ms", name, ev, EVENT_MS);
			else
				diag("%s: %s returned %ld (%s) and raised no %s event", name,
				     ev_calls[kind], r.ret,
				     r.ret < 0 ? strerror(r.err) : "success", ev);
			target_abort(&t);
			return CASE_FAIL;
		}
		if (readable(t.rep, 0)) {
			diag("%s: %s returned with its %s event unread, it must wait",
			     name, ev_calls[kind], ev);
			bad = -1;
		}
		ret = copy_page(t.uffd, &t, 5, page_byte(0, 5));
		if (ret != -EAGAIN) {
			diag("%s: UFFDIO_COPY with the %s event pending: %d (%s), expected -EAGAIN",
			     name, ev, ret, ret ? strerror(-ret) : "success");
			bad = -1;
		}
		snprintf(when, sizeof(when), "%s: %s event %d of %d", name, ev_calls[kind],
			 k + 1, nwant);
		ret = uffd_race_read_msg(t.uffd, &msg, 0);
		if (ret != 1) {
			diag("%s: POLLIN but read(uffd) gave %s", when,
			     ret ? strerror(errno) : "nothing");
			target_abort(&t);
			return CASE_FAIL;
		}
		t0 = now();
		if (check_msg(when, &msg, &want[k]))
			bad = -1;
		if (msg.event == UFFD_EVENT_FORK) {
			ufd = msg.arg.fork.ufd;
			if (fcntl(ufd, F_GETFD) < 0) {
				diag("%s: msg.arg.fork.ufd %d is not an open fd", when, ufd);
				bad = -1;
				ufd = -1;
			} else if (serve_fork_child(&t, ufd)) {
				bad = -1;
			}
		}
		/* Another event than the one the call waits for. */
		if (msg.event != want[k].event) {
			target_abort(&t);
			return CASE_FAIL;
		}
	}
	if (target_wait(&t, t0, ev_calls[kind], &r)) {
		target_abort(&t);
		return CASE_FAIL;
	}
	if (ufd >= 0)
		close(ufd);
	if (r.ret < 0) {
		diag("%s: %s failed: %s", name, ev_calls[kind], strerror(r.err));
		bad = -1;
	}
	if (kind == EV_FORK && r.ret > 0 &&
	    (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != page_byte(0, 1))) {
		diag("%s: the child read %#x from page 1 (wait status %#x), expected %#x",
		     name, WEXITSTATUS(r.status), r.status, page_byte(0, 1));
		bad = -1;
	}
	ret = copy_page(t.uffd, &t, 4, page_byte(0, 4));
	if (ret) {
		diag("%s: UFFDIO_COPY of page 4 after %s's events were read: %s, expected success",
		     name, ev_calls[kind], strerror(-ret));
		bad = -1;
	}
	snprintf(when, sizeof(when), "%s: after %s returned", name, ev_calls[kind]);
	bad |= no_message(t.uffd, when);
	bad |= target_finish(&t);
	return bad ? CASE_FAIL : CASE_PASS;
}

static bool is_anon(const struct mem_type *mt)
{
	return !strcmp(mt->name, "anon");
}

/* The advice that drops pages of @mt: what mem_types' zap uses. */
static int drop_advice(const struct mem_type *mt)
{
	return is_anon(mt) ? MADV_DONTNEED : MADV_REMOVE;
}

/* fork, remap, unmap: @c->data is the event's kind. */
static int case_event(const struct named_case *c, const struct mem_type *mt)
{
	enum ev_kind kind = *(const enum ev_kind *)c->data;

	return event_round(mt, kind, drop_advice(mt), ev_calls[kind]);
}

static int case_remove(const struct named_case *c, const struct mem_type *mt)
{
	int ret = CASE_PASS;

	/* Both drop shared memory's pages, and both raise REMOVE. */
	if (!is_anon(mt))
		ret = event_round(mt, EV_REMOVE, MADV_REMOVE, "MADV_REMOVE");
	if (ret == CASE_PASS)
		ret = event_round(mt, EV_REMOVE, MADV_DONTNEED, "MADV_DONTNEED");
	return ret;
}

/* After the target is gone, UFFDIO_COPY must fail with ESRCH (or ENOSPC). */
static int copy_after_exit(struct target *t, const char *when)
{
	int ret;

	watch("UFFDIO_COPY after the target exited");
	ret = copy_page(t->uffd, t, 1, 0x5a);
	watch(NULL);
	if (ret == -ESRCH || ret == -ENOSPC)
		return 0;
	diag("%s: UFFDIO_COPY returned %d (%s), expected -ESRCH (-ENOSPC before 5.2)",
	     when, ret, ret ? strerror(-ret) : "success");
	return -1;
}

static int case_exit_copy(const struct named_case *c, const struct mem_type *mt)
{
	struct uffd_msg msg, want = { .event = UFFD_EVENT_PAGEFAULT };
	struct cmd cmd = { .op = OP_EXIT };
	struct target t;
	int ret, bad = 0;

	/* A target that exits on its own. */
	ret = target_start(&t, mt, NPAGES);
	if (ret)
		return ret;
	ret = copy_page(t.uffd, &t, 0, 0x5a);
	if (ret) {
		diag("UFFDIO_COPY while the target lives: %s", strerror(-ret));
		bad = -1;
	}
	target_send(&t, &cmd);
	if (target_reap(&t, now(), "exit")) {
		target_abort(&t);
		return CASE_FAIL;
	}
	bad |= no_message(t.uffd, "exit: after the target exited");
	bad |= copy_after_exit(&t, "exit");
	target_close(&t);

	/* A target killed while blocked in a MISSING fault. */
	ret = target_start(&t, mt, NPAGES);
	if (ret)
		return ret;
	cmd.op = OP_TOUCH;
	cmd.addr = pg(&t, 1) + 5;
	target_send(&t, &cmd);
	want.arg.pagefault.address = pg(&t, 1);
	ret = uffd_race_read_msg(t.uffd, &msg, EVENT_MS);
	if (ret != 1 || check_msg("kill: the target's read of page 1", &msg, &want)) {
		if (ret != 1)
			diag("kill: the target's read of page 1 raised no fault within %d ms",
			     EVENT_MS);
		target_abort(&t);
		return CASE_FAIL;
	}
	kill(t.pid, SIGKILL);
	if (target_reap(&t, now(), "SIGKILL in a fault")) {
		target_abort(&t);
		return CASE_FAIL;
	}
	bad |= no_message(t.uffd, "kill: after the target was killed");
	bad |= copy_after_exit(&t, "kill");
	target_close(&t);
	return bad ? CASE_FAIL : CASE_PASS;
}

enum unread_how { BY_KILL, BY_CLOSE, BY_MONITOR_EXIT };

static const char *const how_names[] = {
	[BY_KILL] = "SIGKILL", [BY_CLOSE] = "close(uffd)",
	[BY_MONITOR_EXIT] = "monitor exit",
};

/*
 * Raise @kind and leave it unread; then release the target @how: it must
 * be done within REAP_S and not stay in D state.
 */
static int unread_round(const struct mem_type *mt, enum ev_kind kind, enum unread_how how)
{
	struct uffd_msg want[2];
	struct target t;
	struct reply r;
	int ret, bad = 0, go[2], status;
	char when[96], state;
	double t0 = 0;
	pid_t mon;

	snprintf(when, sizeof(when), "%s with its %s event unread, then %s",
		 ev_calls[kind], kind == EV_FORK ? "FORK" : kind == EV_REMAP ? "REMAP" :
		 kind == EV_REMOVE ? "REMOVE" : "UNMAP", how_names[how]);
	ret = target_start(&t, mt, NPAGES);
	if (ret)
		return ret;
	start_event(&t, kind, drop_advice(mt), want);
	ret = wait_event(&t, &r);
	if (ret <= 0) {
		target_abort(&t);
		if (!ret && r.ret < 0 && kind == EV_REMAP && !strcmp(mt->name, "hugetlb"))
			return case_skip("mremap of hugetlb: %s", strerror(r.err));
		diag("%s: no event within %d ms", when, EVENT_MS);
		return CASE_FAIL;
	}
	/* Let it settle into its wait: it must be there, in D state. */
	usleep(20000);
	state = task_state(t.pid);
	if (state != 'D')
		diag("%s: the waiting target is in state %c, not D", when, state ?: '-');

	switch (how) {
	case BY_KILL:
		t0 = now();
		kill(t.pid, SIGKILL);
		if (target_reap(&t, t0, when)) {
			target_abort(&t);
			return CASE_FAIL;
		}
		/* The waiter withdraws its event when it dies. */
		bad |= no_message(t.uffd, when);
		bad |= copy_after_exit(&t, when);
		target_close(&t);
		return bad ? CASE_FAIL : CASE_PASS;
	case BY_CLOSE:
		watch("close(uffd) with an event unread");
		t0 = now();
		close(t.uffd);
		watch(NULL);
		t.uffd = -1;
		break;
	case BY_MONITOR_EXIT:
		if (pipe(go)) {
			diag("pipe: %s", strerror(errno));
			target_abort(&t);
			return CASE_FAIL;
		}
		fflush(stdout);
		mon = fork();
		if (!mon) {
			char b;

			/* The monitor holds the uffd and exits without reading. */
			close(go[1]);
			if (read(go[0], &b, 1) < 0)
				_exit(1);
			_exit(0);
		}
		close(t.uffd);
		t.uffd = -1;
		close(go[0]);
		t0 = now();
		close(go[1]);
		if (mon < 0 || waitpid(mon, &status, 0) != mon) {
			diag("%s: the monitor process: %s", when, strerror(errno));
			target_abort(&t);
			return CASE_FAIL;
		}
		break;
	}
	if (target_wait(&t, t0, when, &r)) {
		target_abort(&t);
		return CASE_FAIL;
	}
	if (r.ret < 0) {
		diag("%s: %s failed: %s", when, ev_calls[kind], strerror(r.err));
		bad = -1;
	}
	/* The child's copy lost its uffd with the parent's: it reads zeros. */
	if (kind == EV_FORK && r.ret > 0 && (!WIFEXITED(r.status) || WEXITSTATUS(r.status))) {
		diag("%s: the child read %#x from page 1 (wait status %#x), expected 0",
		     when, WEXITSTATUS(r.status), r.status);
		bad = -1;
	}
	bad |= target_finish(&t);
	return bad ? CASE_FAIL : CASE_PASS;
}

/* @c->data: how the queued event is left unread. */
static int case_unread(const struct named_case *c, const struct mem_type *mt)
{
	enum unread_how how = *(const enum unread_how *)c->data;
	int bad = 0;

	for (enum ev_kind k = EV_FORK; k <= EV_UNMAP; k++) {
		int ret = unread_round(mt, k, how);

		if (ret == CASE_SKIP)
			diag("%s: mremap of hugetlb unsupported, skipped", mt->name);
		else if (ret)
			bad = -1;
	}
	return bad ? CASE_FAIL : CASE_PASS;
}

/* fork_race: the monitor's background copier. */
struct copier {
	struct target *t;
	int npages;
	unsigned int round, rand;
	atomic_uchar copied[RACE_MAX_PAGES];	/* UFFDIO_COPY returned 0 */
	atomic_int done;
	int err, err_page;
	long eagain;
};

static void *copier_thread(void *arg)
{
	struct copier *cp = arg;
	struct target *t = cp->t;
	unsigned int state = cp->rand;
	int perm[RACE_MAX_PAGES], left = cp->npages;
	char *src = malloc(t->ps);
	int last = -1;

	if (!src) {
		cp->err = -ENOMEM;
		atomic_store(&cp->done, 1);
		return NULL;
	}
	for (int i = 0; i < cp->npages; i++)
		perm[i] = i;
	for (int i = cp->npages - 1; i > 0; i--) {
		int j = rnd(&state) % (i + 1), tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	while (left && !atomic_load(&race->stop)) {
		for (int k = 0; k < cp->npages; k++) {
			int i = perm[k], ret;

			if (atomic_load(&cp->copied[i]))
				continue;
			if (page_byte(cp->round, i) != last) {
				last = page_byte(cp->round, i);
				memset(src, last, t->ps);
			}
			ret = uffd_copy(t->uffd, (void *)pg(t, i), src, t->ps);
			if (!ret) {
				atomic_store(&cp->copied[i], 1);
				left--;
			} else if (ret == -EAGAIN) {
				/* A fork is in flight: try this page later. */
				cp->eagain++;
			} else {
				cp->err = ret;
				cp->err_page = i;
				goto out;
			}
			/* Spread the copies over several forks. */
			if (!(rnd(&state) % 4))
				usleep(rnd(&state) % 200);
		}
		if (left)
			usleep(100);
	}
out:
	free(src);
	atomic_store(&cp->done, 1);
	return NULL;
}

struct race_stats {
	int rounds, forks, partial;
	long checked, eagain;
	int faults_shown, wrong_shown;	/* at most RACE_MAX_BAD lines each */
};

/*
 * The fork event was read: serve the child's uffd @ufd until the child has
 * checked the snapshot. Any fault there is a snapshot page it lacks.
 */
static int race_serve_child(struct target *t, int ufd, struct race_stats *s)
{
	double end = now() + EVENT_MS / 1000.0;
	int bad = 0, n, page, faults = 0, snapped = 0;
	struct uffd_msg msg;

	while (!atomic_load(&race->child_done)) {
		if (now() > end) {
			diag("round %u: the child did not finish within %d ms", race->round,
			     EVENT_MS);
			return -1;
		}
		n = uffd_race_read_msg(ufd, &msg, 10);
		if (n < 0) {
			diag("round %u: read(child's uffd): %s", race->round, strerror(errno));
			return -1;
		}
		if (!n)
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			diag("round %u: the child's uffd: read %s, expected only PAGEFAULT",
			     race->round, describe(&msg));
			if (msg.event == UFFD_EVENT_FORK)
				close(msg.arg.fork.ufd);
			bad = -1;
			continue;
		}
		page = (msg.arg.pagefault.address - t->area) / t->ps;
		faults++;
		if (s->faults_shown++ < RACE_MAX_BAD)
			diag("round %u: page %d (%s): MISSING fault in the child",
			     race->round, page, page >= 0 && page < race->npages &&
			     race->snap[page] ? "copied before the fork event was read" :
			     "not in the snapshot");
		bad = -1;
		/* Let the child go on: it will find the marker, not the page. */
		n = copy_page(ufd, t, page, MARKER);
		if (n && n != -EEXIST) {
			diag("round %u: UFFDIO_COPY on the child's uffd: %s", race->round,
			     strerror(-n));
			return -1;
		}
	}
	for (int i = 0; i < race->nbad && i < RACE_MAX_BAD; i++) {
		if (s->wrong_shown++ < RACE_MAX_BAD)
			diag("round %u: page %d offset %d: the child read %#x, expected %#x%s",
			     race->round, race->bad[i].page, race->bad[i].off,
			     race->bad[i].got, race->bad[i].want,
			     race->bad[i].got == MARKER ? " (the marker: the page was missing)" :
			     "");
		bad = -1;
	}
	if (bad) {
		for (int i = 0; i < race->npages; i++)
			snapped += race->snap[i];
		/* The snapshot: pages copied before the fork event was read. */
		diag("round %u, fork %d: %d of the %d snapshot pages wrong in the child, %d faults",
		     race->round, s->forks, race->nbad, snapped, faults);
	}
	return bad;
}

static int race_round(const struct mem_type *mt, unsigned int round, unsigned int *state,
		      struct race_stats *s)
{
	size_t ps = mt->page_size();
	int maxp = ps > 65536 ? 12 : RACE_MAX_PAGES;
	int npages = maxp / 4 + rnd(state) % (maxp - maxp / 4 + 1);
	struct copier *cp;
	struct cmd c = { .op = OP_FORK_LOOP };
	struct uffd_msg msg, want = { .event = UFFD_EVENT_FORK };
	double end = now() + 20;
	struct target t;
	struct reply r;
	pthread_t thr;
	int ret, bad = 0;

	memset(race, 0, sizeof(*race));
	race->npages = npages;
	race->round = round;
	ret = target_start(&t, mt, npages);
	if (ret)
		return ret;
	cp = calloc(1, sizeof(*cp));
	if (!cp) {
		target_abort(&t);
		return CASE_FAIL;
	}
	cp->t = &t;
	cp->npages = npages;
	cp->round = round;
	cp->rand = rnd(state);
	target_send(&t, &c);
	pthread_create(&thr, NULL, copier_thread, cp);

	for (;;) {
		int ufd, n = 0;

		if (atomic_load(&cp->done))
			atomic_store(&race->stop, 1);
		if (atomic_load(&race->stop) && readable(t.rep, 0))
			break;
		if (now() > end) {
			diag("round %u: no end after 20 s (%d forks)", round, s->forks);
			bad = -1;
			break;
		}
		if (!readable(t.uffd, 10))
			continue;
		/*
		 * The fork event is queued: dup_mmap() is over and no COPY can
		 * succeed until it is read. What succeeded so far must be in the
		 * child, which will not run before the read.
		 */
		atomic_store(&race->child_done, 0);
		race->nbad = 0;
		for (int i = 0; i < npages; i++) {
			race->snap[i] = atomic_load(&cp->copied[i]);
			n += race->snap[i];
		}
		if (uffd_race_read_msg(t.uffd, &msg, 0) != 1) {
			diag("round %u: POLLIN but nothing to read", round);
			bad = -1;
			break;
		}
		if (check_msg("fork_race: the target's uffd", &msg, &want)) {
			bad = -1;
			break;
		}
		ufd = msg.arg.fork.ufd;
		s->forks++;
		s->checked += n;
		s->partial += n > 0 && n < npages;
		if (race_serve_child(&t, ufd, s))
			bad = -1;
		close(ufd);
		if (bad)
			break;
	}
	atomic_store(&race->stop, 1);
	pthread_join(thr, NULL);
	s->eagain += cp->eagain;
	if (cp->err) {
		diag("round %u: UFFDIO_COPY of page %d: %s", round, cp->err_page,
		     strerror(-cp->err));
		bad = -1;
	}
	free(cp);
	if (bad) {
		target_abort(&t);
		return CASE_FAIL;
	}
	if (read(t.rep, &r, sizeof(r)) != sizeof(r) || r.ret < 0) {
		diag("round %u: the target's fork loop failed", round);
		target_abort(&t);
		return CASE_FAIL;
	}
	return target_finish(&t) ? CASE_FAIL : CASE_PASS;
}

static int case_fork_race(const struct named_case *c, const struct mem_type *mt)
{
	unsigned int state = opts.rand ^ (unsigned int)(mt - mem_types) * 0x9e3779b9;
	struct race_stats s = { 0 };
	double end = now() + opts.seconds;
	int ret = CASE_PASS;

	race = mmap(NULL, sizeof(*race), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (race == MAP_FAILED) {
		diag("mmap: %s", strerror(errno));
		return CASE_FAIL;
	}
	while (s.rounds < opts.rounds && now() < end) {
		ret = race_round(mt, s.rounds + 1, &state, &s);
		if (ret)
			break;
		s.rounds++;
	}
	diag("fork_race.%s: %d rounds, %d forks (%d partly copied), %ld pages checked, %ld EAGAIN",
	     mt->name, s.rounds, s.forks, s.partial, s.checked, s.eagain);
	if (ret == CASE_PASS && !s.partial)
		diag("fork_race.%s: no fork came while the range was partly copied", mt->name);
	return ret;
}

static const enum ev_kind ev_kinds[] = { EV_FORK, EV_REMAP, EV_REMOVE, EV_UNMAP };
static const enum unread_how unread_hows[] = { BY_KILL, BY_CLOSE, BY_MONITOR_EXIT };

static const struct named_case cases[] = {
	{ .name = "fork", .fn = case_event, .mem = MEM_ALL, .data = &ev_kinds[EV_FORK] },
	{ .name = "remap", .fn = case_event, .mem = MEM_ALL, .data = &ev_kinds[EV_REMAP] },
	{ .name = "remove", .fn = case_remove, .mem = MEM_ALL },
	{ .name = "unmap", .fn = case_event, .mem = MEM_ALL, .data = &ev_kinds[EV_UNMAP] },
	{ .name = "exit_copy", .fn = case_exit_copy, .mem = MEM_ALL },
	{ .name = "unread_kill", .fn = case_unread, .mem = MEM_ALL,
	  .data = &unread_hows[BY_KILL] },
	{ .name = "unread_close", .fn = case_unread, .mem = MEM_ALL,
	  .data = &unread_hows[BY_CLOSE] },
	{ .name = "unread_monitor_exit", .fn = case_unread, .mem = MEM_ALL,
	  .data = &unread_hows[BY_MONITOR_EXIT] },
	{ .name = "fork_race", .fn = case_fork_race, .mem = MEM_ALL },
};

int main(int argc, char **argv)
{
	parse_test_opts(argc, argv, &opts);
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT + opts.seconds, &opts, NULL);
}
