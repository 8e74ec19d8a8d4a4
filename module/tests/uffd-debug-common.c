// SPDX-License-Identifier: GPL-2.0
/*
 * Loading, reading and writing the debug module's debugfs files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "uffd-debug-common.h"

int uffd_debug_load(void)
{
	const char *ko = getenv("UFFD_DEBUG_KO");
	int fd, ret = 0;

	fd = open(ko ? ko : UFFD_DEBUG_KO_DEFAULT, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_finit_module, fd, "", 0))
		ret = -errno;
	close(fd);
	return ret;
}

int uffd_debug_unload(void)
{
	return syscall(SYS_delete_module, "uffd_debug", O_NONBLOCK) ? -errno : 0;
}

int uffd_debug_ready(void)
{
	int err;

	if (access(UFFD_DEBUG_DIR "/contexts", R_OK) == 0)
		return 0;
	err = uffd_debug_load();
	if (err && err != -EEXIST) {
		diag("uffd_debug is not loaded and cannot be: %s", strerror(-err));
		return -1;
	}
	if (access(UFFD_DEBUG_DIR "/contexts", R_OK)) {
		diag("%s: %s (is debugfs mounted?)", UFFD_DEBUG_DIR, strerror(errno));
		return -1;
	}
	return 0;
}

const char *uffd_debug_missing(void)
{
	if (uffd_debug_ready())
		return "the debug module is not available";
	return NULL;
}

char *uffd_debug_read(const char *name)
{
	size_t len = 0, cap = 4096;
	char path[256], *buf = malloc(cap), *n;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", UFFD_DEBUG_DIR, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf) {
		int e = errno;

		free(buf);
		if (fd >= 0)
			close(fd);
		errno = e;
		return NULL;
	}
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += r;
		if (cap - len < 2048) {
			n = realloc(buf, cap * 2);
			if (!n)
				break;
			buf = n;
			cap *= 2;
		}
	}
	if (r < 0) {
		int e = errno;

		free(buf);
		close(fd);
		errno = e;
		return NULL;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

int uffd_debug_write_buf(const char *name, const char *buf, size_t len)
{
	char path[256];
	ssize_t w;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", UFFD_DEBUG_DIR, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, buf, len);
	if (w < 0)
		ret = -errno;
	else if ((size_t)w != len)
		ret = -EIO;
	close(fd);
	return ret;
}

int uffd_debug_write(const char *name, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -EINVAL;
	return uffd_debug_write_buf(name, buf, n);
}

char *uffd_debug_ctx_block(const char *contexts, int pid, int fd)
{
	char want[32];
	const char *b, *e, *fds;

	snprintf(want, sizeof(want), "%d:%d", pid, fd);
	for (b = contexts; b && *b; b = e) {
		e = strstr(b + 1, "\nctx ");
		e = e ? e + 1 : b + strlen(b);
		if (strncmp(b, "ctx ", 4))
			continue;
		fds = strstr(b, "\tfds ");
		while (fds && fds < e) {
			size_t w = strlen(want);

			fds = strstr(fds, want);
			if (!fds || fds >= e)
				break;
			if ((fds[-1] == ' ') && (fds[w] == ' ' || fds[w] == '\n'))
				return strndup(b, e - b);
			fds += w;
		}
	}
	return NULL;
}

int count_lines(const char *text, const char *prefix)
{
	size_t k = strlen(prefix);
	const char *p = text;
	int n = 0;

	while (p && *p) {
		if (!strncmp(p, prefix, k))
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}
