// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-collapse-stress: collapsing shmem while other threads truncate the
 * file, punch holes in it, fill them, write drop_caches, and arm and disarm
 * a mapping of it with userfaultfd MISSING.
 *
 * collapse_file() fills a range's holes with its new huge page before it
 * decides, and puts them back when it gives up: for an armed file that is
 * now the usual outcome, not a rare error path. A hole left holding that
 * page, or a page put back at the wrong index, corrupts the file's xarray;
 * upstream once got there, and drop_caches then spun forever on the file.
 * So while the threads run, and after they stop:
 *
 *  - no thread may get an error other than the expected refusals, and
 *    every thread must finish (the case deadline catches a hang);
 *  - drop_caches must come back within a few seconds;
 *  - the file must still behave: written whole with a pattern, it reads
 *    back the pattern through read() and through a mapping after a
 *    collapse, SEEK_HOLE finds no hole before its end, and truncated to
 *    zero it holds no blocks.
 *
 * The counts of each operation and of each collapse outcome are printed;
 * a run in which no collapse succeeded, or (with userfaultfd) none was
 * refused, judged nothing and fails.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "uffd-race-common.h"

#define NHUGE		4			/* huge pages in the file */
#define FILE_SIZE	(NHUGE * HPAGE)
#define CASE_TIMEOUT	60
#define DROP_CACHES	"/proc/sys/vm/drop_caches"

static struct test_opts opts = { .rounds = 1, .seconds = 15 };
static size_t page;
static int fd;
static char *area;		/* the whole file, 2 MiB aligned */
static atomic_int stop;

enum op {
	COLLAPSED, REFUSED, COLLAPSE_OTHER, WRITES, PUNCHES, TRUNCATES, DROPS,
	ARMS, NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	"collapsed", "refused (EBUSY)", "collapse failed otherwise", "writes",
	"hole punches", "truncates", "drop_caches", "arm/disarm cycles",
};

static atomic_long counts[NR_OPS];
static atomic_int failed;

#define fail(fmt, ...) do { diag(fmt, ##__VA_ARGS__); failed = 1; stop = 1; } while (0)

static void *collapser(void *arg)
{
	unsigned int state = (uintptr_t)arg;

	while (!stop) {
		int h = rnd(&state) % NHUGE;

		if (!madvise(area + h * HPAGE, HPAGE, MADV_COLLAPSE))
			counts[COLLAPSED]++;
		else if (errno == EBUSY)
			counts[REFUSED]++;
		else
			counts[COLLAPSE_OTHER]++;
	}
	return NULL;
}

/* Fill random pages with pwrite, so that collapses find pages and holes. */
static void *writer(void *arg)
{
	unsigned int state = (uintptr_t)arg;
	char *buf = malloc(page);

	while (!stop) {
		off_t off = (off_t)(rnd(&state) % (FILE_SIZE / page)) * page;

		memset(buf, rnd(&state), page);
		/* Past a concurrent truncation it extends the file: fine. */
		if (pwrite(fd, buf, page, off) != (ssize_t)page)
			fail("pwrite at %lld: %s", (long long)off, strerror(errno));
		counts[WRITES]++;
	}
	free(buf);
	return NULL;
}

static void *puncher(void *arg)
{
	unsigned int state = (uintptr_t)arg;

	while (!stop) {
		off_t off = (off_t)(rnd(&state) % (FILE_SIZE / page)) * page;
		off_t len = (off_t)(1 + rnd(&state) % 64) * page;

		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len))
			fail("fallocate punch %lld+%lld: %s", (long long)off, (long long)len,
			     strerror(errno));
		counts[PUNCHES]++;
		usleep(rnd(&state) % 2000);
	}
	return NULL;
}

/* Cut the file short and grow it back; the mapping beyond EOF is not touched. */
static void *truncater(void *arg)
{
	unsigned int state = (uintptr_t)arg;

	while (!stop) {
		off_t len = (off_t)(rnd(&state) % (FILE_SIZE / page)) * page;

		if (ftruncate(fd, len) || ftruncate(fd, FILE_SIZE))
			fail("ftruncate: %s", strerror(errno));
		counts[TRUNCATES]++;
		usleep(1000 + rnd(&state) % 10000);
	}
	return NULL;
}

static int drop_caches(void)
{
	int d = open(DROP_CACHES, O_WRONLY);
	int ret = d >= 0 && write(d, "3", 1) == 1 ? 0 : -1;

	if (d >= 0)
		close(d);
	return ret;
}

static void *dropper(void *arg)
{
	while (!stop) {
		if (drop_caches()) {
			fail("drop_caches: %s", strerror(errno));
			break;
		}
		counts[DROPS]++;
		usleep(20000);
	}
	return NULL;
}

/*
 * Arm and disarm a second mapping of the file, never touched (no fault to
 * serve), so that collapses are refused part of the time and roll back.
 */
static void *armer(void *arg)
{
	unsigned int state = (uintptr_t)arg;
	int uffd = uffd_race_open_api(0, NULL);
	char *m = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct uffdio_range r = { .start = (unsigned long)m, .len = FILE_SIZE };

	if (uffd < 0 || m == MAP_FAILED) {
		fail("%s setup: %s", __func__, strerror(errno));
		return NULL;
	}
	while (!stop) {
		if (uffd_register_mode(uffd, m, FILE_SIZE, UFFDIO_REGISTER_MODE_MISSING)) {
			fail("UFFDIO_REGISTER: %s", strerror(errno));
			break;
		}
		usleep(rnd(&state) % 5000);
		if (ioctl(uffd, UFFDIO_UNREGISTER, &r)) {
			fail("UFFDIO_UNREGISTER: %s", strerror(errno));
			break;
		}
		counts[ARMS]++;
		usleep(rnd(&state) % 5000);
	}
	close(uffd);
	munmap(m, FILE_SIZE);
	return NULL;
}

/* drop_caches in a child, so that a spinning one is reported, not waited on. */
static int timed_drop_caches(int seconds)
{
	pid_t pid = fork();
	double t0 = now();
	int status;

	if (!pid)
		_exit(drop_caches() ? 1 : 0);
	while (now() - t0 < seconds) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	return -1;
}

#define META	struct __test_metadata *_metadata
#define BAD_READBACK	"page %zu reads 0x%02x by read() and 0x%02x by the mapping, wrote 0x%02x"

/* After the storm the file must still work like a file. */
static void check_file(META)
{
	unsigned char *buf = malloc(FILE_SIZE);
	struct stat st;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, ftruncate(fd, FILE_SIZE));
	for (size_t i = 0; i < FILE_SIZE; i++)
		buf[i] = (unsigned char)(i / page * 7 + 1);
	ASSERT_EQ((ssize_t)FILE_SIZE, pwrite(fd, buf, FILE_SIZE, 0))
		TH_LOG("final pwrite: %s", strerror(errno));
	ASSERT_EQ((off_t)FILE_SIZE, lseek(fd, 0, SEEK_HOLE))
		TH_LOG("SEEK_HOLE found a hole in a file just written whole");
	for (int h = 0; h < NHUGE; h++)
		madvise(area + h * HPAGE, HPAGE, MADV_COLLAPSE);
	for (size_t i = 0; i < FILE_SIZE; i += page) {
		unsigned char want = (unsigned char)(i / page * 7 + 1), got = 0;

		ASSERT_TRUE(pread(fd, &got, 1, i) == 1 && got == want &&
			    (unsigned char)area[i] == want)
			TH_LOG(BAD_READBACK, i / page, got, (unsigned char)area[i], want);
	}
	ASSERT_EQ(0, ftruncate(fd, 0));
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(0, st.st_blocks) TH_LOG("truncated to 0 but the file still holds blocks");
	free(buf);
}

#define NOT_REFUSED	"no collapse was refused while the file was armed half the time: the refusal path was not exercised (this kernel does not guard armed shmem)"

static void run_stress(META, bool with_uffd)
{
	void *(*const fns[])(void *) = { collapser, collapser, writer, puncher, truncater,
					  dropper, armer };
	int nthreads = ARRAY_SIZE(fns) - !with_uffd;
	pthread_t t[ARRAY_SIZE(fns)];
	unsigned int state = opts.rand;
	double t0 = now();

	fd = memfd_create("uffd-collapse-stress", 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, FILE_SIZE));
	area = map_hpage_aligned(fd, FILE_SIZE, MAP_SHARED);
	ASSERT_NE(NULL, area);
	madvise(area, FILE_SIZE, MADV_HUGEPAGE);
	madvise(area, FILE_SIZE, MADV_HUGEPAGE);
	for (int i = 0; i < nthreads; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, fns[i], (void *)(uintptr_t)rnd(&state)));
	while (!stop && now() - t0 < opts.seconds)
		usleep(100000);
	stop = 1;
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NR_OPS; i++)
		diag("%-26s %ld", op_names[i], (long)counts[i]);
	ASSERT_EQ(0, failed);
	ASSERT_EQ(0, timed_drop_caches(5))
		TH_LOG("drop_caches failed or hung for 5 s: the page cache is corrupt");
	check_file(_metadata);
	ASSERT_NE(0, counts[COLLAPSED])
		TH_LOG("no collapse succeeded in %d s: the run judged nothing", opts.seconds);
	if (with_uffd)
		ASSERT_NE(0, counts[REFUSED]) TH_LOG(NOT_REFUSED);
}

FIXTURE(stress) {
};

FIXTURE_SETUP(stress)
{
	page = sysconf(_SC_PAGESIZE);
	test_opts_from_env(&opts);
}

FIXTURE_TEARDOWN(stress)
{
}

/* The threads run for opts.seconds; then the file is checked. */
#define STRESS_TIMEOUT	(15 + CASE_TIMEOUT)

TEST_F_TIMEOUT(stress, plain, STRESS_TIMEOUT)
{
	run_stress(_metadata, false);
}

TEST_F_TIMEOUT(stress, armed, STRESS_TIMEOUT)
{
	run_stress(_metadata, true);
}

TEST_HARNESS_MAIN
