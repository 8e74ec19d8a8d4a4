// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-debug: the debug module (module/uffd_debug.c) shows what the kernel
 * really holds. Needs the module loaded or at /lib/modules/uffd_debug.ko
 * ($UFFD_DEBUG_KO); SKIPs without it.
 *
 *  contexts.listed     a context's owner, fds, flags and registered ranges
 *                      (anon private, shmem shared); faults_pending and
 *                      faults_waiting follow a fault through read(2) and
 *                      UFFDIO_COPY; gone after close.
 *  contexts.fork_event a fork event's child context while the event is
 *                      queued (no fd yet), then with the fd and the child
 *                      as its owner.
 *  shmem.recount       the audit's recount of VMAs mapping a shmem file
 *                      with VM_UFFD_MISSING through split, unregister,
 *                      munmap and close; file chosen by "PID FD" and path.
 *  shmem.counter       the series' uffd-armed counter equals the recount at
 *                      every step ("audit match"); SKIP without the counter.
 *  stats               tracepoint counts: register, split, unmap,
 *                      unregister and a refused MADV_COLLAPSE, exactly;
 *                      SKIP without the tracepoints.
 *  gup.populated       the kworker GUP trigger on populated anon memory.
 *  gup.uffd            ... on a MISSING-armed range: every page's fault
 *                      reaches the monitor, GUP drops mmap_lock to wait
 *                      (as KVM's async page fault worker does).
 *  module.reload       unload and load the module 100 times while
 *                      contexts come and go and triggers run.
 *  module.kmemleak     kmemleak finds nothing of the module's after that;
 *                      SKIP where kmemleak is not enabled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "uffd-debug-common.h"

#define CASE_TIMEOUT	60
#define RELOADS		100

static long page;

/* Poll `contexts` until @ok(block) holds for the block of PID:FD. */
static char *wait_ctx(int pid, int fd, bool (*ok)(const char *block),
		      double seconds)
{
	double end = now() + seconds;
	char *text, *block;

	do {
		text = uffd_debug_read("contexts");
		block = text ? uffd_debug_ctx_block(text, pid, fd) : NULL;
		free(text);
		if (block && ok(block))
			return block;
		free(block);
		usleep(20000);
	} while (now() < end);
	return NULL;
}

static bool one_pending(const char *b)
{
	long p, w;

	return text_number(b, "faults_pending", &p) && p == 1 &&
	       text_number(b, "faults_waiting", &w) && w == 0;
}

static bool one_waiting(const char *b)
{
	long p, w;

	return text_number(b, "faults_pending", &p) && p == 0 &&
	       text_number(b, "faults_waiting", &w) && w == 1;
}

static bool no_faults(const char *b)
{
	long p, w;

	return text_number(b, "faults_pending", &p) && p == 0 &&
	       text_number(b, "faults_waiting", &w) && w == 0;
}

static void *touch(void *p)
{
	return (void *)(long)__atomic_load_n((char *)p, __ATOMIC_RELAXED);
}

static void unregister(int uffd, void *p, size_t len)
{
	struct uffdio_range r = { .start = (unsigned long)p, .len = len };

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r))
		case_fail_fast("UFFDIO_UNREGISTER: %s", strerror(errno));
}

/* A range line for [@p, @p + @len) with @what after the addresses. */
static bool has_range(const char *block, void *p, size_t len, const char *what)
{
	char want[128];

	snprintf(want, sizeof(want), "\trange %lx-%lx %s\n", (unsigned long)p,
		 (unsigned long)p + len, what);
	return strstr(block, want);
}

static int case_contexts(const struct named_case *c, const struct mem_type *unused)
{
	char *anon, *shm, *block, *text, owner[64], src[4096];
	struct uffd_msg msg;
	pthread_t t;
	int uffd, memfd, me = getpid();

	anon = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memfd = memfd_create("uffd-debug", 0);
	if (anon == MAP_FAILED || memfd < 0 || ftruncate(memfd, 4 * page))
		case_fail_fast("mmap/memfd: %s", strerror(errno));
	shm = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	uffd = uffd_race_open_api(0, NULL);
	if (shm == MAP_FAILED || uffd < 0 ||
	    uffd_register_mode(uffd, anon, 4 * page, UFFDIO_REGISTER_MODE_MISSING) ||
	    uffd_register_mode(uffd, shm, 4 * page, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup: %s", strerror(errno));

	block = wait_ctx(me, uffd, no_faults, 1);
	if (!block) {
		diag("no context with fds %d:%d in contexts", me, uffd);
		return CASE_FAIL;
	}
	snprintf(owner, sizeof(owner), "\towner %d ", me);
	if (!strstr(block, owner) || !strstr(block, " released 0 ") ||
	    count_lines(block, "\trange ") != 2 ||
	    !has_range(block, anon, 4 * page, "MISSING anon private") ||
	    !has_range(block, shm, 4 * page, "MISSING shmem shared")) {
		diag("context of %d:%d is not what was set up:\n%s", me, uffd, block);
		return CASE_FAIL;
	}
	free(block);

	/* A fault: pending until read, waiting until resolved. */
	if (pthread_create(&t, NULL, touch, anon + page))
		case_fail_fast("pthread_create failed");
	block = wait_ctx(me, uffd, one_pending, 5);
	if (!block) {
		diag("the fault never showed as faults_pending 1");
		return CASE_FAIL;
	}
	free(block);
	if (uffd_race_read_msg(uffd, &msg, 5000) != 1 || msg.event != UFFD_EVENT_PAGEFAULT)
		case_fail_fast("no fault message");
	block = wait_ctx(me, uffd, one_waiting, 5);
	if (!block) {
		diag("a read fault did not move to faults_waiting");
		return CASE_FAIL;
	}
	free(block);
	memset(src, 0x5a, sizeof(src));
	if (uffd_copy(uffd, anon + page, src, page))
		case_fail_fast("UFFDIO_COPY failed");
	pthread_join(t, NULL);
	block = wait_ctx(me, uffd, no_faults, 5);
	if (!block) {
		diag("the resolved fault stayed queued");
		return CASE_FAIL;
	}
	free(block);

	close(uffd);
	text = uffd_debug_read("contexts");
	if (!text || strstr(text, owner)) {
		diag("a context of %d is still listed after close:\n%s", me,
		     text ? text : strerror(errno));
		return CASE_FAIL;
	}
	free(text);
	return CASE_PASS;
}

struct forker {
	pid_t child;
};

static void *do_fork(void *arg)
{
	struct forker *f = arg;

	/*
	 * The raw syscall: glibc's fork() holds malloc's and stdio's locks
	 * across the syscall, which waits here until the event is read, and
	 * the reader's thread needs malloc.
	 */
	f->child = syscall(SYS_fork);
	if (f->child == 0) {
		for (;;)
			pause();
	}
	return NULL;
}

static int case_fork_event(const struct named_case *c, const struct mem_type *unused)
{
	char *anon, *text = NULL, *block = NULL, *kid, want[128];
	struct forker f = { .child = -1 };
	struct uffd_msg msg;
	double end = now() + 5;
	int uffd, kfd, ret = CASE_FAIL, me = getpid();
	pthread_t t;

	anon = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uffd = uffd_race_open_api(UFFD_FEATURE_EVENT_FORK, NULL);
	if (anon == MAP_FAILED || uffd < 0 ||
	    uffd_register_mode(uffd, anon, 4 * page, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup: %s", strerror(errno));
	/* fork() waits until the event is read: fork from a thread. */
	if (pthread_create(&t, NULL, do_fork, &f))
		case_fail_fast("pthread_create failed");

	do {
		free(text);
		free(block);
		text = uffd_debug_read("contexts");
		block = text ? uffd_debug_ctx_block(text, me, uffd) : NULL;
		if (block && strstr(block, "\tevent fork child "))
			break;
		usleep(20000);
	} while (now() < end);
	kid = block ? strstr(block, "\tevent fork child ") : NULL;
	if (!kid) {
		diag("no queued fork event on %d:%d:\n%s", me, uffd, block ? block : "");
		goto out;
	}
	kid += strlen("\tevent fork child ");
	snprintf(want, sizeof(want), "ctx %.*s\n", (int)strcspn(kid, "\n"), kid);
	kid = strstr(text, want);
	if (!kid || !strstr(kid, "\towner none (fork child") ||
	    !has_range(kid, anon, 4 * page, "MISSING anon private")) {
		diag("the child context is not listed as queued:\n%s", text);
		goto out;
	}

	if (uffd_race_read_msg(uffd, &msg, 5000) != 1 || msg.event != UFFD_EVENT_FORK)
		case_fail_fast("no fork event");
	kfd = msg.arg.fork.ufd;
	pthread_join(t, NULL);
	free(text);
	free(block);
	text = uffd_debug_read("contexts");
	block = text ? uffd_debug_ctx_block(text, me, kfd) : NULL;
	snprintf(want, sizeof(want), "\towner %d ", f.child);
	if (!block || !strstr(block, want) ||
	    !has_range(block, anon, 4 * page, "MISSING anon private")) {
		diag("the delivered child context (fd %d, child %d) is wrong:\n%s",
		     kfd, f.child, text ? text : "");
		goto out;
	}
	ret = CASE_PASS;
out:
	if (f.child > 0) {
		kill(f.child, SIGKILL);
		waitpid(f.child, NULL, 0);
	}
	free(text);
	free(block);
	return ret;
}

/* The shmem file's audit as numbers; false when a field is missing. */
struct audit {
	long mappings, armed, counter;
	bool have_counter, match;
	char *text;
};

static bool read_audit(struct audit *a)
{
	free(a->text);
	a->text = uffd_debug_read("shmem");
	if (!a->text)
		return false;
	a->have_counter = !strstr(a->text, "nr_uffd_missing not available");
	a->match = strstr(a->text, "\naudit match (");
	if (!text_number(a->text, "mappings", &a->mappings) ||
	    !text_number(a->text, "armed_vmas", &a->armed))
		return false;
	return !a->have_counter || text_number(a->text, "nr_uffd_missing", &a->counter);
}

/* Check the audit at one step; @counter: the counter must agree too. */
static bool audit_is(struct audit *a, const char *step, long mappings,
		     long armed, bool counter)
{
	if (!read_audit(a)) {
		diag("%s: unreadable audit:\n%s", step, a->text ? a->text : strerror(errno));
		return false;
	}
	if (a->mappings != mappings || a->armed != armed) {
		diag("%s: want mappings %ld armed_vmas %ld:\n%s", step, mappings,
		     armed, a->text);
		return false;
	}
	if (counter && (!a->have_counter || a->counter != armed || !a->match)) {
		diag("%s: want nr_uffd_missing %ld and audit match:\n%s", step, armed, a->text);
		return false;
	}
	return true;
}

static int shmem_audit(bool counter)
{
	const char *path = "/tmp/uffd-debug-audit";
	struct audit a = { 0 };
	char *m1, *m2, *m3;
	int memfd, fd, uffd, err;
	size_t len = 16 * page;

	if (counter) {
		memfd = memfd_create("uffd-debug-probe", 0);
		if (memfd < 0 || uffd_debug_write("shmem", "%d %d", getpid(), memfd) ||
		    !read_audit(&a)) {
			diag("cannot select a memfd: %s", strerror(errno));
			return CASE_FAIL;
		}
		close(memfd);
		if (!a.have_counter)
			return case_skip("this kernel has no uffd-armed counter: %s",
					 strstr(a.text, "nr_uffd_missing"));
	}

	memfd = memfd_create("uffd-debug-audit", 0);
	if (memfd < 0 || ftruncate(memfd, len))
		case_fail_fast("memfd: %s", strerror(errno));
	m1 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	m2 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	m3 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd, 0);
	uffd = uffd_race_open_api(0, NULL);
	if (m1 == MAP_FAILED || m2 == MAP_FAILED || m3 == MAP_FAILED || uffd < 0 ||
	    uffd_register_mode(uffd, m1, len, UFFDIO_REGISTER_MODE_MISSING) ||
	    uffd_register_mode(uffd, m3, len, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup: %s", strerror(errno));
	err = uffd_debug_write("shmem", "%d %d\n", getpid(), memfd);
	if (err) {
		diag("select \"%d %d\": %s", getpid(), memfd, strerror(-err));
		return CASE_FAIL;
	}
	if (!audit_is(&a, "armed shared + private", 3, 2, counter))
		return CASE_FAIL;
	/* Split the first mapping in three. */
	if (mprotect(m1 + 4 * page, 4 * page, PROT_READ))
		case_fail_fast("mprotect: %s", strerror(errno));
	if (!audit_is(&a, "after mprotect split", 5, 4, counter))
		return CASE_FAIL;
	unregister(uffd, m3, len);
	if (!audit_is(&a, "after unregister of the private mapping", 5, 3, counter))
		return CASE_FAIL;
	munmap(m2, len);
	if (!audit_is(&a, "after munmap of the unarmed mapping", 4, 3, counter))
		return CASE_FAIL;
	close(uffd);
	if (!audit_is(&a, "after close", 4, 0, counter))
		return CASE_FAIL;
	munmap(m1, len);
	munmap(m3, len);
	if (!audit_is(&a, "after munmap of everything", 0, 0, counter))
		return CASE_FAIL;

	/* A tmpfs file chosen by path. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, len))
		case_fail_fast("%s: %s", path, strerror(errno));
	m1 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uffd = uffd_race_open_api(0, NULL);
	if (m1 == MAP_FAILED || uffd < 0 ||
	    uffd_register_mode(uffd, m1, len, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup of %s: %s", path, strerror(errno));
	err = uffd_debug_write("shmem", "%s", path);
	if (err) {
		diag("select %s: %s", path, strerror(-err));
		return CASE_FAIL;
	}
	if (!audit_is(&a, "tmpfs file by path", 1, 1, counter))
		return CASE_FAIL;
	if (!strstr(a.text, "\nvma ") || !strstr(a.text, " shared MISSING\n")) {
		diag("the audit does not list the armed VMA:\n%s", a.text);
		return CASE_FAIL;
	}
	close(uffd);
	munmap(m1, len);
	close(fd);
	unlink(path);
	err = uffd_debug_write("shmem", "clear");
	free(a.text);
	a.text = uffd_debug_read("shmem");
	if (err || !a.text || strncmp(a.text, "file none", 9)) {
		diag("clear: %s, then: %s", strerror(-err), a.text ? a.text : "");
		return CASE_FAIL;
	}
	free(a.text);
	return CASE_PASS;
}

static int case_shmem_recount(const struct named_case *c, const struct mem_type *unused)
{
	return shmem_audit(false);
}

static int case_shmem_counter(const struct named_case *c, const struct mem_type *unused)
{
	return shmem_audit(true);
}

/* Every "key N" the test names must read N; the others in @zero 0. */
static bool stats_are(const char *step, const char *const *keys,
		      const long *want, int n)
{
	char *text = uffd_debug_read("stats");
	bool ok = !!text;
	long v;

	for (int i = 0; ok && i < n; i++) {
		if (!text_number(text, keys[i], &v) || v != want[i]) {
			diag("%s: %s is %ld, want %ld", step, keys[i],
			     text_number(text, keys[i], &v) ? v : -1L, want[i]);
			ok = false;
		}
	}
	if (!ok)
		diag("stats:\n%s", text ? text : strerror(errno));
	free(text);
	return ok;
}

static int case_stats(const struct named_case *c, const struct mem_type *unused)
{
	static const char *const keys[] = {
		"shmem_missing.register.up", "shmem_missing.split.up",
		"shmem_missing.unmap.down", "shmem_missing.unregister.down",
		"shmem_missing.release.down", "collapse_refused.madvise",
		"fault_released.retry_lock_dropped", "shmem_missing.unknown_reason",
	};
	long want[ARRAY_SIZE(keys)] = { 0 };
	char *text, *area;
	int memfd, uffd, err, r;

	text = uffd_debug_read("stats");
	if (!text) {
		diag("stats: %s", strerror(errno));
		return CASE_FAIL;
	}
	if (strstr(text, "not available")) {
		case_skip("%s", text);
		free(text);
		return CASE_SKIP;
	}
	free(text);
	err = uffd_debug_write("stats", "reset\n");
	if (err || !stats_are("after reset", keys, want, ARRAY_SIZE(keys))) {
		diag("reset: %s", strerror(-err));
		return CASE_FAIL;
	}

	memfd = memfd_create("uffd-debug-stats", 0);
	if (memfd < 0 || ftruncate(memfd, HPAGE))
		case_fail_fast("memfd: %s", strerror(errno));
	area = map_hpage_aligned(memfd, HPAGE, MAP_SHARED);
	uffd = uffd_race_open_api(0, NULL);
	if (!area || uffd < 0 ||
	    uffd_register_mode(uffd, area, HPAGE, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup: %s", strerror(errno));
	want[0] = 1;
	if (!stats_are("after register", keys, want, ARRAY_SIZE(keys)))
		return CASE_FAIL;
	/* Half the pages written, half holes: the collapse must be refused. */
	for (size_t i = 0; i < HPAGE; i += 2 * page)
		if (pwrite(memfd, "x", 1, i) != 1)
			case_fail_fast("pwrite: %s", strerror(errno));
	r = madvise(area, HPAGE, MADV_COLLAPSE);
	if (r == 0 || errno != EBUSY) {
		diag("MADV_COLLAPSE of the armed file: %d (%s), want EBUSY", r,
		     r ? strerror(errno) : "collapsed");
		return CASE_FAIL;
	}
	want[5] = 1;
	if (!stats_are("after a refused MADV_COLLAPSE", keys, want, ARRAY_SIZE(keys)))
		return CASE_FAIL;
	if (mprotect(area + HPAGE / 2, HPAGE / 2, PROT_READ))
		case_fail_fast("mprotect: %s", strerror(errno));
	want[1] = 1;
	if (!stats_are("after a split", keys, want, ARRAY_SIZE(keys)))
		return CASE_FAIL;
	munmap(area + HPAGE / 2, HPAGE / 2);
	want[2] = 1;
	if (!stats_are("after munmap of one half", keys, want, ARRAY_SIZE(keys)))
		return CASE_FAIL;
	unregister(uffd, area, HPAGE / 2);
	want[3] = 1;
	if (!stats_are("after unregister", keys, want, ARRAY_SIZE(keys)))
		return CASE_FAIL;
	close(uffd);
	return stats_are("after close (nothing armed left)", keys, want,
			 ARRAY_SIZE(keys)) ? CASE_PASS : CASE_FAIL;
}

/* Trigger a kworker GUP and wait for its outcome (text, malloc()ed). */
static char *gup_run(void *p, size_t len, double seconds)
{
	double end = now() + seconds;
	char *text;
	int err;

	err = uffd_debug_write("gup", "%d %p %zu write", getpid(), p, len);
	if (err) {
		diag("gup trigger: %s", strerror(-err));
		return NULL;
	}
	do {
		text = uffd_debug_read("gup");
		if (text && strstr(text, "state done\n"))
			return text;
		free(text);
		usleep(10000);
	} while (now() < end);
	diag("the kworker GUP did not finish within %.0f s", seconds);
	return NULL;
}

static int case_gup_populated(const struct named_case *c, const struct mem_type *unused)
{
	size_t len = 16 * page;
	char *p, *text;
	long res, us;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		case_fail_fast("mmap: %s", strerror(errno));
	memset(p, 1, len);
	text = gup_run(p, len, 10);
	if (!text)
		return CASE_FAIL;
	if (!text_number(text, "result", &res) || res != 16 ||
	    !text_number(text, "elapsed_us", &us)) {
		diag("want result 16:\n%s", text);
		return CASE_FAIL;
	}
	diag("16 populated pages in %ld us", us);
	free(text);
	return CASE_PASS;
}

struct monitor {
	int uffd;
	char *base;
	int resolved;
	int other;
};

static void *resolve_all(void *arg)
{
	struct monitor *m = arg;
	static char src[65536];
	struct uffd_msg msg;

	memset(src, 0x33, sizeof(src));
	while (uffd_race_read_msg(m->uffd, &msg, 3000) == 1) {
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			m->other++;
			continue;
		}
		if (uffd_copy(m->uffd, (void *)(unsigned long)
			      (msg.arg.pagefault.address & ~(page - 1)), src, page) == 0)
			m->resolved++;
	}
	return NULL;
}

static int case_gup_uffd(const struct named_case *c, const struct mem_type *unused)
{
	struct monitor m = { 0 };
	size_t len = 8 * page;
	long res, us;
	pthread_t t;
	char *text;

	m.base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m.uffd = uffd_race_open_api(0, NULL);
	if (m.base == MAP_FAILED || m.uffd < 0 ||
	    uffd_register_mode(m.uffd, m.base, len, UFFDIO_REGISTER_MODE_MISSING))
		case_fail_fast("setup: %s", strerror(errno));
	if (pthread_create(&t, NULL, resolve_all, &m))
		case_fail_fast("pthread_create failed");
	text = gup_run(m.base, len, 20);
	pthread_join(t, NULL);
	if (!text)
		return CASE_FAIL;
	if (!text_number(text, "result", &res) || res != 8 || m.resolved != 8 ||
	    !strstr(text, "mmap_lock dropped by GUP") ||
	    !text_number(text, "elapsed_us", &us)) {
		diag("want result 8, 8 faults resolved and the lock dropped; "
		     "resolved %d, other events %d:\n%s", m.resolved, m.other, text);
		return CASE_FAIL;
	}
	for (size_t i = 0; i < len; i += page)
		if (m.base[i] != 0x33) {
			diag("page %zu does not hold what the monitor copied", i / page);
			return CASE_FAIL;
		}
	diag("8 faults from the kworker resolved by the monitor in %ld us", us);
	free(text);
	return CASE_PASS;
}

/* Contexts coming and going, files read and triggers run, until killed. */
static void churn(void)
{
	char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *text;

	if (p == MAP_FAILED)
		_exit(1);
	memset(p, 1, 4 * page);
	for (;;) {
		int uffd = uffd_race_open_api(UFFD_FEATURE_EVENT_FORK, NULL);

		if (uffd >= 0) {
			uffd_register_mode(uffd, p, 4 * page, UFFDIO_REGISTER_MODE_MISSING);
			text = uffd_debug_read("contexts");
			free(text);
			close(uffd);
		}
		uffd_debug_write("gup", "%d %p %ld", getpid(), p, 4 * page);
		text = uffd_debug_read("gup");
		free(text);
	}
}

static int case_reload(const struct named_case *c, const struct mem_type *unused)
{
	int busy = 0, err = 0, i;
	pid_t kids[2];
	double t0 = now(), end;

	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			churn();
	}
	for (i = 0; i < RELOADS; i++) {
		end = now() + 10;
		while ((err = uffd_debug_unload()) == -EAGAIN || err == -EBUSY) {
			busy++;
			if (now() > end)
				break;
			usleep(1000);
		}
		if (err)
			break;
		err = uffd_debug_load();
		if (err)
			break;
		/* A fixed number of cycles: the time limit is per cycle. */
		case_progress();
		usleep(5000);
	}
	for (i = 0; i < 2; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	if (err) {
		diag("cycle %d: %s", i, strerror(-err));
		if (access(UFFD_DEBUG_DIR, F_OK))
			uffd_debug_load();
		return CASE_FAIL;
	}
	if (uffd_debug_ready())
		return CASE_FAIL;
	diag("%d unload/load cycles in %.1f s with 2 busy processes (%d busy retries)",
	     RELOADS, now() - t0, busy);
	return CASE_PASS;
}

static int case_kmemleak(const struct named_case *c, const struct mem_type *unused)
{
	const char *km = "/sys/kernel/debug/kmemleak";
	char buf[4096];
	ssize_t n;
	int fd;

	fd = open(km, O_RDWR);
	if (fd < 0)
		return case_skip("%s: %s: kmemleak is not enabled in this kernel", km,
				 strerror(errno));
	if (write(fd, "scan", 4) != 4)
		case_fail_fast("kmemleak scan: %s", strerror(errno));
	close(fd);
	fd = open(km, O_RDONLY);
	while (fd >= 0 && (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		if (strstr(buf, "uffd_debug")) {
			diag("kmemleak reports the module:\n%s", buf);
			return CASE_FAIL;
		}
	}
	return CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "contexts.listed", .fn = case_contexts },
	{ .name = "contexts.fork_event", .fn = case_fork_event },
	{ .name = "shmem.recount", .fn = case_shmem_recount },
	{ .name = "shmem.counter", .fn = case_shmem_counter },
	{ .name = "stats", .fn = case_stats },
	{ .name = "gup.populated", .fn = case_gup_populated },
	{ .name = "gup.uffd", .fn = case_gup_uffd },
	{ .name = "module.reload", .fn = case_reload },
	{ .name = "module.kmemleak", .fn = case_kmemleak },
};

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	return run_cases(cases, ARRAY_SIZE(cases), CASE_TIMEOUT, NULL,
			 uffd_debug_missing());
}
