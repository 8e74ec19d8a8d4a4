// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-release-kworker: seed 000 through the path KVM's async page fault
 * worker takes. The debug module's gup trigger faults a MISSING-armed range
 * of another process in from a kworker (mmap_read_lock, remote GUP with a
 * "locked" flag, unlock if still held); that process's monitor resolves a
 * few of the faults and then closes the userfaultfd while the kworker is
 * still inside GUP.
 *
 * The livelock needs the close to set the context released while the
 * kworker holds mmap_lock between two faults: one woken by the last copy
 * drops the lock and queues behind the closing writer instead. Closing
 * right after the copy hits that window only when the kworker's vCPU
 * wakes it at once, which a busy host does not do. So after the resolved
 * pages the range has a stretch of present pages that the kworker walks
 * with mmap_lock held, and the monitor waits a random delay of up to
 * twice that walk's time, measured first with the same trigger, before
 * it closes: some rounds land in the walk however slowly the guest runs.
 *
 *  release_kworker.anon    anonymous memory
 *  release_kworker.shmem   a shared memfd mapping
 *
 * Each round must see close() return and the kworker's GUP finish, each
 * within 5 s. On a kernel where the fault on the released context returns
 * VM_FAULT_NOPAGE, GUP retries for ever with mmap_lock held for read and
 * close() waits for it for write: no signal reaches a kworker, so neither
 * ever finishes. The case then reports the hang, waits for the hung-task
 * detector to name the closing task (so that the report falls within this
 * test), and fails; that task and the kworker stay stuck until reboot.
 * Run it last.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "uffd-debug-common.h"

#define PAGES		32	/* missing pages: resolved ones, then the rest */
#define PRESENT		2048	/* present pages after the resolved ones */
#define HANG_S		5
#define HUNG_WAIT_S	45

static long page;
static struct test_opts opts = { .rounds = 1000, .seconds = 20 };

/*
 * The process whose range the kworker faults in: populate pages @resolve
 * to @resolve + PRESENT - 1, arm the range, tell the parent where it is,
 * resolve @resolve faults, close the userfaultfd @delay_us after the last
 * copy, say so, and wait to be killed.
 */
static void __noreturn target(const struct mem_type *mt, int resolve, long delay_us, int out)
{
	static char src[4096];
	struct uffd_msg msg;
	size_t len = (PAGES + PRESENT) * page;
	char *p;
	int uffd, done = 0, null = open("/dev/null", O_WRONLY);

	/* A stuck target must not hold the test's output open. */
	if (null >= 0) {
		dup2(null, 1);
		dup2(null, 2);
	}
	memset(src, 0x6b, sizeof(src));
	p = mt->map(len);
	if (!p)
		_exit(2);
	memset(p + resolve * page, 0x5a, PRESENT * page);
	uffd = uffd_race_open_api(0, NULL);
	if (uffd < 0 || uffd_register_mode(uffd, p, len, UFFDIO_REGISTER_MODE_MISSING))
		_exit(2);
	if (write(out, &p, sizeof(p)) != sizeof(p))
		_exit(2);
	while (done < resolve && uffd_race_read_msg(uffd, &msg, 5000) == 1) {
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (uffd_copy(uffd, (void *)(unsigned long)
			      (msg.arg.pagefault.address & ~(page - 1)), src, page) == 0)
			done++;
	}
	if (delay_us)
		usleep(delay_us);
	close(uffd);
	if (write(out, "c", 1) != 1)
		_exit(2);
	for (;;)
		pause();
}

/* The trigger's outcome on one line, for a diagnostic. */
static char *one_line(char *text)
{
	for (char *c = text; c && *c; c++)
		if (*c == '\n')
			*c = c[1] ? ';' : '\0';
	return text ? text : "?";
}

/* Wait up to @seconds for one byte on @fd; true when it came. */
static bool wait_byte(int fd, double seconds)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&pfd, 1, seconds * 1000) == 1 && read(fd, &c, 1) == 1;
}

static char *gup_wait_done(double seconds)
{
	double end = now() + seconds;
	char *text;

	for (;;) {
		text = uffd_debug_read("gup");
		if (!text || strstr(text, "state done\n") || now() > end)
			return text;
		free(text);
		usleep(10000);
	}
}

/*
 * The closing task is stuck for good: wait until the hung-task detector
 * reports it, so that the report lands while this test runs.
 */
static void wait_hung_report(pid_t tid)
{
	char rec[1024], want[64];
	double end = now() + HUNG_WAIT_S;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ssize_t n;

	if (fd < 0) {
		diag("/dev/kmsg: %s", strerror(errno));
		return;
	}
	snprintf(want, sizeof(want), ":%d blocked for more than", tid);
	while (now() < end) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0) {
			if (errno == EAGAIN)
				usleep(200000);
			continue;	/* EPIPE: overwritten records */
		}
		rec[n] = '\0';
		if (strstr(rec, want)) {
			/* A record is "prefix;text\n": print the text. */
			char *text = strchr(rec, ';') ? strchr(rec, ';') + 1 : rec;

			text[strcspn(text, "\n")] = '\0';
			diag("the hung-task detector reports it: %s", text);
			close(fd);
			return;
		}
	}
	diag("no hung-task report for task %d within %d s", tid, HUNG_WAIT_S);
	close(fd);
}

/*
 * How long the kworker takes over PRESENT present pages of @mt, from the
 * trigger to the end of its GUP, in us: the longest of three, timed with
 * whatever load the guest has now. -1 when it cannot be had.
 */
static long walk_us(const struct mem_type *mt)
{
	size_t len = PRESENT * page;
	char *p = mt->map(len), *text;
	long us = -1, v;

	if (!p)
		return -1;
	memset(p, 0x5a, len);
	for (int i = 0; i < 3; i++) {
		int err = uffd_debug_write("gup", "%d %p %zu write", getpid(), p, len);

		if (err) {
			diag("gup trigger: %s%s", strerror(-err), err == -EBUSY ?
			     " (an earlier trigger's GUP never finished)" : "");
			break;
		}
		text = gup_wait_done(HANG_S);
		if (text && strstr(text, "state done\n") && text_number(text, "elapsed_us", &v) &&
		    v > us)
			us = v;
		free(text);
	}
	mt->unmap(p, len);
	return us;
}

static int case_release(const struct named_case *c, const struct mem_type *mt)
{
	int round, pfd[2], resolve, hit = 0;
	double t0 = now();
	unsigned int st = opts.rand;
	long res, walk, delay;
	char *p, *text, *before;
	pid_t pid;
	int err;

	walk = walk_us(mt);
	if (walk < 0) {
		diag("cannot time the kworker's walk of %d present pages", PRESENT);
		return CASE_FAIL;
	}
	diag("the kworker walks %d present pages in %ld us: close 0-%ld us after a copy",
	     PRESENT, walk, 2 * walk);
	before = uffd_debug_read("stats");
	for (round = 1; round <= opts.rounds && now() - t0 < opts.seconds; round++) {
		resolve = 1 + rnd(&st) % (PAGES / 2);
		delay = rnd(&st) % (2 * walk + 1);
		if (pipe(pfd))
			case_fail_fast("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			case_fail_fast("fork: %s", strerror(errno));
		if (!pid) {
			close(pfd[0]);
			target(mt, resolve, delay, pfd[1]);
		}
		close(pfd[1]);
		if (read(pfd[0], &p, sizeof(p)) != sizeof(p))
			case_fail_fast("round %d: the target did not arm its range", round);
		err = uffd_debug_write("gup", "%d %p %ld write", pid, p, (PAGES + PRESENT) * page);
		if (err) {
			diag("round %d: gup trigger: %s%s", round, strerror(-err), err == -EBUSY ?
			     " (an earlier trigger's GUP never finished)" : "");
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return CASE_FAIL;
		}

		if (!wait_byte(pfd[0], HANG_S)) {
			text = uffd_debug_read("gup");
			diag("round %d (%d resolved, closed %ld us on): close(uffd) hangs > %d s",
			     round, resolve, delay, HANG_S);
			diag("gup: %s", one_line(text));
			diag("GUP livelock on the released userfaultfd: the kworker spins");
			diag("with mmap_lock held, the closing task waits for it");
			kill(pid, SIGKILL);
			wait_hung_report(pid);
			return CASE_FAIL;
		}
		text = gup_wait_done(HANG_S);
		if (!text || !strstr(text, "state done\n")) {
			diag("round %d: close returned, the kworker GUP still runs after %d s: %s",
			     round, HANG_S, one_line(text));
			kill(pid, SIGKILL);
			return CASE_FAIL;
		}
		if (!text_number(text, "result", &res) || res <= 0) {
			diag("round %d: the kworker's GUP failed: %s", round, one_line(text));
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return CASE_FAIL;
		}
		hit += res == PAGES + PRESENT;
		free(text);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(pfd[0]);
	}
	text = uffd_debug_read("stats");
	diag("%d rounds in %.1f s, GUP faulted all %d pages in %d; no livelock",
	     round - 1, now() - t0, PAGES + PRESENT, hit);
	if (before && text && !strstr(text, "not available")) {
		long b, a;

		text_number(before, "fault_released.retry_lock_dropped", &b);
		text_number(text, "fault_released.retry_lock_dropped", &a);
		diag("faults on the released context that dropped mmap_lock and retried: %ld",
		     a - b);
	}
	free(before);
	free(text);
	return CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "release_kworker", .fn = case_release, .mem = MEM_ANON | MEM_SHMEM },
};

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	parse_test_opts(argc, argv, &opts);
	return run_cases(cases, ARRAY_SIZE(cases), opts.seconds + 2 * HANG_S + HUNG_WAIT_S + 20,
			 &opts, uffd_debug_missing());
}
