// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-debug-input: malformed input to the debug module's debugfs files.
 * Every write must get the errno the module documents
 * (Documentation/uffd-debug.md), never an oops, and leave the module
 * working. SKIPs without the module.
 *
 *  input.gup       every combination of good and bad pid, address, length
 *                  and flag fields (>1000 writes), judged against a model
 *                  of the parser; then lines too long, embedded NUL, blanks
 *  input.shmem     combinations of pid, fd and path selections, non-shmem
 *                  files (pipe, userfaultfd, directory, procfs, device,
 *                  hugetlbfs)
 *  input.stats     only "reset" is accepted
 *  input.contexts  read-only; reads of any size and offset
 *  input.random    random bytes to every writable file (-s SEED replays)
 *  input.exiting   triggers and selections naming a process as it exits
 *  input.still_working  every file still answers afterwards
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "uffd-debug-common.h"

#define CASE_TIMEOUT	120
#define NO_PID		"99999999"
/* The model's user address space end: 5-level paging's, the larger one. */
#define TASK_END	0x00fffffffffff000UL
#define GUP_MAX		(64UL << 20)

static long page;
static struct test_opts opts = { .rounds = 200, .seconds = 60 };
static int writes;

static int write_line(const char *file, const char *line)
{
	writes++;
	return uffd_debug_write_buf(file, line, strlen(line));
}

/* Wait for a trigger that was accepted, so that the next is not EBUSY. */
static bool gup_settle(void)
{
	double end = now() + 20;
	char *t;

	while (now() < end) {
		t = uffd_debug_read("gup");
		if (t && !strstr(t, "state running")) {
			free(t);
			return true;
		}
		free(t);
		usleep(5000);
	}
	diag("a trigger did not finish within 20 s");
	return false;
}

/* kstrtoul(s, 0): optional '+', 0x hex, leading-0 octal, else decimal. */
static bool model_ul(const char *s, unsigned long *v)
{
	int base = 10;
	char *end;

	if (*s == '+')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s[2])
		base = 16, s += 2;
	else if (s[0] == '0' && s[1])
		base = 8;
	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	*v = strtoul(s, &end, base);
	return !*end && !errno;
}

static bool model_pid(const char *s, long *pid)
{
	char *end;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	*pid = strtol(s, &end, 10);
	return !*end && !errno && *pid > 0 && *pid <= 0x7fffffff;
}

/*
 * What the module answers to a gup line made of @w: the checks in the
 * order it makes them. @mapped: the range is [base, base + mapped).
 */
static int model_gup(char **w, int n, unsigned long base, size_t mapped)
{
	unsigned long addr, len;
	long pid;

	if (n < 3 || n > 4)
		return -EINVAL;
	if (!model_pid(w[0], &pid) || !model_ul(w[1], &addr) || !model_ul(w[2], &len))
		return -EINVAL;
	if (n == 4 && strcmp(w[3], "write"))
		return -EINVAL;
	if (!len || addr % page || len % page)
		return -EINVAL;
	if (len > GUP_MAX)
		return -E2BIG;
	if (addr + len < addr || addr + len > TASK_END)
		return -EOVERFLOW;
	if (pid != getpid())
		return -ESRCH;
	if (addr < base || addr + len > base + mapped)
		return -EFAULT;
	return 0;
}

static bool check(const char *what, const char *line, int got, int want)
{
	if (got == want)
		return true;
	diag("%s \"%s\": got %s, want %s", what, line, got ? strerror(-got) : "success",
	     want ? strerror(-want) : "success");
	return false;
}

/*
 * Write the line made of the fields @f (NULL: left out) and check the
 * answer against the model: 0 when accepted as it should be, 1 when
 * refused as it should be, -1 when wrong.
 */
static int gup_combination(const char **f, char *line, unsigned long base,
			   size_t mapped)
{
	char *w[8], *buf, *s;
	int n = 0, got, want;

	line[0] = '\0';
	for (int x = 0; x < 4; x++)
		if (f[x])
			strcat(strcat(line, f[x]), " ");
	buf = strdup(line);
	for (s = strtok(buf, " "); s && n < 8; s = strtok(NULL, " "))
		w[n++] = s;
	want = model_gup(w, n, base, mapped);
	free(buf);
	got = write_line("gup", line);
	if (!check("gup", line, got, want))
		return -1;
	return got ? 1 : 0;
}

static int case_gup(const struct named_case *c, const struct mem_type *unused)
{
	char me[16], a[32], ahex[32], line[512];
	const char *const pids[] = { me, "0", "-1", "x", NO_PID, NULL };
	const char *const addrs[] = { a, "0", "0x1001", "junk", "0xfffffffffffff000", NULL };
	const char *const lens[] = { "4096", "0", "4095", "1099511627776", "-1", "z", NULL };
	const char *const flags[] = { NULL, "write", "w", "write write" };
	int bad = 0, got, i;
	char *p;

	/* Four mapped pages with an unmapped one after them. */
	p = mmap(NULL, 5 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p + 4 * page, page))
		case_fail_fast("mmap: %s", strerror(errno));
	memset(p, 1, 4 * page);
	snprintf(me, sizeof(me), "%d", getpid());
	snprintf(a, sizeof(a), "%lu", (unsigned long)p);
	snprintf(ahex, sizeof(ahex), "%p", p);

	for (int c = 0; c < 6 * 6 * 7 * 4; c++) {
		const char *f[4] = { pids[c / 168], addrs[c / 28 % 6], lens[c / 4 % 7],
				     flags[c % 4] };

		got = gup_combination(f, line, (unsigned long)p, 4 * page);
		bad += got < 0;
		if (!got && !gup_settle())
			return CASE_FAIL;
		case_progress();
	}

	/* Shapes the combinations do not make. */
	struct { char line[128]; int want; } sh[12];
	int nsh = 0;

#define SHAPE(w, ...) do {						\
		snprintf(sh[nsh].line, sizeof(sh[nsh].line), __VA_ARGS__); \
		sh[nsh++].want = (w);					\
	} while (0)
	SHAPE(0, "  %s\t%s  4096  write\n", me, a);
	SHAPE(0, "%s %s 16384", me, a);
	SHAPE(-EFAULT, "%s %s 20480", me, a);		/* into the hole */
	SHAPE(-EINVAL, "%s %s 4096 write\n\n", me, a);
	SHAPE(-EINVAL, "%s %s 4096abc", me, a);
	SHAPE(-EINVAL, "%s+1 %s 4096", me, a);
	SHAPE(0, "%s %s 0x1000 write", me, ahex);
	SHAPE(-EINVAL, "%s %s 18446744073709551616", me, a);
	/* Past the end of any x86_64 user address space (4 or 5 levels). */
	SHAPE(-EOVERFLOW, "%s 0x00fffffffffff000 0x2000", me);
	SHAPE(-ESRCH, "2 %s 4096", a);			/* kthreadd: no mm */
	SHAPE(-EINVAL, "4294967296 %s 4096", a);
#undef SHAPE
	for (i = 0; i < nsh; i++) {
		got = write_line("gup", sh[i].line);
		bad += !check("gup", sh[i].line, got, sh[i].want);
		if (!got && !gup_settle())
			return CASE_FAIL;
	}
	/* Too long, empty, embedded NUL. */
	memset(line, '1', 300);
	line[300] = '\0';
	bad += !check("gup", "300 x '1'", write_line("gup", line), -EINVAL);
	writes++;
	bad += !check("gup", "(0 bytes)", uffd_debug_write_buf("gup", "", 0), -EINVAL);
	snprintf(line, sizeof(line), "%s %s 4096", me, a);
	writes++;
	bad += !check("gup", "line with a NUL", uffd_debug_write_buf("gup", line,
							strlen(line) + 2), -EINVAL);
	diag("%d writes, %d wrong answers", writes, bad);
	return bad ? CASE_FAIL : CASE_PASS;
}

static int case_shmem(const struct named_case *c, const struct mem_type *unused)
{
	char me[16], mfd[16], pfd[16], line[512];
	const char *const a[] = { me, "x", "-1", NO_PID, "/tmp/uffd-debug-input", "clear", NULL };
	const char *const b[] = { mfd, "999", "-2", "y", pfd, NULL };
	const char *const e[] = { NULL, "extra" };
	int memfd, pipefd[2], fd, uffd, hfd, bad = 0, i, j, k, got, want;

	memfd = memfd_create("uffd-debug-input", 0);
	fd = open("/tmp/uffd-debug-input", O_RDWR | O_CREAT, 0600);
	uffd = uffd_race_open_api(0, NULL);
	if (memfd < 0 || fd < 0 || uffd < 0 || pipe(pipefd))
		case_fail_fast("setup: %s", strerror(errno));
	snprintf(me, sizeof(me), "%d", getpid());
	snprintf(mfd, sizeof(mfd), "%d", memfd);
	snprintf(pfd, sizeof(pfd), "%d", pipefd[0]);

	for (i = 0; i < 7; i++)
		for (j = 0; j < 6; j++)
			for (k = 0; k < 2; k++) {
				const char *f[3] = { a[i], b[j], e[k] };
				int n = 0;

				line[0] = '\0';
				for (int x = 0; x < 3; x++)
					if (f[x]) {
						strcat(strcat(line, f[x]), " ");
						n++;
					}
				if (n == 0)
					want = -EINVAL;
				else if (n == 1 && f[0] && !strcmp(f[0], "clear"))
					want = 0;
				else if (n == 1 && f[0] && f[0][0] == '/')
					want = 0;
				else if (n != 2 || !f[0] || !f[1])
					want = -EINVAL;
				else if (f[0] != me && f[0] != a[3])
					want = -EINVAL;
				else if (f[1] != mfd && f[1] != b[1] && f[1] != pfd)
					want = -EINVAL;
				else if (f[0] == a[3])
					want = -ESRCH;
				else if (f[1] == b[1])
					want = -EBADF;
				else if (f[1] == pfd)
					want = -EOPNOTSUPP;
				else
					want = 0;
				got = write_line("shmem", line);
				bad += !check("shmem", line, got, want);
			}

	struct { char line[300]; int want; } more[8];
	int nmore = 0;

	snprintf(more[nmore].line, 300, "%d %d", getpid(), uffd);
	more[nmore++].want = -EOPNOTSUPP;
	snprintf(more[nmore].line, 300, "/tmp");
	more[nmore++].want = -EOPNOTSUPP;
	snprintf(more[nmore].line, 300, "/proc/self/status");
	more[nmore++].want = -EOPNOTSUPP;
	snprintf(more[nmore].line, 300, "/dev/null");
	more[nmore++].want = -EOPNOTSUPP;
	snprintf(more[nmore].line, 300, "/nonexistent/file");
	more[nmore++].want = -ENOENT;
	snprintf(more[nmore].line, 300, "relative/path");
	more[nmore++].want = -EINVAL;
	hfd = memfd_create("uffd-debug-input-huge", MFD_HUGETLB);
	if (hfd >= 0) {
		snprintf(more[nmore].line, 300, "%d %d", getpid(), hfd);
		more[nmore++].want = -EOPNOTSUPP;
	}
	snprintf(more[nmore].line, 300, "%d %d", getpid(), memfd);
	more[nmore++].want = 0;
	for (i = 0; i < nmore; i++)
		bad += !check("shmem", more[i].line, write_line("shmem", more[i].line),
			      more[i].want);
	memset(line, '/', 300);
	line[300] = '\0';
	bad += !check("shmem", "300 x '/'", write_line("shmem", line), -EINVAL);
	if (write_line("shmem", "clear"))
		bad++;
	unlink("/tmp/uffd-debug-input");
	diag("%d writes, %d wrong answers", writes, bad);
	return bad ? CASE_FAIL : CASE_PASS;
}

static int case_stats(const struct named_case *c, const struct mem_type *unused)
{
	static const struct { const char *line; int want; } t[] = {
		{ "reset", 0 }, { "reset\n", 0 }, { "RESET", -EINVAL },
		{ "reset now", -EINVAL }, { " reset", -EINVAL }, { "0", -EINVAL },
		{ "reset\n\n", -EINVAL }, { "\n", -EINVAL }, { "resetx", -EINVAL },
	};
	int bad = 0;

	for (int i = 0; i < (int)ARRAY_SIZE(t); i++)
		bad += !check("stats", t[i].line, write_line("stats", t[i].line), t[i].want);
	writes++;
	bad += !check("stats", "reset\\0x", uffd_debug_write_buf("stats", "reset\0x", 7),
		      -EINVAL);
	return bad ? CASE_FAIL : CASE_PASS;
}

static int case_contexts(const struct named_case *c, const struct mem_type *unused)
{
	char path[] = UFFD_DEBUG_DIR "/contexts", buf[64];
	int fd, uffd = uffd_race_open_api(0, NULL), bad = 0;
	ssize_t n, total = 0;

	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		writes++;
		if (write(fd, "x", 1) >= 0) {
			diag("a write to contexts was accepted");
			bad++;
		}
		close(fd);
	}
	/* One byte at a time, then from odd offsets. */
	fd = open(path, O_RDONLY);
	if (fd < 0 || uffd < 0)
		case_fail_fast("open: %s", strerror(errno));
	while ((n = read(fd, buf, 1)) == 1)
		total++;
	if (n < 0 || total < 4) {
		diag("byte-wise read: %zd bytes, then %s", total, n < 0 ? strerror(errno) : "EOF");
		bad++;
	}
	for (off_t off = 0; off < total + 100; off += 37)
		if (pread(fd, buf, sizeof(buf), off) < 0) {
			diag("pread at %lld: %s", (long long)off, strerror(errno));
			bad++;
			break;
		}
	close(fd);
	close(uffd);
	return bad ? CASE_FAIL : CASE_PASS;
}

static int case_random(const struct named_case *c, const struct mem_type *unused)
{
	static const char *const files[] = { "gup", "shmem", "stats" };
	static const int ok_errnos[] = {
		EINVAL, ESRCH, EBADF, ENOENT, EOPNOTSUPP, E2BIG, EOVERFLOW, EFAULT,
		ENOTDIR, ENAMETOOLONG, ELOOP, EACCES,
	};
	unsigned int st = opts.rand;
	char buf[300];
	int bad = 0, accepted = 0;

	for (int i = 0; i < opts.rounds; i++) {
		for (int f = 0; f < 3; f++) {
			int len = 1 + rnd(&st) % (sizeof(buf) - 1), err;
			bool known = false;

			for (int b = 0; b < len; b++) {
				/* Mostly what a parser looks at, some anything. */
				static const char cs[] = "0123456789x /abcdefw\t\n-+";

				buf[b] = rnd(&st) % 4 ? cs[rnd(&st) % (sizeof(cs) - 1)] :
					 (char)rnd(&st);
			}
			writes++;
			err = uffd_debug_write_buf(files[f], buf, len);
			if (!err) {
				accepted++;
				if (f == 0 && !gup_settle())
					return CASE_FAIL;
				continue;
			}
			for (int e = 0; e < (int)ARRAY_SIZE(ok_errnos); e++)
				known |= -err == ok_errnos[e];
			if (!known) {
				diag("%s: %d random bytes got %s", files[f], len, strerror(-err));
				bad++;
			}
		}
		case_progress();
	}
	uffd_debug_write("shmem", "clear");
	diag("%d random writes, %d accepted, %d unexpected errnos (seed %u)",
	     3 * opts.rounds, accepted, bad, opts.rand);
	return bad ? CASE_FAIL : CASE_PASS;
}

static int case_exiting(const struct named_case *c, const struct mem_type *unused)
{
	unsigned int st = opts.rand;
	int bad = 0, memfd = memfd_create("uffd-debug-exit", 0);
	char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (memfd < 0 || p == MAP_FAILED)
		case_fail_fast("setup: %s", strerror(errno));
	memset(p, 1, 4 * page);
	for (int i = 0; i < 50; i++) {
		int delay = rnd(&st) % 2000, err;
		pid_t pid = fork();

		if (!pid) {
			usleep(delay);
			_exit(0);
		}
		writes += 2;
		err = uffd_debug_write("gup", "%d %p %ld write", pid, p, 4 * page);
		if (err && err != -ESRCH) {
			diag("gup on exiting %d: %s", pid, strerror(-err));
			bad++;
		}
		if (!gup_settle())
			return CASE_FAIL;
		case_progress();
		err = uffd_debug_write("shmem", "%d %d", pid, memfd);
		if (err && err != -ESRCH && err != -EBADF) {
			diag("shmem on exiting %d: %s", pid, strerror(-err));
			bad++;
		}
		waitpid(pid, NULL, 0);
	}
	uffd_debug_write("shmem", "clear");
	return bad ? CASE_FAIL : CASE_PASS;
}

/* After all the above, every file still answers. */
static int case_still_working(const struct named_case *c, const struct mem_type *unused)
{
	static const char *const files[] = { "contexts", "shmem", "stats", "gup" };

	for (int i = 0; i < (int)ARRAY_SIZE(files); i++) {
		char *t = uffd_debug_read(files[i]);

		if (!t) {
			diag("%s unreadable: %s", files[i], strerror(errno));
			return CASE_FAIL;
		}
		free(t);
	}
	return CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "input.gup", .fn = case_gup },
	{ .name = "input.shmem", .fn = case_shmem },
	{ .name = "input.stats", .fn = case_stats },
	{ .name = "input.contexts", .fn = case_contexts },
	{ .name = "input.random", .fn = case_random },
	{ .name = "input.exiting", .fn = case_exiting },
	{ .name = "input.still_working", .fn = case_still_working },
};

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	parse_test_opts(argc, argv, &opts);
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, NULL,
			 uffd_debug_missing());
}
