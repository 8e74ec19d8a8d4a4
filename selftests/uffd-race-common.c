// SPDX-License-Identifier: GPL-2.0
/*
 * Userfaultfd plumbing shared by the userfaultfd race tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "uffd-race-common.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

/*
 * ENOSYS, pasted together: checkpatch warns about the bare name, meant for
 * an invalid syscall number only. Here it is what a kernel without
 * userfaultfd(2) sets, and what a missing fallback reports in its place.
 */
#define ERRNO_NAMED(name)	E##name
#define ERRNO_NOSYS		ERRNO_NAMED(NOSYS)

static size_t small_page(void)
{
	return sysconf(_SC_PAGESIZE);
}

static size_t huge_page(void)
{
	unsigned long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static void *anon_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A memfd mapped shared; the fd is closed, the mapping keeps the file. */
static void *memfd_map(size_t len, unsigned int flags)
{
	void *p;
	int fd = memfd_create("uffd-selftest", flags);

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, len)) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void *shmem_map(size_t len)
{
	return memfd_map(len, 0);
}

static void *hugetlb_map(size_t len)
{
	if (!huge_page()) {
		errno = ERRNO_NOSYS;
		return NULL;
	}
	return memfd_map(len, MFD_HUGETLB);
}

static void generic_unmap(void *p, size_t len)
{
	munmap(p, len);
}

static int anon_zap(void *p, size_t len)
{
	return madvise(p, len, MADV_DONTNEED);
}

/* Shared file pages stay in the page cache unless the hole is punched. */
static int file_zap(void *p, size_t len)
{
	return madvise(p, len, MADV_REMOVE);
}

const struct mem_type mem_types[] = {
	{ "anon", small_page, anon_map, generic_unmap, anon_zap, UFFDIO_REGISTER_MODE_WP },
	{ "shmem", small_page, shmem_map, generic_unmap, file_zap, 0 },
	{ "hugetlb", huge_page, hugetlb_map, generic_unmap, file_zap, 0 },
};

const int nr_mem_types = ARRAY_SIZE(mem_types);

int uffd_race_open(int flags)
{
	int fd = syscall(__NR_userfaultfd, flags);

	if (fd < 0 && (errno == ERRNO_NOSYS || errno == EPERM)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -1;
#ifdef USERFAULTFD_IOC_NEW
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
#else
		errno = ERRNO_NOSYS;
#endif
		close(dev);
	}
	return fd;
}

int uffd_race_open_api(__u64 features, __u64 *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_race_open(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	if (ioctls)
		*ioctls = api.ioctls;
	return fd;
}

int uffd_register_mode(int uffd, void *addr, size_t len, __u64 mode)
{
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)addr, .len = len },
		.mode = mode,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg);
}

int uffd_copy(int uffd, void *dst, const void *src, size_t len)
{
	struct uffdio_copy copy = {
		.dst = (unsigned long)dst,
		.src = (unsigned long)src,
		.len = len,
	};

	if (ioctl(uffd, UFFDIO_COPY, &copy))
		return copy.copy < 0 ? (int)copy.copy : -errno;
	return copy.copy == (__s64)len ? 0 : -EIO;
}

int uffd_race_read_msg(int uffd, struct uffd_msg *msg, int timeout_ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	ssize_t n;
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r;
	n = read(uffd, msg, sizeof(*msg));
	if (n == sizeof(*msg))
		return 1;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

/* "N[,N...]", each 0 or more, at most MAX_SIZES of them, into @o. */
static int parse_sizes(const char *arg, struct test_opts *o)
{
	char *end;

	o->nr_sizes = 0;
	do {
		long n = strtol(arg, &end, 10);

		if (end == arg || n < 0 || n > 1 << 20 || o->nr_sizes == MAX_SIZES ||
		    (*end && *end != ','))
			return -1;
		o->sizes[o->nr_sizes++] = n;
		arg = end + 1;
	} while (*end);
	return 0;
}

/*
 * A case child ends in _exit(), which drops what stdio still holds: flush
 * every line as it is written, whatever stdout is (a pipe, in a VM).
 */
static void __attribute__((constructor)) line_buffered_stdout(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

int env_int(const char *name, int def)
{
	const char *s = getenv(name);
	char *end;
	long n;

	if (!s || !*s)
		return def;
	n = strtol(s, &end, 0);
	return *end || n < 0 || n > INT_MAX ? def : (int)n;
}

void test_opts_from_env(struct test_opts *o)
{
	o->rounds = env_int("UFFD_ROUNDS", o->rounds);
	o->seconds = env_int("UFFD_SECONDS", o->seconds);
	o->all_types = env_int("UFFD_ALL_TYPES", 0);
	o->rand = random_start();
}

char case_skip_why[256];

int case_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(case_skip_why, sizeof(case_skip_why), fmt, ap);
	va_end(ap);
	return CASE_SKIP;
}

unsigned int random_start(void)
{
	unsigned int r = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	const char *s = getenv("UFFD_RANDOM");

	if (s && *s)
		r = strtoul(s, NULL, 0);
	ksft_print_msg("random start %u (replay with UFFD_RANDOM=%u)\n", r, r);
	return r;
}

void parse_test_opts(int argc, char **argv, struct test_opts *o)
{
	const char *r = getenv("UFFD_RANDOM");
	int c;

	o->rand = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	if (r && *r)
		o->rand = strtoul(r, NULL, 0);
	while ((c = getopt(argc, argv, "s:r:t:n:abh")) != -1) {
		switch (c) {
		case 'a':
			o->all_types = true;
			break;
		case 'b':
			o->bench = true;
			break;
		case 'n':
			if (parse_sizes(optarg, o))
				goto usage;
			break;
		case 's':
			o->rand = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			o->rounds = atoi(optarg);
			break;
		case 't':
			o->seconds = atoi(optarg);
			break;
		default:
usage:
			fprintf(stderr,
				"usage: %s [-s seed] [-r rounds] [-t seconds per case] [-a] [-b] [-n N[,N...]]\n",
				argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (o->rounds < 1 || o->seconds < 1) {
		fprintf(stderr, "%s: rounds and seconds must be positive\n", argv[0]);
		exit(KSFT_FAIL);
	}
	ksft_print_msg("random start %u (replay with UFFD_RANDOM=%u)\n", o->rand, o->rand);
	ksft_print_msg("up to %d rounds or %d s per case\n", o->rounds, o->seconds);
}

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

unsigned int rnd(unsigned int *state)
{
	*state = *state * 1103515245 + 12345;
	return *state >> 8;
}

void pin_to_cpu(int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (n < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu % n, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

char *reserve_hpage_aligned(size_t len)
{
	char *p = mmap(NULL, len + HPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	return (char *)(((unsigned long)p + HPAGE - 1) & ~(HPAGE - 1));
}

char *map_hpage_aligned(int fd, size_t len, int flags)
{
	char *a = reserve_hpage_aligned(len);

	if (!a || mmap(a, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0) == MAP_FAILED)
		return NULL;
	return a;
}

/*
 * Shared with the case child: what case_fail_fast() had to say, and how
 * many steps the case has reported done (case_progress()).
 */
static struct case_report {
	int set;
	unsigned long progress;
	char msg[1008];
	char skip_why[sizeof(case_skip_why)];
} *case_report;

void case_progress(void)
{
	if (case_report)
		__atomic_add_fetch(&case_report->progress, 1, __ATOMIC_RELAXED);
}

/* Grow the stack to what a report may need, before it is locked. */
static noinline void prefault_stack(void)
{
	char pad[256 * 1024];

	/* Unlike memset(), never optimised away though pad is not read. */
	explicit_bzero(pad, sizeof(pad));
}

/*
 * Populate and pin what the process has (its code too: fork does not copy
 * file-backed ptes), so that reporting never faults, even with mmap_lock
 * wedged. Mappings made later, like the case's test range, stay unlocked.
 */
static void pin_for_report(const char *name)
{
	prefault_stack();
	if (mlockall(MCL_CURRENT))
		diag("%s: mlockall: %s (a wedged mm may hide the report)", name,
		     strerror(errno));
}

static char fail_msg[1024];

void case_prepare_fail_fast(void)
{
	pin_for_report("case");
}

void case_fail_fast(const char *fmt, ...)
{
	size_t size = sizeof(fail_msg);
	char *msg = fail_msg;
	va_list ap;
	int n;

	if (case_report) {
		msg = case_report->msg;
		size = sizeof(case_report->msg);
	}
	va_start(ap, fmt);
	n = vsnprintf(msg, size, fmt, ap);
	va_end(ap);
	if (case_report) {
		case_report->set = 1;
	} else if (n > 0) {
		/* write(), not stdio: its buffer may not be populated. */
		n = n < (int)size - 1 ? n : (int)size - 2;
		msg[n] = '\n';
		if (write(STDERR_FILENO, "# ", 2) == 2)
			n = write(STDERR_FILENO, msg, n + 1);
	}
	_exit(CASE_FAIL);
}

int timeout_scale(void)
{
	const char *s = getenv("UFFD_TIMEOUT_SCALE");
	int n = s ? atoi(s) : 1;

	return n > 0 ? n : 1;
}

int run_case(const char *name, const struct named_case *c, const struct mem_type *mt,
	     int timeout_s)
{
	const int limit = timeout_s * timeout_scale();
	double start, moved, told;
	unsigned long steps = 0;
	int status;
	pid_t pid;

	if (!case_report) {
		case_report = mmap(NULL, sizeof(*case_report), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (case_report == MAP_FAILED) {
			case_report = NULL;
			diag("%s: mmap: %s", name, strerror(errno));
			return CASE_FAIL;
		}
	}
	memset(case_report, 0, sizeof(*case_report));

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		diag("%s: fork: %s", name, strerror(errno));
		return CASE_FAIL;
	}
	if (!pid) {
		/* Own process group, so a timeout kills the case's helpers too. */
		int r;

		setpgid(0, 0);
		memset(case_report, 0, sizeof(*case_report));
		pin_for_report(name);
		r = c->fn(c, mt);
		if (r == CASE_SKIP)
			memcpy(case_report->skip_why, case_skip_why, sizeof(case_skip_why));
		/* _exit() drops stdio buffers: keep the case's diagnostics. */
		fflush(stdout);
		fflush(stderr);
		_exit(r);
	}
	setpgid(pid, pid);
	start = now();
	moved = start;
	told = start;
	/*
	 * A watchdog on progress, not a budget for the whole case: a busy
	 * host slows the guest down, so a case doing a fixed amount of work
	 * may take several times as long as on an idle one, while a hang
	 * (the bug some cases look for) reports no step at all. The limit
	 * runs from the case's start or its last case_progress(), whichever
	 * is later; a case that never calls it has a plain deadline. While
	 * steps come, a line every PROGRESS_LINE_S says so (guest-init's own
	 * watchdog waits for output).
	 */
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		unsigned long p = __atomic_load_n(&case_report->progress, __ATOMIC_RELAXED);
		double t = now();

		if (r == pid)
			break;
		if (p != steps) {
			steps = p;
			moved = t;
		}
		if (t - told >= PROGRESS_LINE_S && moved > told) {
			diag("%s: running for %.0f s, %lu steps done, the last %.0f s ago",
			     name, t - start, steps, t - moved);
			fflush(stdout);
			told = t;
		}
		if (t - moved > limit) {
			if (steps)
				diag("%s: no step done for %d s (%lu done in %.0f s), killing it",
				     name, limit, steps, t - start);
			else
				diag("%s: no result after %d s, killing it", name, limit);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			/* A child stuck in D state would never be reaped: give up. */
			for (int i = 0; i < 50; i++) {
				if (waitpid(pid, &status, WNOHANG) == pid)
					return CASE_FAIL;
				usleep(100000);
			}
			diag("%s: child %d did not die after SIGKILL (D state?)", name, pid);
			return CASE_FAIL;
		}
		usleep(10000);
	}
	if (case_report->set)
		diag("%s: %s", name, case_report->msg);
	if (WIFSIGNALED(status)) {
		diag("%s: killed by signal %d", name, WTERMSIG(status));
		return CASE_FAIL;
	}
	switch (WEXITSTATUS(status)) {
	case CASE_PASS:
		return CASE_PASS;
	case CASE_SKIP:
		memcpy(case_skip_why, case_report->skip_why, sizeof(case_skip_why));
		return CASE_SKIP;
	default:
		return CASE_FAIL;
	}
}

bool text_number(const char *text, const char *key, long *val)
{
	size_t k = strlen(key);
	const char *p;

	for (p = text; (p = strstr(p, key)) != NULL; p += k) {
		char *end;

		if (p != text && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
			continue;
		if (p[k] != ' ')
			continue;
		*val = strtol(p + k + 1, &end, 0);
		if (end != p + k + 1)
			return true;
	}
	return false;
}

int read_task_stat(int pid, int tid, struct task_stat *st)
{
	char path[64], buf[1024], *open_paren, *close_paren;
	size_t len;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	len = close_paren - open_paren - 1;
	if (len >= sizeof(st->comm))
		len = sizeof(st->comm) - 1;
	memcpy(st->comm, open_paren + 1, len);
	st->comm[len] = '\0';
	if (sscanf(close_paren + 1, " %c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
		   &st->state, &st->pgrp, &st->utime, &st->stime) != 4)
		return -1;
	return 0;
}
