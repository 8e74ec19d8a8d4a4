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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

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

unsigned int random_start(void)
{
	unsigned int r = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	const char *s = getenv("UFFD_RANDOM");

	if (s && *s)
		r = strtoul(s, NULL, 0);
	ksft_print_msg("random start %u (replay with UFFD_RANDOM=%u)\n", r, r);
	return r;
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

/* Grow the stack to what a report may need, before it is locked. */
static uffd_attr(__noinline__) void prefault_stack(void)
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
void case_prepare_fail_fast(void)
{
	prefault_stack();
	if (mlockall(MCL_CURRENT))
		diag("mlockall: %s (a wedged mm may hide a report)", strerror(errno));
}

static char fail_msg[1024];

void case_fail_fast(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	if (n > 0) {
		/* write(), not stdio: its buffer may not be populated. */
		if (n > (int)sizeof(fail_msg) - 2)
			n = sizeof(fail_msg) - 2;
		fail_msg[n] = '\n';
		if (write(STDERR_FILENO, "# ", 2) == 2)
			n = write(STDERR_FILENO, fail_msg, n + 1);
	}
	_exit(KSFT_FAIL);
}
