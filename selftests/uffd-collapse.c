// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-collapse: collapsing shmem into a huge page must not fill the holes
 * of a range some VMA has armed with userfaultfd MISSING (seed 004).
 *
 * A 2 MiB memfd is mapped 2 MiB-aligned, its even pages written and its
 * odd pages left as holes, and the mapping is armed MISSING. Then:
 *
 *  self         the arming process calls MADV_COLLAPSE on its own mapping;
 *  other        a second process maps the same file, without userfaultfd,
 *               and calls MADV_COLLAPSE on its mapping;
 *  unregistered after UFFDIO_UNREGISTER, MADV_COLLAPSE must succeed (the
 *               guard must not outlive the registration).
 *
 * Invariant for self and other: whatever MADV_COLLAPSE returns (6.1 can
 * fill the file's holes and then fail to map the huge page), every hole
 * is still a hole (mincore), and reading one raises a MISSING fault whose
 * UFFDIO_COPY is what the read returns, never zeros.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "uffd-common.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define HPAGE		(2UL << 20)
#define CASE_TIMEOUT	60

static size_t page;
static int npages;

struct range {
	int fd;
	char *area;
	int uffd;
};

static unsigned char pattern(int i)
{
	return (unsigned char)(0x40 + i);
}

/* Map @fd's first 2 MiB at a 2 MiB-aligned address. */
static char *map_aligned(int fd)
{
	char *p = mmap(NULL, 2 * HPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((unsigned long)p + HPAGE - 1) & ~(HPAGE - 1));
	if (mmap(a, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		return NULL;
	return a;
}

/* Set up the file with holes at odd pages and arm the mapping MISSING. */
static int setup(struct range *r)
{
	r->fd = memfd_create("uffd-collapse", 0);
	if (r->fd < 0 || ftruncate(r->fd, HPAGE)) {
		diag("memfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	r->area = map_aligned(r->fd);
	if (!r->area) {
		diag("mmap: %s", strerror(errno));
		return CASE_FAIL;
	}
	for (int i = 0; i < npages; i += 2)
		memset(r->area + i * page, pattern(i), page);
	/* Ask for THP on the mapping: 6.1 wants it for shmem collapse. */
	madvise(r->area, HPAGE, MADV_HUGEPAGE);
	r->uffd = uffd_open_api(0, NULL);
	if (r->uffd < 0 || uffd_register(r->uffd, r->area, HPAGE,
					  UFFDIO_REGISTER_MODE_MISSING)) {
		diag("userfaultfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	return CASE_PASS;
}

/* 0 when every odd page is still a hole in the page cache. */
static int check_holes(struct range *r, const char *who, int ret, int err)
{
	unsigned char vec[512];
	int filled = 0, first = -1;

	if (mincore(r->area, HPAGE, vec)) {
		diag("mincore: %s", strerror(errno));
		return -1;
	}
	for (int i = 1; i < npages; i += 2)
		if (vec[i] & 1) {
			if (first < 0)
				first = i;
			filled++;
		}
	if (filled) {
		diag("MADV_COLLAPSE from %s returned %d (%s) and filled %d of %d holes, "
		     "first page %d: the uffd-armed range lost its MISSING faults",
		     who, ret, ret ? strerror(err) : "success", filled, npages / 2, first);
		return -1;
	}
	diag("MADV_COLLAPSE from %s returned %d (%s); all %d holes still holes",
	     who, ret, ret ? strerror(err) : "success", npages / 2);
	return 0;
}

struct reader {
	volatile unsigned char *p;
	unsigned char got;
};

static void *read_hole(void *arg)
{
	struct reader *rd = arg;

	rd->got = *rd->p;
	return NULL;
}

/* Reading a hole must fault to the monitor and return what it copies. */
static int check_fault(struct range *r, int hole)
{
	struct reader rd = { .p = (unsigned char *)r->area + hole * page + 7 };
	unsigned char *src = malloc(page);
	struct uffd_msg msg;
	pthread_t thr;
	int n;

	if (!src)
		return -1;
	pthread_create(&thr, NULL, read_hole, &rd);
	n = uffd_read_msg(r->uffd, &msg, 3000);
	if (n != 1 || msg.event != UFFD_EVENT_PAGEFAULT) {
		pthread_join(thr, NULL);
		diag("page %d: reading the hole raised no MISSING fault within 3 s; "
		     "read %#x, expected the monitor's %#x", hole, rd.got, pattern(hole));
		return -1;
	}
	memset(src, pattern(hole), page);
	n = uffd_copy(r->uffd, r->area + hole * page, src, page);
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

static int case_self(const struct mem_type *unused)
{
	struct range r;
	int ret, err;

	if (setup(&r))
		return CASE_FAIL;
	/* Whatever it returns: a collapse may fill holes and still fail. */
	ret = madvise(r.area, HPAGE, MADV_COLLAPSE);
	err = errno;
	/* Both checks, so that a failure also says what reading a hole gives. */
	if (check_holes(&r, "the arming process", ret, err) | check_fault(&r, 1))
		return CASE_FAIL;
	return CASE_PASS;
}

static int case_other(const struct mem_type *unused)
{
	struct range r;
	int status, pipefd[2], res[2] = { -1, 0 };
	pid_t pid;

	if (setup(&r) || pipe(pipefd))
		return CASE_FAIL;
	pid = fork();
	if (!pid) {
		/* Another process, mapping the same file without userfaultfd. */
		char *a = map_aligned(r.fd);

		if (a)
			madvise(a, HPAGE, MADV_HUGEPAGE);
		res[0] = a ? madvise(a, HPAGE, MADV_COLLAPSE) : -1;
		res[1] = errno;
		write(pipefd[1], res, sizeof(res));
		_exit(0);
	}
	if (read(pipefd[0], res, sizeof(res)) != sizeof(res))
		return CASE_FAIL;
	waitpid(pid, &status, 0);
	if (check_holes(&r, "another process", res[0], res[1]) | check_fault(&r, 3))
		return CASE_FAIL;
	return CASE_PASS;
}

static int case_unregistered(const struct mem_type *unused)
{
	struct uffdio_range range;
	struct range r;
	unsigned char vec[512];
	int ret;

	if (setup(&r))
		return CASE_FAIL;
	range.start = (unsigned long)r.area;
	range.len = HPAGE;
	if (ioctl(r.uffd, UFFDIO_UNREGISTER, &range)) {
		diag("UFFDIO_UNREGISTER: %s", strerror(errno));
		return CASE_FAIL;
	}
	ret = madvise(r.area, HPAGE, MADV_COLLAPSE);
	if (ret && errno == EINVAL) {
		diag("MADV_COLLAPSE not supported here (EINVAL)");
		return CASE_SKIP;
	}
	if (ret) {
		diag("MADV_COLLAPSE after UFFDIO_UNREGISTER: %s: the guard outlived "
		     "the registration", strerror(errno));
		return CASE_FAIL;
	}
	if (mincore(r.area, HPAGE, vec) || !(vec[1] & 1)) {
		diag("MADV_COLLAPSE returned 0 but page 1 is still a hole");
		return CASE_FAIL;
	}
	return CASE_PASS;
}

int main(int argc, char **argv)
{
	ksft_print_header();
	page = sysconf(_SC_PAGESIZE);
	npages = HPAGE / page;
	ksft_set_plan(3);
	report_case("madv_collapse.self", run_case("madv_collapse.self", case_self,
						   NULL, CASE_TIMEOUT));
	report_case("madv_collapse.other", run_case("madv_collapse.other", case_other,
						    NULL, CASE_TIMEOUT));
	report_case("madv_collapse.unregistered",
		    run_case("madv_collapse.unregistered", case_unregistered,
			     NULL, CASE_TIMEOUT));
	return finish_tests();
}
