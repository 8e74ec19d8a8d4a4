// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-smoke: the userfaultfd basics the race tests build on.
 *
 *  api                   UFFDIO_API handshake: ioctls offered, a second
 *                        handshake and a bad API version refused, other
 *                        ioctls refused before the handshake.
 *  missing_copy.<type>   a thread reads every page of a MISSING-armed range
 *                        of anon, shmem or hugetlb memory; a monitor resolves
 *                        each fault with UFFDIO_COPY. Every page must fault
 *                        exactly once and read back what was copied.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "uffd-case-runner.h"

#define CASE_TIMEOUT	30

static int case_api(const struct named_case *c, const struct mem_type *unused)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	__u64 need = 1ULL << _UFFDIO_REGISTER | 1ULL << _UFFDIO_UNREGISTER |
		     1ULL << _UFFDIO_API;
	int fd = uffd_race_open(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		diag("userfaultfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	if (ioctl(fd, UFFDIO_REGISTER, &reg) == 0 || errno != EINVAL) {
		diag("UFFDIO_REGISTER before UFFDIO_API: want EINVAL, got %s",
		     strerror(errno));
		return CASE_FAIL;
	}
	api.api = UFFD_API + 1;
	if (ioctl(fd, UFFDIO_API, &api) == 0 || errno != EINVAL) {
		diag("UFFDIO_API with api %llu: want EINVAL, got %s",
		     (unsigned long long)api.api, strerror(errno));
		return CASE_FAIL;
	}
	close(fd);

	fd = uffd_race_open(O_CLOEXEC | O_NONBLOCK);
	api = (struct uffdio_api){ .api = UFFD_API };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		diag("UFFDIO_API: %s", strerror(errno));
		return CASE_FAIL;
	}
	if ((api.ioctls & need) != need) {
		diag("UFFDIO_API offers ioctls %#llx, lacks %#llx",
		     (unsigned long long)api.ioctls,
		     (unsigned long long)(need & ~api.ioctls));
		return CASE_FAIL;
	}
	diag("api %#llx features %#llx ioctls %#llx",
	     (unsigned long long)api.api, (unsigned long long)api.features,
	     (unsigned long long)api.ioctls);
	api = (struct uffdio_api){ .api = UFFD_API };
	if (ioctl(fd, UFFDIO_API, &api) == 0 || errno != EINVAL) {
		diag("second UFFDIO_API: want EINVAL, got %s", strerror(errno));
		return CASE_FAIL;
	}
	close(fd);
	return CASE_PASS;
}

struct faulter {
	char *area;
	size_t page;
	int npages;
	int bad;
	/* The first page that read back wrong: index, byte read. */
	int bad_page;
	unsigned char bad_got;
};

static unsigned char pattern(int i)
{
	return (unsigned char)(i * 7 + 1);
}

static void *fault_pages(void *arg)
{
	struct faulter *f = arg;

	for (int i = 0; i < f->npages; i++) {
		unsigned char *p =
			(unsigned char *)f->area + i * f->page + f->page / 2;

		unsigned char got = __atomic_load_n(p, __ATOMIC_RELAXED);

		if (got != pattern(i) && !f->bad++) {
			f->bad_page = i;
			f->bad_got = got;
		}
	}
	return NULL;
}

static int case_missing_copy(const struct named_case *c, const struct mem_type *mt)
{
	size_t page = mt->page_size();
	int npages = page > 65536 ? 4 : 16;
	size_t len = npages * page;
	struct faulter f = { .page = page, .npages = npages };
	struct uffdio_register reg;
	struct uffd_msg msg;
	unsigned char *src;
	char *copied;
	pthread_t thr;
	int uffd, faults = 0;

	if (!page)
		return case_skip("%s: no page size (no hugetlb support?)", mt->name);
	f.area = mt->map(len);
	if (!f.area)
		return case_skip("%s: cannot map %zu bytes: %s", mt->name, len, strerror(errno));
	uffd = uffd_race_open_api(0, NULL);
	if (uffd < 0) {
		diag("userfaultfd: %s", strerror(errno));
		return CASE_FAIL;
	}
	reg = (struct uffdio_register){
		.range = { .start = (unsigned long)f.area, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		diag("UFFDIO_REGISTER MISSING on %s: %s", mt->name, strerror(errno));
		return CASE_FAIL;
	}
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
		diag("%s range does not offer UFFDIO_COPY (ioctls %#llx)",
		     mt->name, (unsigned long long)reg.ioctls);
		return CASE_FAIL;
	}
	src = malloc(page);
	copied = calloc(npages, 1);
	if (!src || !copied)
		return CASE_FAIL;
	if (pthread_create(&thr, NULL, fault_pages, &f))
		return CASE_FAIL;

	while (faults < npages) {
		unsigned long off;
		int r = uffd_race_read_msg(uffd, &msg, 5000);
		int i;

		if (r <= 0) {
			diag("%s: %s after %d of %d faults", mt->name,
			     r ? strerror(errno) : "no message for 5 s",
			     faults, npages);
			return CASE_FAIL;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			diag("%s: unexpected event %u", mt->name, msg.event);
			return CASE_FAIL;
		}
		off = msg.arg.pagefault.address - (unsigned long)f.area;
		if (off >= len || (msg.arg.pagefault.flags &
				   (UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP))) {
			diag("%s: fault at offset %#lx flags %#llx, want a read fault in range",
			     mt->name, off,
			     (unsigned long long)msg.arg.pagefault.flags);
			return CASE_FAIL;
		}
		i = off / page;
		if (copied[i]) {
			diag("%s: MISSING fault for page %d, already installed",
			     mt->name, i);
			return CASE_FAIL;
		}
		memset(src, pattern(i), page);
		r = uffd_copy(uffd, f.area + i * page, src, page);
		if (r) {
			diag("%s: UFFDIO_COPY page %d: %s", mt->name, i, strerror(-r));
			return CASE_FAIL;
		}
		copied[i] = 1;
		faults++;
	}
	pthread_join(thr, NULL);
	if (f.bad) {
		diag("%s: %d page(s) read back wrong data, first page %d: expected %#x, got %#x",
		     mt->name, f.bad, f.bad_page, pattern(f.bad_page), f.bad_got);
		return CASE_FAIL;
	}
	for (int i = 0; i < npages; i++) {
		unsigned char *got = (unsigned char *)f.area + i * page;

		for (size_t off = 0; off < page; off++) {
			if (got[off] != pattern(i)) {
				diag("%s: page %d byte %zu: expected %#x, got %#x",
				     mt->name, i, off, pattern(i), got[off]);
				return CASE_FAIL;
			}
		}
	}
	if (uffd_race_read_msg(uffd, &msg, 100) != 0) {
		diag("%s: a message arrived after every page was installed",
		     mt->name);
		return CASE_FAIL;
	}
	close(uffd);
	mt->unmap(f.area, len);
	return CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "api", .fn = case_api },
	{ .name = "missing_copy", .fn = case_missing_copy, .mem = MEM_ALL },
};

int main(void)
{
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, NULL, NULL);
}
