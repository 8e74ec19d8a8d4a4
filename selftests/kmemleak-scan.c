// SPDX-License-Identifier: GPL-2.0
/*
 * kmemleak-scan: runs last, after every other test of the suite, and asks
 * kmemleak for the objects nothing references any more.
 *
 *  scan   two scans (an object is reported only once it is older than
 *         kmemleak's minimum age and was found unreferenced), then every
 *         reported object is printed with its backtrace; any fails the
 *         case. SKIP on a kernel without CONFIG_DEBUG_KMEMLEAK (only the
 *         debug flavour has it) or with kmemleak disabled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uffd-case-runner.h"

#define KMEMLEAK	"/sys/kernel/debug/kmemleak"
/* Longer than kmemleak's minimum object age (5 s). */
#define SETTLE_S	6
#define CASE_TIMEOUT	600
/* How many reports to print in full. */
#define SHOW_MAX	5

static int kmemleak_cmd(const char *cmd)
{
	int fd = open(KMEMLEAK, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, cmd, strlen(cmd));
	if (n < 0)
		n = -errno;
	close(fd);
	return n < 0 ? (int)n : 0;
}

static int case_scan(const struct named_case *c, const struct mem_type *unused)
{
	char line[512];
	int leaks = 0, err;
	FILE *f;

	if (access(KMEMLEAK, F_OK))
		return case_skip("%s: %s (kernel without CONFIG_DEBUG_KMEMLEAK)", KMEMLEAK,
				 strerror(errno));
	for (int i = 0; i < 2; i++) {
		sleep(SETTLE_S);
		err = kmemleak_cmd("scan");
		if (err == -EPERM || err == -EBUSY)
			return case_skip("kmemleak is disabled: %s", strerror(-err));
		if (err) {
			diag("echo scan > %s: %s", KMEMLEAK, strerror(-err));
			return CASE_FAIL;
		}
	}
	f = fopen(KMEMLEAK, "r");
	if (!f) {
		diag("%s: %s", KMEMLEAK, strerror(errno));
		return CASE_FAIL;
	}
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "unreferenced object", 19))
			leaks++;
		if (leaks && leaks <= SHOW_MAX)
			diag("%s", strtok(line, "\n") ?: "");
	}
	fclose(f);
	diag("%d unreferenced object(s) after the suite", leaks);
	return leaks ? CASE_FAIL : CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "scan", .fn = case_scan },
};

int main(void)
{
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, NULL, NULL);
}
