// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-counter-fuzz: the per-inode uffd-armed counter under a random mix of
 * every operation that creates, changes or destroys a VMA of a shmem file,
 * from several processes and threads at once, checked against the debug
 * module's audit (a recount of the VMAs armed with MISSING) whenever
 * everything is still.
 *
 * Four shmem files (two memfds, two tmpfs files in /tmp) are shared by
 * NR_WORKERS worker processes of NR_THREADS threads each. Every round, each
 * thread runs OPS_PER_ROUND operations drawn from its own PRNG over its own
 * mapping slots and its process's userfaultfds:
 *
 *   map (shared or private, whole huge pages or odd page ranges), register
 *   a sub-range with MISSING, MINOR, WP or a combination, unregister a
 *   sub-range, mprotect a sub-range (split, then merge back), mremap (the
 *   uffd with or without UFFD_FEATURE_EVENT_REMAP), munmap of a part or of
 *   all, MADV_DONTNEED, MADV_REMOVE, MADV_COLLAPSE, fork (the uffd with or
 *   without UFFD_FEATURE_EVENT_FORK; the child unmaps, unregisters or closes
 *   before it exits; the monitor keeps the child's uffd or closes it at
 *   once), open and close of a uffd (possibly while another thread's fork or
 *   munmap waits for the monitor), ftruncate, pwrite, fallocate hole
 *   punching, drop_caches.
 *
 * Each process has a monitor thread that reads every event, so that no
 * non-cooperative operation waits forever. Nothing touches armed memory:
 * a page fault message is a failure. Some rounds SIGKILL a worker in the
 * middle of its operations (process exit with armed VMAs, possibly in the
 * middle of a fork) and start a new one.
 *
 * After each round, with every worker idle, the audit of every file must
 * say "audit match". After the last round every worker exits and every
 * file must be back to zero mappings, zero armed VMAs and a zero counter.
 *
 * The operation sequence of each thread is a function of the printed seed
 * (-s replays it; the interleaving of threads is the scheduler's). -t sets
 * the run time, -r the most rounds: -t 3600 -r 1000000 is a soak run.
 * SKIP without the debug module or on a kernel without the counter (the
 * operations still run there, so a kernel report still fails the run).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "uffd-debug-common.h"

#define NR_FILES	4		/* files 0, 1: memfd; 2, 3: tmpfs */
#define NR_MEMFDS	2
#define FILE_SIZE	(2 * HPAGE)
#define NR_WORKERS	3
#define NR_THREADS	2
#define NR_SLOTS	4		/* mappings per thread */
#define NR_UFFDS	3		/* uffds a worker opens itself */
#define NR_KEPT		4		/* child uffds from fork events */
#define OPS_PER_ROUND	24
#define ROUND_LIMIT_S	60		/* a round taking longer is a hang */
#define DROP_CACHES	"/proc/sys/vm/drop_caches"
#define SCAN_SLEEP	"/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs"

static struct test_opts opts = { .rounds = 400, .seconds = 90 };
static size_t page;
static int files[NR_FILES];
static char tmpfs_path[NR_FILES][64];
static __u64 features_offered;

enum op {
	OP_MAP, OP_REGISTER, OP_UNREGISTER, OP_MPROTECT, OP_MREMAP, OP_MUNMAP,
	OP_DONTNEED, OP_REMOVE, OP_COLLAPSE, OP_FORK, OP_UFFD_OPEN,
	OP_UFFD_CLOSE, OP_FTRUNCATE, OP_PWRITE, OP_PUNCH, OP_DROP_CACHES,
	NR_OPS,
};

/* Relative weights of the operations. */
static const struct {
	const char *name;
	int weight;
} ops[NR_OPS] = {
	[OP_MAP] = { "map", 10 },
	[OP_REGISTER] = { "register", 16 },
	[OP_UNREGISTER] = { "unregister", 6 },
	[OP_MPROTECT] = { "mprotect split+merge", 8 },
	[OP_MREMAP] = { "mremap", 6 },
	[OP_MUNMAP] = { "munmap", 6 },
	[OP_DONTNEED] = { "madvise DONTNEED", 3 },
	[OP_REMOVE] = { "madvise REMOVE", 3 },
	[OP_COLLAPSE] = { "madvise COLLAPSE", 4 },
	[OP_FORK] = { "fork", 5 },
	[OP_UFFD_OPEN] = { "uffd open", 4 },
	[OP_UFFD_CLOSE] = { "uffd close", 3 },
	[OP_FTRUNCATE] = { "ftruncate", 2 },
	[OP_PWRITE] = { "pwrite", 4 },
	[OP_PUNCH] = { "fallocate punch", 3 },
	[OP_DROP_CACHES] = { "drop_caches", 1 },
};

/* Shared by all processes of the run (MAP_SHARED | MAP_ANONYMOUS). */
struct shared {
	atomic_long tried[NR_OPS], done[NR_OPS];
	atomic_long fork_events, fork_kept, remap_events, remove_events,
		    unmap_events, faults;
	atomic_long exits, kills;
};

static struct shared *sh;

/* ---- a worker process ------------------------------------------------ */

struct slot {
	char *addr;		/* NULL: empty */
	size_t len;
	int file;
};

struct thread {
	pthread_t tid;
	unsigned int rs;
	struct slot slots[NR_SLOTS];
};

/* The worker's uffds: [0, NR_UFFDS) its own, then the kept child uffds. */
static struct uffd_slot {
	int fd;			/* -1: empty */
	unsigned int gen;
} uffds[NR_UFFDS + NR_KEPT];
static pthread_mutex_t ulock = PTHREAD_MUTEX_INITIALIZER;
/*
 * Held for reading across fork(), for writing to close a uffd: while fork
 * copies the fd table the child holds every uffd open, so a uffd closed
 * then stays alive, and a fork waiting for its event there waits forever.
 */
static pthread_rwlock_t forklock = PTHREAD_RWLOCK_INITIALIZER;
static int epfd;
static pthread_barrier_t start_line, finish_line;

static unsigned int pick(unsigned int *rs, unsigned int n)
{
	return rnd(rs) % n;
}

/* Put @fd in a free slot of [lo, hi) and watch it; false when full. */
static bool uffd_add(int fd, int lo, int hi)
{
	struct epoll_event ev = { .events = EPOLLIN };

	for (int i = lo; i < hi; i++) {
		if (uffds[i].fd >= 0)
			continue;
		uffds[i].fd = fd;
		uffds[i].gen++;
		ev.data.u64 = (__u64)i << 32 | uffds[i].gen;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
		return true;
	}
	return false;
}

static void uffd_del(int i)
{
	/* A fork child may still hold the file: drop it from the set here. */
	epoll_ctl(epfd, EPOLL_CTL_DEL, uffds[i].fd, NULL);
	close(uffds[i].fd);
	uffds[i].fd = -1;
	uffds[i].gen++;
}

/* Read every message of slot @i (ulock held). */
static void drain(int i)
{
	struct uffd_msg msg;

	while (uffds[i].fd >= 0 && read(uffds[i].fd, &msg, sizeof(msg)) == sizeof(msg)) {
		switch (msg.event) {
		case UFFD_EVENT_FORK:
			sh->fork_events++;
			/* Keep every other child uffd, close the rest at once. */
			if ((sh->fork_events & 1) &&
			    uffd_add(msg.arg.fork.ufd, NR_UFFDS, NR_UFFDS + NR_KEPT))
				sh->fork_kept++;
			else
				close(msg.arg.fork.ufd);
			break;
		case UFFD_EVENT_REMAP:
			sh->remap_events++;
			break;
		case UFFD_EVENT_REMOVE:
			sh->remove_events++;
			break;
		case UFFD_EVENT_UNMAP:
			sh->unmap_events++;
			break;
		case UFFD_EVENT_PAGEFAULT:
			/* Nothing touches armed memory: this is a bug. */
			sh->faults++;
			break;
		}
	}
}

static void *monitor(void *unused)
{
	struct epoll_event ev[8];

	for (;;) {
		int n = epoll_wait(epfd, ev, 8, 20);

		for (int k = 0; k < n; k++) {
			int i = ev[k].data.u64 >> 32;

			pthread_mutex_lock(&ulock);
			if (uffds[i].gen == (unsigned int)ev[k].data.u64)
				drain(i);
			pthread_mutex_unlock(&ulock);
		}
	}
	return NULL;	/* not reached: the worker ends with _exit() */
}

/* A random open uffd of the worker's own; -1 when none. */
static int any_uffd(unsigned int *rs)
{
	int start = pick(rs, NR_UFFDS);

	for (int k = 0; k < NR_UFFDS; k++) {
		int i = (start + k) % NR_UFFDS;

		if (uffds[i].fd >= 0)
			return uffds[i].fd;
	}
	return -1;
}

static __u64 random_features(unsigned int *rs)
{
	static const __u64 f[] = {
		UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP,
		UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
		UFFD_FEATURE_MISSING_SHMEM, UFFD_FEATURE_MINOR_SHMEM,
		UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	__u64 want = 0;

	for (size_t k = 0; k < ARRAY_SIZE(f); k++)
		if (pick(rs, 2))
			want |= f[k];
	return want & features_offered;
}

static bool uffd_open_one(unsigned int *rs)
{
	int fd = uffd_race_open_api(random_features(rs), NULL);
	bool ok;

	if (fd < 0)
		return false;
	pthread_mutex_lock(&ulock);
	ok = uffd_add(fd, 0, NR_UFFDS);
	pthread_mutex_unlock(&ulock);
	if (!ok)
		close(fd);
	return ok;
}

/*
 * Map [off, off + len) of a file at an address whose offset in a huge page
 * matches the file offset's, so that whole huge pages can be collapsed.
 */
static char *map_file(int file, off_t off, size_t len, int flags)
{
	char *r = mmap(NULL, len + HPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (r == MAP_FAILED)
		return NULL;
	a = (char *)(((unsigned long)r + HPAGE - 1) & ~(HPAGE - 1)) + off % HPAGE;
	if (a + len > r + len + HPAGE)
		a -= HPAGE;
	/* Give the reservation back around the mapping. */
	if (a > r)
		munmap(r, a - r);
	if (r + len + HPAGE > a + len)
		munmap(a + len, r + len + HPAGE - (a + len));
	if (mmap(a, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED, files[file], off) ==
	    MAP_FAILED) {
		munmap(a, len);
		return NULL;
	}
	madvise(a, len, MADV_HUGEPAGE);
	return a;
}

/* A random page-aligned sub-range [*a, *a + *len) of slot @s. */
static void sub_range(unsigned int *rs, struct slot *s, char **a, size_t *len)
{
	size_t pages = s->len / page, first = pick(rs, pages);

	*a = s->addr + first * page;
	*len = (1 + pick(rs, pages - first)) * page;
}

static struct slot *used_slot(struct thread *t)
{
	int start = pick(&t->rs, NR_SLOTS);

	for (int k = 0; k < NR_SLOTS; k++) {
		struct slot *s = &t->slots[(start + k) % NR_SLOTS];

		if (s->addr)
			return s;
	}
	return NULL;
}

/* The child of OP_FORK: a few changes of its own, then exit. */
static void __noreturn fork_child(struct thread *t, const int *fds)
{
	unsigned int rs = t->rs;
	int n = pick(&rs, 3);

	for (int k = 0; k < n; k++) {
		struct slot *s = &t->slots[pick(&rs, NR_SLOTS)];
		int fd = fds[pick(&rs, NR_UFFDS)];
		struct uffdio_range r;
		size_t len;
		char *a;

		if (!s->addr)
			continue;
		sub_range(&rs, s, &a, &len);
		switch (pick(&rs, 3)) {
		case 0:
			munmap(a, len);
			break;
		case 1:
			r = (struct uffdio_range){ (unsigned long)a, len };
			if (fd >= 0)
				ioctl(fd, UFFDIO_UNREGISTER, &r);
			break;
		case 2:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
	_exit(0);
}

static bool do_op(struct thread *t, enum op op)
{
	unsigned int *rs = &t->rs;
	struct slot *s = op <= OP_FORK ? used_slot(t) : NULL;
	struct uffdio_range r;
	char buf[64], *a;
	size_t len;
	off_t off;
	int fd;

	switch (op) {
	case OP_MAP:
		s = &t->slots[pick(rs, NR_SLOTS)];
		if (s->addr) {
			munmap(s->addr, s->len);
			s->addr = NULL;
		}
		s->file = pick(rs, NR_FILES);
		if (pick(rs, 2)) {
			off = pick(rs, 2) * HPAGE;
			len = off ? HPAGE : (1 + pick(rs, 2)) * HPAGE;
		} else {
			off = pick(rs, FILE_SIZE / page) * page;
			len = (1 + pick(rs, (FILE_SIZE - off) / page)) * page;
		}
		s->addr = map_file(s->file, off, len, pick(rs, 4) ? MAP_SHARED : MAP_PRIVATE);
		s->len = len;
		return s->addr;
	case OP_REGISTER: {
		static const __u64 modes[] = {
			UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_MINOR,
			UFFDIO_REGISTER_MODE_WP,
			UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
			UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
			UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP,
			UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR |
				UFFDIO_REGISTER_MODE_WP,
		};
		/* MISSING alone is what the counter is about: draw it most. */
		__u64 mode = pick(rs, 2) ? UFFDIO_REGISTER_MODE_MISSING :
					   modes[pick(rs, ARRAY_SIZE(modes))];

		fd = any_uffd(rs);
		if (!s || fd < 0)
			return false;
		sub_range(rs, s, &a, &len);
		return !uffd_register_mode(fd, a, len, mode);
	}
	case OP_UNREGISTER:
		fd = any_uffd(rs);
		if (!s || fd < 0)
			return false;
		sub_range(rs, s, &a, &len);
		r = (struct uffdio_range){ (unsigned long)a, len };
		return !ioctl(fd, UFFDIO_UNREGISTER, &r);
	case OP_MPROTECT:
		if (!s)
			return false;
		sub_range(rs, s, &a, &len);
		if (mprotect(a, len, PROT_READ))
			return false;
		/* Sometimes leave it split until a later merge. */
		return pick(rs, 4) == 0 || !mprotect(a, len, PROT_READ | PROT_WRITE);
	case OP_MREMAP:
		if (!s)
			return false;
		if (pick(rs, 2)) {
			/*
			 * A few pages, likely inside one VMA even where
			 * registrations split the slot; what moves out of the
			 * slot stays mapped until the worker exits.
			 */
			char *to = mmap(NULL, 4 * page, PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			sub_range(rs, s, &a, &len);
			len = len < 4 * page ? len : 4 * page;
			if (to == MAP_FAILED)
				return false;
			if (mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED)
				return true;
			munmap(to, 4 * page);
			return false;
		}
		len = pick(rs, 2) ? s->len : (1 + pick(rs, s->len / page)) * page;
		if (pick(rs, 4)) {
			/* A move: where EVENT_REMAP reports, and uffd state follows. */
			char *to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (to == MAP_FAILED)
				return false;
			a = mremap(s->addr, s->len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
			if (a == MAP_FAILED)
				munmap(to, len);
		} else {
			a = mremap(s->addr, s->len, len, MREMAP_MAYMOVE);
		}
		if (a == MAP_FAILED)
			return false;
		s->addr = a;
		s->len = len;
		return true;
	case OP_MUNMAP:
		if (!s)
			return false;
		if (pick(rs, 2)) {
			munmap(s->addr, s->len);
			s->addr = NULL;
			return true;
		}
		sub_range(rs, s, &a, &len);
		return !munmap(a, len);
	case OP_DONTNEED:
	case OP_REMOVE:
	case OP_COLLAPSE:
		if (!s)
			return false;
		if (op == OP_COLLAPSE) {
			a = (char *)(((unsigned long)s->addr + HPAGE - 1) & ~(HPAGE - 1));
			if (a + HPAGE > s->addr + s->len)
				return false;
			return !madvise(a, HPAGE, MADV_COLLAPSE);
		}
		sub_range(rs, s, &a, &len);
		return !madvise(a, len, op == OP_DONTNEED ? MADV_DONTNEED : MADV_REMOVE);
	case OP_FORK: {
		int fds[NR_UFFDS];
		pid_t pid;

		pthread_rwlock_rdlock(&forklock);
		for (int i = 0; i < NR_UFFDS; i++)
			fds[i] = uffds[i].fd;
		pid = fork();
		if (pid)
			pthread_rwlock_unlock(&forklock);
		if (!pid)
			fork_child(t, fds);
		rnd(rs);	/* the child's draws, consumed here as well */
		if (pid < 0)
			return false;
		return waitpid(pid, NULL, 0) == pid;
	}
	case OP_UFFD_OPEN:
		return uffd_open_one(rs);
	case OP_UFFD_CLOSE: {
		int i = pick(rs, NR_UFFDS + NR_KEPT);
		bool ok;

		pthread_rwlock_wrlock(&forklock);
		pthread_mutex_lock(&ulock);
		ok = uffds[i].fd >= 0;
		if (ok)
			uffd_del(i);
		pthread_mutex_unlock(&ulock);
		pthread_rwlock_unlock(&forklock);
		return ok;
	}
	case OP_FTRUNCATE:
		len = pick(rs, 2) ? FILE_SIZE : (1 + pick(rs, FILE_SIZE / page)) * page;
		return !ftruncate(files[pick(rs, NR_FILES)], len);
	case OP_PWRITE:
		memset(buf, 0x20 + pick(rs, 64), sizeof(buf));
		off = pick(rs, FILE_SIZE / page) * page;
		return pwrite(files[pick(rs, NR_FILES)], buf, sizeof(buf), off) == sizeof(buf);
	case OP_PUNCH:
		off = pick(rs, FILE_SIZE / page) * page;
		len = (1 + pick(rs, 64)) * page;
		return !fallocate(files[pick(rs, NR_FILES)],
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	case OP_DROP_CACHES:
		fd = open(DROP_CACHES, O_WRONLY);
		if (fd < 0)
			return false;
		len = write(fd, "3\n", 2);
		close(fd);
		return len == 2;
	case NR_OPS:
		break;
	}
	return false;
}

static enum op draw_op(unsigned int *rs)
{
	static int total;
	int w;

	if (!total)
		for (int k = 0; k < NR_OPS; k++)
			total += ops[k].weight;
	w = pick(rs, total);
	for (int k = 0; k < NR_OPS; k++) {
		w -= ops[k].weight;
		if (w < 0)
			return k;
	}
	return OP_MAP;
}

static void *worker_thread(void *arg)
{
	struct thread *t = arg;

	for (;;) {
		pthread_barrier_wait(&start_line);
		for (int k = 0; k < OPS_PER_ROUND; k++) {
			enum op op = draw_op(&t->rs);

			sh->tried[op]++;
			if (do_op(t, op))
				sh->done[op]++;
		}
		pthread_barrier_wait(&finish_line);
	}
	return NULL;	/* not reached: the worker ends with _exit() */
}

/*
 * A worker: runs a round per 'g' read from @go, answers each on @done,
 * exits on anything else.
 */
static void __noreturn worker(unsigned int seed, int go, int done)
{
	struct thread th[NR_THREADS] = { 0 };
	pthread_t mon;
	char c;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int i = 0; i < NR_UFFDS + NR_KEPT; i++)
		uffds[i].fd = -1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	pthread_barrier_init(&start_line, NULL, NR_THREADS + 1);
	pthread_barrier_init(&finish_line, NULL, NR_THREADS + 1);
	if (epfd < 0 || pthread_create(&mon, NULL, monitor, NULL))
		_exit(CASE_FAIL);
	uffd_open_one(&seed);
	for (int i = 0; i < NR_THREADS; i++) {
		th[i].rs = seed ^ (0x9e3779b9u * (i + 1));
		if (pthread_create(&th[i].tid, NULL, worker_thread, &th[i]))
			_exit(CASE_FAIL);
	}
	while (read(go, &c, 1) == 1 && c == 'g') {
		pthread_barrier_wait(&start_line);
		pthread_barrier_wait(&finish_line);
		/* The children are gone: their uffds have nothing more to say. */
		pthread_mutex_lock(&ulock);
		for (int i = NR_UFFDS; i < NR_UFFDS + NR_KEPT; i++)
			if (uffds[i].fd >= 0)
				uffd_del(i);
		pthread_mutex_unlock(&ulock);
		if (write(done, &c, 1) != 1)
			break;
	}
	/* Told to quit: exit with everything still mapped and armed. */
	_exit(0);
}

/* ---- the parent: rounds, kills, audits ------------------------------- */

struct worker_proc {
	pid_t pid;
	int go, done;
};

static struct worker_proc workers[NR_WORKERS];

static bool spawn(struct worker_proc *w, unsigned int seed)
{
	int g[2], d[2];

	if (pipe2(g, O_CLOEXEC) || pipe2(d, O_CLOEXEC))
		return false;
	fflush(stdout);
	w->pid = fork();
	if (w->pid < 0)
		return false;
	if (!w->pid) {
		/* The other workers' pipes, so that none outlives its worker. */
		for (int i = 0; i < NR_WORKERS; i++) {
			if (workers[i].pid) {
				close(workers[i].go);
				close(workers[i].done);
			}
		}
		close(g[1]);
		close(d[0]);
		worker(seed, g[0], d[1]);
	}
	/* Make the group now too, so that a kill right away finds it. */
	setpgid(w->pid, w->pid);
	close(g[0]);
	close(d[1]);
	w->go = g[1];
	w->done = d[0];
	return true;
}

/*
 * Print where every task of process group @pgrp is (every task of the
 * run's processes when @pgrp is 0), for a hang report.
 */
static void dump_group(pid_t pgrp)
{
	char path[300], buf[2048];
	DIR *proc = opendir("/proc");
	struct dirent *pe, *te;

	while (proc && (pe = readdir(proc))) {
		int pid = atoi(pe->d_name);
		struct task_stat st;
		DIR *tasks;

		if (pid <= 0 || read_task_stat(pid, 0, &st))
			continue;
		if (pgrp ? st.pgrp != pgrp : strcmp(st.comm, "uffd-counter-fu"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task", pid);
		tasks = opendir(path);
		while (tasks && (te = readdir(tasks))) {
			static const char * const what[] = { "stat", "wchan", "syscall", "stack" };

			if (atoi(te->d_name) <= 0)
				continue;
			for (size_t k = 0; k < ARRAY_SIZE(what); k++) {
				ssize_t n;
				int fd;

				snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", pid,
					 te->d_name, what[k]);
				fd = open(path, O_RDONLY);
				n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
				if (fd >= 0)
					close(fd);
				buf[n > 0 ? n : 0] = 0;
				diag("task %d/%s %s: %s", pid, te->d_name, what[k], buf);
			}
		}
		if (tasks)
			closedir(tasks);
	}
	if (proc)
		closedir(proc);
}

/* Kill a worker with its fork children and reap them all. */
static void reap(struct worker_proc *w, bool kill_it)
{
	if (kill_it)
		kill(-w->pid, SIGKILL);
	else if (write(w->go, "q", 1) != 1)
		kill(-w->pid, SIGKILL);
	close(w->go);
	close(w->done);
	waitpid(w->pid, NULL, 0);
	/* Orphaned fork children came to us (subreaper): wait for them too. */
	while (waitpid(-w->pid, NULL, 0) > 0)
		;
	w->pid = 0;
}

struct audit_totals {
	long audits, matches, mismatches, unavailable;
};

/*
 * Audit every file. @final: everything must also be back to zero.
 * Returns false on a mismatch (printed).
 */
static bool audit_files(struct audit_totals *at, const char *when, bool final)
{
	bool ok = true;

	for (int f = 0; f < NR_FILES; f++) {
		long mappings = -1, armed = -1, count = -1;
		bool have, zero;
		char *text;
		int err;

		err = f < NR_MEMFDS ?
			uffd_debug_write("shmem", "%d %d", getpid(), files[f]) :
			uffd_debug_write("shmem", "%s", tmpfs_path[f]);
		text = err ? NULL : uffd_debug_read("shmem");
		if (!text) {
			diag("%s: file %d: cannot select or read the audit: %s", when, f,
			     strerror(err ? -err : errno));
			at->mismatches++;
			return false;
		}
		at->audits++;
		text_number(text, "mappings", &mappings);
		text_number(text, "armed_vmas", &armed);
		text_number(text, "nr_uffd_missing", &count);
		have = !strstr(text, "\naudit not available");
		zero = !mappings && !armed && (!have || !count);
		/* Without the counter only the final recount can be judged. */
		if ((have && !strstr(text, "\naudit match (")) || (final && !zero)) {
			diag("%s: file %d: mappings %ld armed_vmas %ld nr_uffd_missing %ld:\n%s",
			     when, f, mappings, armed, count, text);
			at->mismatches++;
			ok = false;
		} else if (!have) {
			at->unavailable++;
		} else {
			at->matches++;
		}
		free(text);
	}
	return ok;
}

static bool make_files(void)
{
	char buf[4096];

	memset(buf, 0x5a, sizeof(buf));
	for (int f = 0; f < NR_FILES; f++) {
		if (f < NR_MEMFDS) {
			files[f] = memfd_create("uffd-counter-fuzz", 0);
		} else {
			snprintf(tmpfs_path[f], sizeof(tmpfs_path[f]),
				 "/tmp/uffd-counter-fuzz.%d.%d", getpid(), f);
			files[f] = open(tmpfs_path[f], O_RDWR | O_CREAT | O_TRUNC, 0600);
		}
		if (files[f] < 0 || ftruncate(files[f], FILE_SIZE)) {
			diag("file %d: %s", f, strerror(errno));
			return false;
		}
		/* Every other page written, the rest holes. */
		for (off_t off = 0; off < (off_t)FILE_SIZE; off += 2 * page)
			if (pwrite(files[f], buf, sizeof(buf), off) != sizeof(buf))
				return false;
	}
	return true;
}

static int set_scan_sleep(const char *val, char *old, size_t oldsz)
{
	int fd = open(SCAN_SLEEP, O_RDWR);
	ssize_t n = -1;

	if (fd < 0)
		return -1;
	if (old) {
		n = read(fd, old, oldsz - 1);
		old[n > 0 ? n : 0] = 0;
	}
	n = pwrite(fd, val, strlen(val), 0);
	close(fd);
	return n < 0 ? -1 : 0;
}

/* Says where everything is if the run outlives its time by far. */
static void *watchdog(void *unused)
{
	sleep(opts.seconds + ROUND_LIMIT_S + 20);
	diag("still running after %d s: every task of the run:", opts.seconds +
	     ROUND_LIMIT_S + 20);
	dump_group(0);
	return NULL;
}

static int case_fuzz(const struct named_case *c, const struct mem_type *unused)
{
	struct worker_proc *w = workers;
	struct audit_totals at = { 0 };
	unsigned int rs = opts.rand, gen = 0;
	char scan_sleep[32] = "";
	long total = 0, rounds = 0;
	double t0 = now();
	bool ok = true;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || !make_files())
		return CASE_FAIL;
	{
		struct uffdio_api api = { .api = UFFD_API };
		int fd = uffd_race_open(O_CLOEXEC);

		if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
			diag("userfaultfd: %s", strerror(errno));
			return CASE_FAIL;
		}
		features_offered = api.features;
		close(fd);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	{
		pthread_t wd;

		pthread_create(&wd, NULL, watchdog, NULL);
		pthread_detach(wd);
	}
	/* khugepaged scans the files too, as often as it can. */
	set_scan_sleep("10", scan_sleep, sizeof(scan_sleep));

	for (int i = 0; i < NR_WORKERS && ok; i++)
		ok = spawn(&w[i], opts.rand + 7919 * gen++);
	while (ok && rounds < opts.rounds && now() - t0 < opts.seconds) {
		int victim = pick(&rs, 3 * NR_WORKERS);	/* a kill in a third of the rounds */
		char c = 'g', when[48];

		for (int i = 0; i < NR_WORKERS; i++)
			if (write(w[i].go, &c, 1) != 1)
				ok = false;
		if (victim < NR_WORKERS) {
			usleep(pick(&rs, 200000));
			reap(&w[victim], true);
			sh->kills++;
		}
		for (int i = 0; i < NR_WORKERS && ok; i++) {
			struct pollfd p = { .fd = w[i].done, .events = POLLIN };

			if (!w[i].pid)
				continue;
			if (poll(&p, 1, ROUND_LIMIT_S * 1000) != 1 || read(w[i].done, &c, 1) != 1) {
				diag("round %ld: worker %d (pid %d) did not finish within %d s",
				     rounds, i, w[i].pid, ROUND_LIMIT_S);
				dump_group(w[i].pid);
				ok = false;
			}
		}
		if (!ok)
			break;
		rounds++;
		snprintf(when, sizeof(when), "after round %ld", rounds);
		if (!audit_files(&at, when, false))
			ok = false;
		for (int i = 0; i < NR_WORKERS && ok; i++)
			if (!w[i].pid)
				ok = spawn(&w[i], opts.rand + 7919 * gen++);
	}
	/* Everyone exits with whatever they still have mapped and armed. */
	for (int i = 0; i < NR_WORKERS; i++) {
		if (w[i].pid) {
			reap(&w[i], !ok);
			sh->exits++;
		}
	}
	if (ok && !audit_files(&at, "after every worker exited", true))
		ok = false;
	uffd_debug_write("shmem", "clear");
	if (scan_sleep[0])
		set_scan_sleep(scan_sleep, NULL, 0);
	for (int f = NR_MEMFDS; f < NR_FILES; f++)
		unlink(tmpfs_path[f]);

	for (int k = 0; k < NR_OPS; k++) {
		diag("%-22s %7ld tried %7ld succeeded", ops[k].name,
		     (long)sh->tried[k], (long)sh->done[k]);
		total += sh->tried[k];
	}
	diag("events read: fork %ld (child uffd kept %ld), remap %ld, remove %ld, unmap %ld",
	     (long)sh->fork_events, (long)sh->fork_kept, (long)sh->remap_events,
	     (long)sh->remove_events, (long)sh->unmap_events);
	diag("workers: %ld killed mid-round, %ld exited at the end", (long)sh->kills,
	     (long)sh->exits);
	diag("%ld rounds, %ld operations in %.1f s", rounds, total, now() - t0);
	diag("audits %ld: %ld match, %ld mismatch, %ld unavailable", at.audits,
	     at.matches, at.mismatches, at.unavailable);
	if (sh->faults) {
		diag("%ld page fault message(s), but nothing touched armed memory",
		     (long)sh->faults);
		ok = false;
	}
	if (!ok)
		return CASE_FAIL;
	if (!rounds || !sh->done[OP_REGISTER] || !at.audits) {
		diag("nothing was exercised: no round, registration or audit");
		return CASE_FAIL;
	}
	if (at.unavailable)
		return case_skip("the kernel has no uffd-armed counter: %s",
				 "the audits checked nothing");
	return CASE_PASS;
}

static const struct named_case cases[] = {
	{ .name = "fuzz", .fn = case_fuzz },
};

int main(int argc, char **argv)
{
	parse_test_opts(argc, argv, &opts);
	page = sysconf(_SC_PAGESIZE);
	return run_cases(cases, ARRAY_SIZE(cases), opts.seconds + 2 * ROUND_LIMIT_S + 30, &opts,
			 uffd_debug_missing());
}
