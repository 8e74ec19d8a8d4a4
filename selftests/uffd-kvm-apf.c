// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-kvm-apf: seed 000 the way it was reported, through KVM's async page
 * fault worker. A minimal VMM of our own (in the manner of the kernel's KVM
 * selftests, without their library) runs a guest whose memory is anonymous
 * memory armed with userfaultfd MISSING; its monitor resolves a few faults
 * and then closes the userfaultfd while the vCPUs keep touching memory.
 *
 * The guest runs in 32-bit protected mode, no paging, with interrupts
 * enabled and an in-kernel local APIC: that is what lets KVM take the async
 * page fault path for a guest that never enabled the paravirtual protocol
 * (kvm_can_do_async_pf()). A nested page fault on an unpopulated page then
 * tries GUP with FOLL_NOWAIT in the vCPU thread, gets "would wait" from
 * handle_userfault(), queues async_pf_execute() on a kworker and halts the
 * vCPU until that worker's GUP has the page. So the faults the monitor
 * reads come from a kworker, not from the VMM: the message's thread id
 * (UFFD_FEATURE_THREAD_ID) says which, and the test counts both.
 *
 *  kvm_apf.resolved  the control, first: the rounds of kvm_apf.anon, but
 *                    the monitor resolves every page before it closes, so
 *                    no fault meets the released context; passes anywhere
 *  kvm_apf.anon      anonymous guest memory; each round a new VM of 2
 *                    vCPUs, each writing its own 64 pages; the monitor
 *                    closes at a random point of the time the next fault
 *                    takes to come
 *
 * A first VM over memory nobody arms must run to its end, or the test
 * SKIPs: this machine cannot run guests. Each round must see close()
 * return within 5 s (times $UFFD_TIMEOUT_SCALE), the guest finish and
 * every page hold what it wrote.
 *
 * On a kernel where a fault on the released context returns
 * VM_FAULT_NOPAGE (6.1 without the series), a GUP that
 * reaches handle_userfault() between the release's "released" store and
 * its mmap_write_lock() retries for ever with mmap_lock held for read. If
 * that GUP is the vCPU thread's own (FOLL_NOWAIT), killing the VMM ends it;
 * if it is the async page fault worker's, nothing does: no signal reaches a
 * kworker, and the closing VMM stays in D state until reboot. The test
 * tells the two apart by killing the VMM (and names the kworker that burns
 * a CPU), reports which it was, and goes on after the first until a round
 * hangs the second way or time runs out.
 *
 * A pass is worth something only if rounds closed inside that window: on a
 * kernel with the series its tracepoint counts, through the debug module's
 * stats, the faults at a released context, and a run in which the
 * worker's GUP never met one SKIPs.
 *
 * Without /dev/kvm, or on a CPU without SVM or VMX under it, it SKIPs.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "uffd-debug-common.h"

#define NR_VCPUS	2
#define VCPU_PAGES	64		/* guest pages each vCPU touches */
#define PAGE		4096UL
#define LOW_GPA		0x0UL		/* code, not armed */
#define LOW_SIZE	0x10000UL
#define CODE_GPA	0x1000UL
#define DATA_GPA	0x100000UL	/* armed with userfaultfd MISSING */
#define DATA_SIZE	(NR_VCPUS * VCPU_PAGES * PAGE)
#define PORT_DONE	0x10
/* Time limits in seconds; a debug kernel stretches them (timeout_scale()). */
#define HANG_BASE_S	5		/* run_case() scales a case deadline itself */
#define HANG_S		(HANG_BASE_S * timeout_scale())
#define KILL_WAIT_S	(5 * timeout_scale())
#define PROBE_S		(60 * timeout_scale())
/*
 * Under QEMU's TCG the nested guest now and then goes astray: a vCPU stops
 * with an internal error (its rip ran off the code into memory no slot
 * backs), or no fault comes for HANG_S while the monitor still waits and
 * no vCPU is done early. Seen on 6.1 without the series too, and in
 * kvm_apf.resolved, where nothing is closed before every page is in: not
 * the release's doing. A case counts such rounds, shows them and goes on,
 * up to this many; after more it has no verdict and SKIPs (which fails
 * must-pass).
 */
#define MAX_ANOMALIES	3
static_assert(NR_VCPUS == 2, "the diagnostics name two vCPUs");

/*
 * The guest, 32-bit code: write each page's own address into its first
 * word, one page after the other from %esi up to %edi, then say so on
 * PORT_DONE.
 */
static const unsigned char guest_code[] = {
	0x89, 0x36,				/* 1: mov  %esi,(%esi)    */
	0x81, 0xc6, 0x00, 0x10, 0x00, 0x00,	/*    add  $0x1000,%esi   */
	0x39, 0xfe,				/*    cmp  %edi,%esi      */
	0x72, 0xf4,				/*    jb   1b             */
	0xe6, PORT_DONE,			/*    out  %al,$PORT_DONE */
	0xeb, 0xfe,				/* 2: jmp  2b             */
};

/* What a round's VMM tells the parent, in memory shared across fork(). */
enum stage { ST_START, ST_RUNNING, ST_CLOSING, ST_CLOSED, ST_DONE };
struct round_report {
	int stage;			/* set_stage(), stage_of() */
	int vcpu_tid[NR_VCPUS];
	int resolved;
	int resolved_of[NR_VCPUS];	/* of the pages each vCPU writes */
	int faults_kworker;		/* messages from a thread not the VMM's */
	int faults_vcpu;		/* from a vCPU thread (synchronous GUP) */
	double fault_gap_us;		/* mean COPY-to-next-fault time */
	double close_ms;
	bool anomaly;			/* the failure is the nested guest's */
	char error[320];
};

/* The report is read by another process while it changes. */
static void set_stage(struct round_report *rep, int stage)
{
	__atomic_store_n(&rep->stage, stage, __ATOMIC_RELEASE);
}

static int stage_of(struct round_report *rep)
{
	return __atomic_load_n(&rep->stage, __ATOMIC_ACQUIRE);
}

static struct test_opts opts = { .rounds = 300, .seconds = 90 };

struct vcpu {
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	struct round_report *rep;
	int idx;
	int exit_reason;
	char why[224];		/* what KVM said about an unexpected exit */
	bool stopped;		/* the thread is done with KVM_RUN */
	unsigned long exit_rip;	/* the guest's rip at an unexpected exit */
	unsigned long done_esi;	/* the guest's %esi at PORT_DONE */
	char *pages;		/* the VMM's view of the pages it writes */
};

static __printf(2, 3) void fail_round(struct round_report *rep, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rep->error, sizeof(rep->error), fmt, ap);
	va_end(ap);
	/* At once: exiting may wait for a vCPU thread that never returns. */
	dprintf(2, "# VMM: %s\n", rep->error);
	_exit(1);
}

static void set_segments(struct kvm_sregs *s)
{
	struct kvm_segment seg = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10,
		.type = 3, .present = 1, .dpl = 0, .db = 1, .s = 1, .g = 1,
	};

	s->ds = seg;
	s->es = seg;
	s->fs = seg;
	s->gs = seg;
	s->ss = seg;
	seg.selector = 0x8;
	seg.type = 11;			/* code: execute/read, accessed */
	s->cs = seg;
	s->cr0 |= 1;			/* protected mode, paging off */
}

/*
 * Say what KVM told about an exit the guest never asks for: an internal
 * error's suberror and first data words (for an emulation failure without
 * instruction bytes: flags, then the exit code and its two info words;
 * for SVM's unexpected exit reason, the exit code first), and where the
 * guest was. An internal error is the nested guest's anomaly (below).
 */
static void describe_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char err[128] = "", where[96] = "";
	struct kvm_regs regs;

	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		snprintf(err, sizeof(err), " (suberror %u, %u data: %#llx %#llx %#llx %#llx)",
			 run->internal.suberror, run->internal.ndata,
			 run->internal.data[0], run->internal.data[1],
			 run->internal.data[2], run->internal.data[3]);
	if (!ioctl(v->fd, KVM_GET_REGS, &regs)) {
		v->exit_rip = regs.rip;
		snprintf(where, sizeof(where), " at rip %#llx, esi %#llx, %s close()",
			 regs.rip, regs.rsi,
			 stage_of(v->rep) >= ST_CLOSING ? "after" : "before");
	}
	snprintf(v->why, sizeof(v->why), "%s%s", err, where);
}

/*
 * Whether a stopped vCPU went astray (see MAX_ANOMALIES): KVM could not
 * emulate an instruction outside the guest's code, which is what a rip
 * that ran off the code looks like. Anything else is judged.
 */
static bool astray(struct vcpu *v)
{
	return v->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
	       v->run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	       (v->exit_rip < CODE_GPA || v->exit_rip >= CODE_GPA + sizeof(guest_code));
}

static void run_vcpu(struct vcpu *v)
{
	v->rep->vcpu_tid[v->idx] = syscall(SYS_gettid);
	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			v->exit_reason = -errno;
			return;
		}
		if (v->run->exit_reason == KVM_EXIT_IO &&
		    v->run->io.port == PORT_DONE) {
			struct kvm_regs regs;

			if (!ioctl(v->fd, KVM_GET_REGS, &regs))
				v->done_esi = regs.rsi;
			v->exit_reason = 0;
			return;
		}
		v->exit_reason = v->run->exit_reason;
		describe_exit(v);
		return;
	}
}

static void *vcpu_loop(void *arg)
{
	struct vcpu *v = arg;

	run_vcpu(v);
	__atomic_store_n(&v->stopped, true, __ATOMIC_RELEASE);
	return NULL;
}

static void setup_vcpu(int vm, int mmap_size, struct vcpu *v, int idx,
		       struct round_report *rep)
{
	/* With the in-kernel APIC an AP would wait for INIT/SIPI: start it. */
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = CODE_GPA,
		.rflags = 0x202,	/* IF: KVM may use the async PF path */
		.rsi = DATA_GPA + idx * VCPU_PAGES * PAGE,
		.rdi = DATA_GPA + (idx + 1) * VCPU_PAGES * PAGE,
	};

	v->idx = idx;
	v->rep = rep;
	v->fd = ioctl(vm, KVM_CREATE_VCPU, idx);
	if (v->fd < 0)
		fail_round(rep, "KVM_CREATE_VCPU: %s", strerror(errno));
	v->run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		fail_round(rep, "mmap(vcpu): %s", strerror(errno));
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs))
		fail_round(rep, "KVM_GET_SREGS: %s", strerror(errno));
	set_segments(&sregs);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) || ioctl(v->fd, KVM_SET_REGS, &regs) ||
	    ioctl(v->fd, KVM_SET_MP_STATE, &mp))
		fail_round(rep, "KVM_SET_{SREGS,REGS,MP_STATE}: %s", strerror(errno));
}

static int set_slot(int vm, int slot, unsigned long gpa, void *hva, size_t len)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = len,
		.userspace_addr = (unsigned long)hva,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
}

static bool is_vcpu(struct round_report *rep, int tid)
{
	for (int i = 0; i < NR_VCPUS; i++)
		if (rep->vcpu_tid[i] == tid)
			return true;
	return false;
}

/* Whether task @pid is a kworker. */
static bool is_kworker(int pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strncmp(comm, "kworker", 7);
}

/* The task's state letter and wchan, for the report; "?" when gone. */
static void task_state(int pid, int tid, char *buf, size_t len)
{
	char path[64], wchan[64] = "?";
	struct task_stat st;
	FILE *f;

	if (read_task_stat(pid, tid, &st))
		st.state = '?';
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(wchan, sizeof(wchan), f))
			snprintf(wchan, sizeof(wchan), "?");
		fclose(f);
	}
	snprintf(buf, len, "%c %s", st.state, wchan);
}

/*
 * How many of a vCPU's pages the VMM's memory has: a guest that finished
 * with fewer faults than pages either stopped its loop early (esi short of
 * its end) or wrote pages the VMM does not have: guest writes that went to
 * other memory.
 */
static int pages_present(char *pages)
{
	unsigned char vec[VCPU_PAGES];
	int n = 0;

	if (mincore(pages, VCPU_PAGES * PAGE, vec))
		return -1;
	for (int i = 0; i < VCPU_PAGES; i++)
		n += vec[i] & 1;
	return n;
}

/*
 * Where a round stands when no fault comes: each vCPU, done (it reached
 * PORT_DONE) after how many of its pages came in, stopped (how) or its
 * thread's state and wait channel; and every kworker that is not idle,
 * with its own (one in handle_userfault holds a fault the monitor never
 * read). True when it is the nested guest's anomaly: no vCPU stopped but
 * astray (not by a KVM_RUN error), none done with a page of its own never
 * copied in (a write that faulted nowhere) and no task of the round in
 * handle_userfault (a fault the monitor never got): those are real bugs.
 */
static bool stuck_report(struct vcpu *v, char *buf, size_t len)
{
	bool anomaly = true;
	char st[240];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	for (int i = 0; i < NR_VCPUS; i++) {
		bool stopped = __atomic_load_n(&v[i].stopped, __ATOMIC_ACQUIRE);

		if (!stopped)
			task_state(getpid(), v[i].rep->vcpu_tid[i], st, sizeof(st));
		else if (!v[i].exit_reason)
			snprintf(st, sizeof(st),
				 "done after %d/%d of its pages (%d present, esi %#lx)",
				 v[i].rep->resolved_of[i], VCPU_PAGES,
				 pages_present(v[i].pages), v[i].done_esi);
		else
			snprintf(st, sizeof(st), "stopped: %s %d%s",
				 v[i].exit_reason < 0 ? "errno" : "exit reason",
				 abs(v[i].exit_reason), v[i].why);
		if (!stopped && strstr(st, "handle_userfault"))
			anomaly = false;	/* waits for a fault nobody read */
		else if (stopped && v[i].exit_reason && !astray(&v[i]))
			anomaly = false;	/* a KVM_RUN error, say */
		else if (stopped && !v[i].exit_reason &&
			 v[i].rep->resolved_of[i] < VCPU_PAGES)
			anomaly = false;	/* done early: a write faulted nowhere */
		if (n < len)
			n += snprintf(buf + n, len - n, "%svCPU %d %s", i ? ", " : "", i, st);
	}
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);

		if (pid <= 0 || !is_kworker(pid))
			continue;
		task_state(pid, pid, st, sizeof(st));
		if (strstr(st, "handle_userfault"))
			anomaly = false;	/* waits for a fault nobody read */
		if (!strstr(st, "worker_thread") && n < len)
			n += snprintf(buf + n, len - n, ", kworker %d %s", pid, st);
	}
	if (d)
		closedir(d);
	return anomaly;
}

/*
 * One round's VMM: a VM with NR_VCPUS vCPUs over armed memory; resolve
 * faults until @resolve pages are in, wait @delay_us, close the
 * userfaultfd, let the guest finish on plain anonymous memory and check
 * what it wrote.
 */
static void __noreturn vmm_round(int resolve, int delay_us, struct round_report *rep)
{
	static char src[PAGE];
	struct vcpu v[NR_VCPUS] = {};
	struct uffd_msg msg;
	double t, gap = 0, copied = 0;
	int kvm, vm, uffd, mmap_size, done = 0, faults = 0, i;
	unsigned long addr;
	char *low, *data;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail_round(rep, "/dev/kvm: %s", strerror(errno));
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm < 0 || mmap_size <= 0)
		fail_round(rep, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0))
		fail_round(rep, "KVM_CREATE_IRQCHIP: %s", strerror(errno));

	low = mmap(NULL, LOW_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	data = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (low == MAP_FAILED || data == MAP_FAILED)
		fail_round(rep, "mmap: %s", strerror(errno));
	memcpy(low + CODE_GPA, guest_code, sizeof(guest_code));
	uffd = -1;
	if (resolve >= 0) {
		uffd = uffd_race_open_api(UFFD_FEATURE_THREAD_ID, NULL);
		if (uffd < 0 ||
		    uffd_register_mode(uffd, data, DATA_SIZE, UFFDIO_REGISTER_MODE_MISSING))
			fail_round(rep, "userfaultfd: %s", strerror(errno));
	}
	if (set_slot(vm, 0, LOW_GPA, low, LOW_SIZE) ||
	    set_slot(vm, 1, DATA_GPA, data, DATA_SIZE))
		fail_round(rep, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));

	for (i = 0; i < NR_VCPUS; i++) {
		setup_vcpu(vm, mmap_size, &v[i], i, rep);
		v[i].pages = data + i * VCPU_PAGES * PAGE;
	}
	set_stage(rep, ST_RUNNING);
	for (i = 0; i < NR_VCPUS; i++)
		if (pthread_create(&v[i].thread, NULL, vcpu_loop, &v[i]))
			fail_round(rep, "pthread_create failed");

	while (done < resolve) {
		int r = uffd_race_read_msg(uffd, &msg, HANG_S * 1000);

		if (r <= 0) {
			char where[280] = "";

			rep->anomaly = stuck_report(v, where, sizeof(where)) && r == 0;
			fail_round(rep, "no fault within %d s after %d resolved (%s): %s",
				   HANG_S, done, r ? strerror(errno) : "timeout", where);
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		t = now();
		faults++;
		if (copied)
			gap += t - copied;
		if (is_vcpu(rep, msg.arg.pagefault.feat.ptid))
			rep->faults_vcpu++;
		else
			rep->faults_kworker++;
		addr = msg.arg.pagefault.address & ~(PAGE - 1);
		r = uffd_copy(uffd, (void *)addr, src, PAGE);
		if (r && r != -EEXIST)
			fail_round(rep, "UFFDIO_COPY: %s", strerror(-r));
		copied = now();
		/* A second fault on a page already in resolves nothing. */
		if (!r) {
			rep->resolved = ++done;
			rep->resolved_of[(addr - (unsigned long)data) / (VCPU_PAGES * PAGE)]++;
		}
	}
	if (faults > 1)
		rep->fault_gap_us = gap / (faults - 1) * 1e6;
	/* Close while the vCPUs run on: the next faults are on their way. */
	for (t = now() + delay_us / 1e6; now() < t;)
		;
	set_stage(rep, ST_CLOSING);
	t = now();
	if (uffd >= 0)
		close(uffd);
	rep->close_ms = (now() - t) * 1e3;
	set_stage(rep, ST_CLOSED);

	/* All of them first: one astray must not hide another's error. */
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(v[i].thread, NULL);
	rep->anomaly = true;
	for (i = 0; i < NR_VCPUS; i++)
		if (v[i].exit_reason && !astray(&v[i]))
			rep->anomaly = false;
	for (i = 0; i < NR_VCPUS; i++)
		if (v[i].exit_reason && rep->anomaly == astray(&v[i]))
			fail_round(rep, "vCPU %d stopped with %s %d%s", i,
				   v[i].exit_reason < 0 ? "errno" : "exit reason",
				   abs(v[i].exit_reason), v[i].why);
	rep->anomaly = false;
	for (unsigned long off = 0; off < DATA_SIZE; off += PAGE)
		if (*(unsigned int *)(data + off) != DATA_GPA + off)
			fail_round(rep, "guest page %#lx reads %#x after the run",
				   DATA_GPA + off, *(unsigned int *)(data + off));
	set_stage(rep, ST_DONE);
	_exit(0);
}

/* utime + stime of task @pid in clock ticks, -1 when it is gone. */
static long cpu_ticks(int pid)
{
	struct task_stat st;

	return read_task_stat(pid, 0, &st) ? -1 : st.utime + st.stime;
}

/*
 * Name the kworker that spins: the one that used most of a CPU over
 * @seconds. Prints it and returns true when there is one.
 */
static bool report_spinning_kworker(double seconds)
{
	static int pids[4096];
	static long before[4096];
	long hz = sysconf(_SC_CLK_TCK), best = 0, t;
	int pid, n = 0, best_pid = 0;
	struct dirent *e;
	double t0, t1;
	DIR *d = opendir("/proc");

	while (d && (e = readdir(d)) && n < (int)ARRAY_SIZE(pids)) {
		pid = atoi(e->d_name);
		if (pid <= 0 || !is_kworker(pid))
			continue;
		pids[n] = pid;
		before[n++] = cpu_ticks(pid);
	}
	if (d)
		closedir(d);
	t0 = now();
	usleep(seconds * 1e6);
	for (int i = 0; i < n; i++) {
		if (before[i] < 0)
			continue;
		t = cpu_ticks(pids[i]) - before[i];
		if (t > best) {
			best = t;
			best_pid = pids[i];
		}
	}
	t1 = now();
	if (!best_pid || best < (t1 - t0) * hz / 2)
		return false;
	diag("kworker %d used %.0f%% of a CPU over %.1f s", best_pid,
	     100.0 * best / hz / (t1 - t0), t1 - t0);
	return true;
}

static bool wait_exit(pid_t pid, double seconds, int *status)
{
	double end = now() + seconds;

	while (now() < end) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * A first VM over memory nobody arms: the guest must run to its end here,
 * or this machine cannot run KVM guests (nested SVM under TCG) and the
 * test has nothing to say.
 */
static bool probe_plain(struct round_report *rep)
{
	double t = now();
	char state[96];
	int status;
	pid_t pid;

	memset(rep, 0, sizeof(*rep));
	pid = fork();
	if (pid < 0)
		case_fail_fast("fork: %s", strerror(errno));
	if (!pid)
		vmm_round(-1, 0, rep);
	if (!wait_exit(pid, PROBE_S, &status)) {
		task_state(pid, rep->vcpu_tid[0], state, sizeof(state));
		diag("a guest over plain memory did not finish in %d s (stage %d, vCPU 0: %s):",
		     PROBE_S, stage_of(rep), state);
		diag("KVM cannot run guests here");
		kill(pid, SIGKILL);
		wait_exit(pid, KILL_WAIT_S, &status);
		return false;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		diag("a guest over plain memory failed: %s",
		     rep->error[0] ? rep->error : "killed by a signal");
		return false;
	}
	diag("a guest over plain memory (%lu pages, %d vCPUs) ran in %.0f ms",
	     DATA_SIZE / PAGE, NR_VCPUS, (now() - t) * 1e3);
	return true;
}

/*
 * Wait for round @round's VMM @pid to exit (true) or to stay in close()
 * for HANG_S (false), saying every 10 s where it is.
 */
static bool wait_round(pid_t pid, struct round_report *rep, int round, int *status)
{
	double closing = 0, started = now(), told = started;
	char st[3][96];

	for (;;) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		if (stage_of(rep) == ST_CLOSING && !closing)
			closing = now();
		if (closing && stage_of(rep) == ST_CLOSING && now() - closing > HANG_S)
			return false;
		if (now() - told > 10) {
			told = now();
			task_state(pid, pid, st[0], sizeof(st[0]));
			task_state(pid, rep->vcpu_tid[0], st[1], sizeof(st[1]));
			task_state(pid, rep->vcpu_tid[1], st[2], sizeof(st[2]));
			diag("round %d: %.0f s, stage %d, %d resolved; VMM %s, vCPUs %s / %s",
			     round, told - started, stage_of(rep), rep->resolved,
			     st[0], st[1], st[2]);
		}
		usleep(2000);
	}
}

enum hang { HANG_VCPU, HANG_KWORKER, HANG_UNKNOWN };

/*
 * The VMM @pid hangs in close(): kill it. HANG_VCPU when that ends it (its
 * own vCPU thread's GUP held mmap_lock, and the kill stopped it);
 * HANG_KWORKER when it survives and a kworker burns a CPU meanwhile: the
 * async page fault worker's GUP holds it; HANG_UNKNOWN otherwise.
 */
static enum hang classify_hang(pid_t pid)
{
	char state[96];
	int status;

	kill(pid, SIGKILL);
	if (wait_exit(pid, KILL_WAIT_S, &status)) {
		diag("killing the VMM ended it: its vCPU thread's GUP held mmap_lock");
		return HANG_VCPU;
	}
	task_state(pid, pid, state, sizeof(state));
	diag("the VMM survives SIGKILL for %d s (%s)", KILL_WAIT_S, state);
	if (!report_spinning_kworker(2)) {
		diag("but no kworker uses a CPU: not the seed's livelock, cause unknown");
		return HANG_UNKNOWN;
	}
	diag("a kworker's GUP holds the VMM's mmap_lock and spins on the released");
	diag("userfaultfd: KVM's async page fault worker never finishes (seed 000);");
	diag("it and the VMM stay stuck until reboot");
	return HANG_KWORKER;
}

/*
 * The series' tracepoint on faults at a released context, through the
 * debug module's stats: GUP that dropped mmap_lock to retry (the async
 * page fault worker's here: no vCPU fault is synchronous; a vCPU's NOWAIT
 * GUP returns before the tracepoint). False when the kernel has no such
 * tracepoint (no series) or the module cannot be had.
 */
static bool released_faults(long *dropped)
{
	char *text = uffd_debug_ready() ? NULL : uffd_debug_read("stats");
	bool ok = text && text_number(text, "fault_released.retry_lock_dropped", dropped);

	free(text);
	return ok;
}

/*
 * Rounds of VMs until opts.rounds or opts.seconds. @race: close the
 * userfaultfd after a few faults, at a random point of the next fault's
 * way (kvm_apf.anon); else only once every page is in, so that no fault
 * can meet the released context (kvm_apf.resolved, the control: the same
 * VMs, async page faults and teardown without the race).
 */
static int kvm_apf_rounds(bool race)
{
	struct round_report *rep;
	unsigned int st = opts.rand;
	int round, status, kworker = 0, vcpu = 0, killable = 0, anomalies = 0;
	double t0 = now(), gap_us = 0, close_max = 0;
	long dropped0, dropped;
	bool counted, hung;
	char state[96];
	pid_t pid;

	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rep == MAP_FAILED)
		case_fail_fast("mmap: %s", strerror(errno));
	if (!probe_plain(rep))
		return CASE_SKIP;
	counted = released_faults(&dropped0);
	for (round = 1; round <= opts.rounds && now() - t0 < opts.seconds; round++) {
		int resolve = DATA_SIZE / PAGE, delay = 0;

		if (race) {
			resolve = 1 + rnd(&st) % (VCPU_PAGES / 2);
			/* Sweep the close over the time the next fault takes to come. */
			delay = gap_us ? rnd(&st) % (int)(2 * gap_us + 1) : 0;
		}

		memset(rep, 0, sizeof(*rep));
		pid = fork();
		if (pid < 0)
			case_fail_fast("fork: %s", strerror(errno));
		if (!pid)
			vmm_round(resolve, delay, rep);
		hung = !wait_round(pid, rep, round, &status);
		/* A hung round's faults were resolved all the same: count them. */
		kworker += rep->faults_kworker;
		vcpu += rep->faults_vcpu;
		if (hung) {
			char vs[NR_VCPUS][96];

			task_state(pid, pid, state, sizeof(state));
			for (int i = 0; i < NR_VCPUS; i++)
				task_state(pid, rep->vcpu_tid[i], vs[i], sizeof(vs[i]));
			diag("round %d (%d faults resolved, close %d us after the last copy):",
			     round, resolve, delay);
			diag("close(uffd) hangs > %d s (VMM: %s; vCPUs: %s / %s)", HANG_S,
			     state, vs[0], vs[1]);
			if (classify_hang(pid) == HANG_VCPU && race) {
				killable++;
				continue;
			}
			diag("up to it: %d rounds, faults from a kworker %d, a vCPU %d",
			     round, kworker, vcpu);
			return CASE_FAIL;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			bool lost = WIFEXITED(status) && rep->anomaly;

			if (lost && ++anomalies <= MAX_ANOMALIES) {
				diag("round %d lost to the nested guest: %s", round, rep->error);
				continue;
			}
			diag("round %d: the VMM failed: %s", round,
			     rep->error[0] ? rep->error : "killed by a signal");
			/* Neither a pass nor the bug: say so, do not fail as if it were. */
			if (lost)
				return case_skip("more than %d rounds lost to the nested guest: %s",
						 MAX_ANOMALIES, "no verdict");
			return CASE_FAIL;
		}
		if (rep->fault_gap_us)
			gap_us = gap_us ? (gap_us * 3 + rep->fault_gap_us) / 4 : rep->fault_gap_us;
		if (rep->close_ms > close_max)
			close_max = rep->close_ms;
	}
	diag("%d rounds in %.1f s; faults from a kworker %d, from a vCPU thread %d;",
	     round - 1, now() - t0, kworker, vcpu);
	if (anomalies)
		diag("%d of them lost to the nested guest (above), not judged", anomalies);
	diag("a fault every %.0f us after a copy; close() at most %.2f ms", gap_us, close_max);
	if (killable) {
		diag("%d round(s) hung in the VMM's own GUP: the release livelock is live",
		     killable);
		return CASE_FAIL;
	}
	if (!kworker) {
		diag("no fault came from a kworker: KVM did not take the async page fault path");
		return CASE_FAIL;
	}
	if (!race) {
		/* Every page was in before close(): nothing may have met it. */
		if (counted && released_faults(&dropped) && dropped != dropped0) {
			diag("yet %ld faults met the released context: not a control",
			     dropped - dropped0);
			return CASE_FAIL;
		}
		return CASE_PASS;
	}
	/* A pass says something only if some round closed inside the window. */
	if (!counted || !released_faults(&dropped)) {
		diag("no released-context tracepoint here: the window hits are not counted");
		return CASE_PASS;
	}
	diag("faults at the released context: %ld from the worker's GUP (lock dropped, retried)",
	     dropped - dropped0);
	if (dropped == dropped0)
		return case_skip("no round closed while the worker's GUP was at %s",
				 "the released context");
	return CASE_PASS;
}

/* @c->data: whether the monitor leaves the faults unresolved (the race). */
static int case_kvm_apf(const struct named_case *c, const struct mem_type *unused)
{
	return kvm_apf_rounds(*(const bool *)c->data);
}

static const bool resolved, unresolved = true;

/* The control first: after a livelock the kernel is no control. */
static const struct named_case cases[] = {
	{ .name = "kvm_apf.resolved", .fn = case_kvm_apf, .data = &resolved },
	{ .name = "kvm_apf.anon", .fn = case_kvm_apf, .data = &unresolved },
};

int main(int argc, char **argv)
{
	const char *why = NULL;
	int kvm;

	/* Diagnostics as they come: a case killed on its deadline loses a buffer. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_test_opts(argc, argv, &opts);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		why = errno == ENOENT ? "no /dev/kvm (a kernel without KVM, or no SVM/VMX)" :
		      "/dev/kvm cannot be opened";
	else if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
		 ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ASYNC_PF) <= 0)
		why = "KVM without an in-kernel irqchip or async page faults";
	if (kvm >= 0)
		close(kvm);
	return run_cases(cases, ARRAY_SIZE(cases), opts.seconds + 3 * HANG_BASE_S + 60, &opts, why);
}
