// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_debug: inspect userfaultfd state and drive the GUP path of KVM's
 * async page fault worker from a kworker.
 *
 * Files under /sys/kernel/debug/uffd_debug/ (Documentation/uffd-debug.md):
 *
 *   contexts  every live userfaultfd context: owner, fds, features, flags,
 *             released, pending faults and events, registered ranges
 *   shmem     write "PID FD" or an absolute path to select a shmem file,
 *             "clear" to drop it; read its uffd-armed counter and an audit
 *             that recounts the VMAs mapping it with VM_UFFD_MISSING
 *   stats     counts from the series' tracepoints; write "reset"
 *   gup       write "PID ADDRESS LENGTH [write]": a kworker faults the
 *             range in as KVM's async_pf_execute() does; read the outcome
 *
 * Parts that need the userfaultfd series say "not available" on a kernel
 * without it.  Every lookup takes its references for the duration of the
 * operation only, except the shmem selection, which pins the file's path
 * until it is replaced, cleared or the module goes away.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb_inline.h>
#include <linux/kallsyms.h>
#include <linux/ktime.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/pid.h>
#include <linux/rbtree.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/random.h>
#include <linux/siphash.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "compat.h"

/* Longest line a debugfs file accepts, and the longest GUP range. */
#define INPUT_MAX	256
#define GUP_MAX_BYTES	(64UL << 20)
/* How long a read waits for a contended mmap_lock before saying "busy". */
#define MMAP_TRIES	50
#define MMAP_TRY_MS	2
/* Cap on the VMAs the shmem audit lists (it counts all of them). */
#define AUDIT_LIST_MAX	64

static struct dentry *uffd_debug_dir;

/*
 * The files, each with a reference of ours, and how long unload waits for
 * an open of one of them still in flight.
 */
#define NR_FILES	4
#define OPEN_DRAIN_MS	10000
static struct dentry *uffd_debug_files[NR_FILES];

/*
 * Contexts and mms are named by a keyed hash of their address: stable for
 * the module's lifetime, comparable between files, no address leaked
 * (%p prints "(ptrval)" for all of them until the CRNG is ready).
 */
static siphash_key_t id_key;

static u32 obj_id(const void *p)
{
	return (u32)siphash_1u64((u64)(unsigned long)p, &id_key);
}

/* ---- input ---------------------------------------------------------- */

/*
 * Copy one line of user input: no embedded NUL, at most INPUT_MAX bytes,
 * one trailing newline allowed.  Returns the length or a negative errno.
 */
static ssize_t read_line(const char __user *ubuf, size_t count, char *buf)
{
	if (count == 0 || count >= INPUT_MAX)
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (strlen(buf) != count)
		return -EINVAL;
	if (buf[count - 1] == '\n')
		buf[--count] = '\0';
	return count;
}

/* Split @buf at blanks into at most @max words; -EINVAL when more. */
static int split_words(char *buf, char **words, int max)
{
	int n = 0;
	char *w;

	while ((w = strsep(&buf, " \t")) != NULL) {
		if (!*w)
			continue;
		if (n == max)
			return -EINVAL;
		words[n++] = w;
	}
	return n;
}

static int parse_pid(const char *s, pid_t *pid)
{
	int v;

	if (kstrtoint(s, 10, &v) || v <= 0)
		return -EINVAL;
	*pid = v;
	return 0;
}

/* The thread group of @nr in the caller's pid namespace, referenced. */
static struct task_struct *get_tgid_task(pid_t nr)
{
	struct task_struct *task;
	struct pid *pid;

	pid = find_get_pid(nr);
	if (!pid)
		return NULL;
	task = get_pid_task(pid, PIDTYPE_TGID);
	put_pid(pid);
	return task;
}

/* ---- userfaultfd files ---------------------------------------------- */

/*
 * userfaultfd_fops is static: recognise a userfaultfd by its anon inode
 * name and, where kallsyms can tell, by the name of its file operations.
 * Called under spinlocks: must not sleep.
 */
static bool is_uffd_file(struct file *file)
{
	static const struct file_operations *uffd_fops;
	const struct file_operations *fops = READ_ONCE(uffd_fops);
	char sym[KSYM_SYMBOL_LEN];

	if (fops)
		return file->f_op == fops;
	if (strcmp(file->f_path.dentry->d_name.name, "[userfaultfd]"))
		return false;
	if (IS_ENABLED(CONFIG_KALLSYMS)) {
		sprint_symbol(sym, (unsigned long)file->f_op);
		if (strncmp(sym, "userfaultfd_fops+0x0/", 21))
			return false;
		WRITE_ONCE(uffd_fops, file->f_op);
	}
	return true;
}

/* One batch of a task's userfaultfd files, taken under its file lock. */
#define FD_BATCH 16
struct fd_batch {
	unsigned int nr;
	unsigned int fd[FD_BATCH];
	struct file *file[FD_BATCH];
	unsigned int want;		/* for get_task_file() */
};

static int batch_uffd(const void *p, struct file *file, unsigned int fd)
{
	struct fd_batch *b = (struct fd_batch *)p;

	if (!is_uffd_file(file))
		return 0;
	if (b->nr == FD_BATCH)
		return fd + 1;		/* full: resume at fd */
	b->fd[b->nr] = fd;
	b->file[b->nr++] = get_file(file);
	return 0;
}

/*
 * Take the userfaultfd files of @task from fd @*next on, a batch at a time.
 * Returns false when there are no more.
 */
static bool next_uffd_batch(struct task_struct *task, unsigned int *next,
			    struct fd_batch *b)
{
	int res;

	b->nr = 0;
	if (*next == UINT_MAX)
		return false;
	task_lock(task);
	res = task->files ? iterate_fd(task->files, *next, batch_uffd, b) : 0;
	task_unlock(task);
	*next = res ? res - 1 : UINT_MAX;
	return b->nr > 0;
}

static int match_fd(const void *p, struct file *file, unsigned int fd)
{
	struct fd_batch *b = (struct fd_batch *)p;

	if (fd == b->want) {
		b->file[0] = get_file(file);
		b->nr = 1;
	}
	return 1;
}

/* File @fd of @task, referenced, or NULL. */
static struct file *get_task_file(struct task_struct *task, unsigned int fd)
{
	struct fd_batch b = { .want = fd };

	task_lock(task);
	if (task->files)
		iterate_fd(task->files, fd, match_fd, &b);
	task_unlock(task);
	return b.nr ? b.file[0] : NULL;
}

/* ---- contexts ------------------------------------------------------- */

struct ctx_entry {
	struct userfaultfd_ctx *ctx;
	struct file *file;		/* one reference keeps @ctx alive */
	pid_t owner;
	char comm[TASK_COMM_LEN];
	char fds[96];
};

struct ctx_list {
	struct ctx_entry *e;
	unsigned int nr, cap;
	struct pid **pids;
	unsigned int nr_pids;
};

/* The thread groups alive now, referenced. */
static int collect_pids(struct ctx_list *cl)
{
	struct task_struct *p;
	unsigned int cap = 0, nr = 0;

	rcu_read_lock();
	for_each_process(p)
		cap++;
	rcu_read_unlock();
	cap += 32;
	cl->pids = kvcalloc(cap, sizeof(*cl->pids), GFP_KERNEL);
	if (!cl->pids)
		return -ENOMEM;
	rcu_read_lock();
	for_each_process(p) {
		if (nr == cap)
			break;
		cl->pids[nr++] = get_pid(task_tgid(p));
	}
	rcu_read_unlock();
	cl->nr_pids = nr;
	return 0;
}

static struct ctx_entry *find_ctx(struct ctx_list *cl,
				  struct userfaultfd_ctx *ctx)
{
	unsigned int i;

	for (i = 0; i < cl->nr; i++)
		if (cl->e[i].ctx == ctx)
			return &cl->e[i];
	return NULL;
}

static void note_fd(struct ctx_list *cl, pid_t pid, unsigned int fd,
		    struct file *file)
{
	struct userfaultfd_ctx *ctx = file->private_data;
	struct ctx_entry *e = find_ctx(cl, ctx);
	size_t len;

	if (!e) {
		if (cl->nr == cl->cap) {
			unsigned int cap = cl->cap ? cl->cap * 2 : 16;
			struct ctx_entry *n;

			n = krealloc(cl->e, cap * sizeof(*n), GFP_KERNEL);
			if (!n) {
				fput(file);
				return;
			}
			cl->e = n;
			cl->cap = cap;
		}
		e = &cl->e[cl->nr++];
		memset(e, 0, sizeof(*e));
		e->ctx = ctx;
		e->file = file;
	} else {
		fput(file);
	}
	len = strlen(e->fds);
	if (len + 24 < sizeof(e->fds))
		snprintf(e->fds + len, sizeof(e->fds) - len, "%s%d:%u",
			 len ? " " : "", pid, fd);
	else if (!strstr(e->fds, " ..."))
		strlcat(e->fds, " ...", sizeof(e->fds));
}

/* mmap_read_lock() that gives up instead of waiting behind a livelock. */
static bool mmap_read_lock_patient(struct mm_struct *mm)
{
	int i;

	for (i = 0; i < MMAP_TRIES; i++) {
		if (mmap_read_trylock(mm))
			return true;
		if (fatal_signal_pending(current))
			return false;
		msleep(MMAP_TRY_MS);
	}
	return false;
}

static const char *vma_kind(struct vm_area_struct *vma)
{
	if (is_vm_hugetlb_page(vma))
		return "hugetlb";
	if (vma_is_anonymous(vma))
		return "anon";
	if (vma->vm_file &&
	    file_inode(vma->vm_file)->i_sb->s_magic == TMPFS_MAGIC)
		return "shmem";
	return "file";
}

static void show_modes(struct seq_file *m, unsigned long flags)
{
	const char *sep = "";

	if (flags & VM_UFFD_MISSING) {
		seq_puts(m, "MISSING");
		sep = "|";
	}
	if (flags & VM_UFFD_WP) {
		seq_printf(m, "%sWP", sep);
		sep = "|";
	}
	if (flags & VM_UFFD_MINOR)
		seq_printf(m, "%sMINOR", sep);
	if (!(flags & __VM_UFFD_FLAGS))
		seq_puts(m, "none");
}

/* The VMAs of @mm that @ctx is registered on; mmap_lock held. */
static unsigned int show_ctx_vmas(struct seq_file *m, struct mm_struct *mm,
				  struct userfaultfd_ctx *ctx)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	unsigned int nr = 0;

	for_each_vma(vmi, vma) {
		if (vma->vm_userfaultfd_ctx.ctx != ctx)
			continue;
		seq_printf(m, "\trange %lx-%lx ", vma->vm_start, vma->vm_end);
		show_modes(m, vma->vm_flags);
		seq_printf(m, " %s %s\n", vma_kind(vma),
			   vma->vm_flags & VM_SHARED ? "shared" : "private");
		nr++;
	}
	return nr;
}

/*
 * The ranges of @mm that @ctx is registered on; @ctx is only compared.
 * @locked: the caller holds @mm's mmap_lock.
 */
static void show_ranges(struct seq_file *m, struct mm_struct *mm,
			struct userfaultfd_ctx *ctx, bool locked)
{
	unsigned int nr;

	if (locked) {
		nr = show_ctx_vmas(m, mm, ctx);
	} else {
		if (!mm || !mmget_not_zero(mm)) {
			seq_puts(m, "\tranges none (mm gone)\n");
			return;
		}
		if (!mmap_read_lock_patient(mm)) {
			seq_puts(m, "\tranges unknown (mmap_lock busy)\n");
			mmput(mm);
			return;
		}
		nr = show_ctx_vmas(m, mm, ctx);
		mmap_read_unlock(mm);
		mmput(mm);
	}
	if (!nr)
		seq_puts(m, "\tranges none\n");
}

static unsigned int wq_len(struct wait_queue_head *wqh)
{
	struct list_head *pos;
	unsigned int n = 0;

	list_for_each(pos, &wqh->head)
		n++;
	return n;
}

/* A fork event's child context, seen under the parent's event lock. */
struct fork_child {
	struct userfaultfd_ctx *ctx;	/* compared only once unlocked */
	struct mm_struct *mm;		/* mmgrab()bed */
	unsigned int features, flags, refs;
	bool released;
};

#define FORK_CHILDREN_MAX 8

static const char *event_name(u8 event)
{
	switch (event) {
	case UFFD_EVENT_FORK:
		return "fork";
	case UFFD_EVENT_REMAP:
		return "remap";
	case UFFD_EVENT_REMOVE:
		return "remove";
	case UFFD_EVENT_UNMAP:
		return "unmap";
	default:
		return "other";
	}
}

/*
 * The events queued on @ctx; a fork event's child context is alive for
 * as long as the event is queued, so it is copied out under the lock.
 */
static unsigned int show_events(struct seq_file *m,
				struct userfaultfd_ctx *ctx,
				struct fork_child *kids, unsigned int *nr_kids)
{
	struct userfaultfd_wait_queue *ewq;
	struct userfaultfd_ctx *kid;
	wait_queue_entry_t *wq;
	unsigned int n = 0;

	*nr_kids = 0;
	spin_lock_irq(&ctx->event_wqh.lock);
	list_for_each_entry(wq, &ctx->event_wqh.head, entry) {
		ewq = container_of(wq, struct userfaultfd_wait_queue, wq);
		n++;
		seq_printf(m, "\tevent %s", event_name(ewq->msg.event));
		if (ewq->msg.event == UFFD_EVENT_FORK &&
		    *nr_kids < FORK_CHILDREN_MAX) {
			struct fork_child *k = &kids[(*nr_kids)++];

			kid = (struct userfaultfd_ctx *)
				(unsigned long)ewq->msg.arg.reserved.reserved1;
			k->ctx = kid;
			k->mm = kid->mm;
			mmgrab(k->mm);
			k->features = READ_ONCE(kid->features);
			k->flags = kid->flags;
			k->refs = refcount_read(&kid->refcount);
			k->released = READ_ONCE(kid->released);
			seq_printf(m, " child %08x", obj_id(kid));
		}
		seq_putc(m, '\n');
	}
	spin_unlock_irq(&ctx->event_wqh.lock);
	return n;
}

static void show_ctx(struct seq_file *m, struct userfaultfd_ctx *ctx,
		     pid_t owner, const char *comm, const char *fds,
		     bool locked)
{
	struct fork_child kids[FORK_CHILDREN_MAX];
	unsigned int pending, waiting, events, nr_kids, i;

	/* handle_userfault() moves waiters between the two under these. */
	spin_lock_irq(&ctx->fault_pending_wqh.lock);
	spin_lock(&ctx->fault_wqh.lock);
	pending = wq_len(&ctx->fault_pending_wqh);
	waiting = wq_len(&ctx->fault_wqh);
	spin_unlock(&ctx->fault_wqh.lock);
	spin_unlock_irq(&ctx->fault_pending_wqh.lock);

	seq_printf(m, "ctx %08x\n", obj_id(ctx));
	if (owner)
		seq_printf(m, "\towner %d %s\n", owner, comm);
	else
		seq_puts(m, "\towner none\n");
	seq_printf(m, "\tfds %s\n", fds && *fds ? fds : "none");
	seq_printf(m, "\tfeatures 0x%x flags 0x%x released %d refs %u mmap_changing %d\n",
		   READ_ONCE(ctx->features), ctx->flags,
		   READ_ONCE(ctx->released), refcount_read(&ctx->refcount),
		   atomic_read(&ctx->mmap_changing));
	events = show_events(m, ctx, kids, &nr_kids);
	seq_printf(m, "\tfaults_pending %u faults_waiting %u events_pending %u\n",
		   pending, waiting, events);
	show_ranges(m, ctx->mm, ctx, locked);

	for (i = 0; i < nr_kids; i++) {
		seq_printf(m, "\nctx %08x\n\towner none (fork child, event pending on ctx %08x)\n",
			   obj_id(kids[i].ctx), obj_id(ctx));
		seq_puts(m, "\tfds none\n");
		seq_printf(m, "\tfeatures 0x%x flags 0x%x released %d refs %u\n",
			   kids[i].features, kids[i].flags, kids[i].released,
			   kids[i].refs);
		show_ranges(m, kids[i].mm, kids[i].ctx, false);
		mmdrop(kids[i].mm);
	}
}

/*
 * Contexts that no fd refers to yet (a fork event's child context before
 * the monitor read it) are found from the VMAs of each mm; the mm's
 * mmap_lock keeps them alive while they are shown.
 */
static void show_vma_only_ctxs(struct seq_file *m, struct ctx_list *cl,
			       struct task_struct *task, void **seen,
			       unsigned int *nr_seen, unsigned int max_seen)
{
	struct userfaultfd_ctx *ctx;
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	unsigned int i;

	mm = get_task_mm(task);
	if (!mm)
		return;
	if (!mmap_read_lock_patient(mm)) {
		seq_printf(m, "# pid %d: mmap_lock busy, its VMAs not searched\n",
			   task_tgid_nr(task));
		mmput(mm);
		return;
	}
	{
		VMA_ITERATOR(vmi, mm, 0);

		for_each_vma(vmi, vma) {
			ctx = vma->vm_userfaultfd_ctx.ctx;
			if (!ctx || find_ctx(cl, ctx))
				continue;
			for (i = 0; i < *nr_seen; i++)
				if (seen[i] == ctx)
					break;
			if (i < *nr_seen || *nr_seen == max_seen)
				continue;
			seen[(*nr_seen)++] = ctx;
			show_ctx(m, ctx, task_tgid_nr(task), task->comm, NULL,
				 true);
			seq_putc(m, '\n');
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);
}

static int contexts_show(struct seq_file *m, void *unused)
{
	struct ctx_list cl = {};
	struct task_struct *task;
	unsigned int i, j, next, nr_seen = 0;
	struct fd_batch b;
	void **seen;
	int ret;

	ret = collect_pids(&cl);
	if (ret)
		return ret;

	/* Every userfaultfd some process holds open, with its fds. */
	for (i = 0; i < cl.nr_pids; i++) {
		task = get_pid_task(cl.pids[i], PIDTYPE_TGID);
		if (!task)
			continue;
		next = 0;
		while (next_uffd_batch(task, &next, &b))
			for (j = 0; j < b.nr; j++)
				note_fd(&cl, pid_nr(cl.pids[i]), b.fd[j],
					b.file[j]);
		put_task_struct(task);
	}

	/* The process whose mm each context serves. */
	for (i = 0; i < cl.nr_pids; i++) {
		task = get_pid_task(cl.pids[i], PIDTYPE_TGID);
		if (!task)
			continue;
		task_lock(task);
		for (j = 0; j < cl.nr; j++) {
			if (cl.e[j].owner || !task->mm ||
			    cl.e[j].ctx->mm != task->mm)
				continue;
			cl.e[j].owner = task_tgid_nr(task);
			strscpy(cl.e[j].comm, task->comm, sizeof(cl.e[j].comm));
		}
		task_unlock(task);
		put_task_struct(task);
	}

	for (j = 0; j < cl.nr; j++) {
		show_ctx(m, cl.e[j].ctx, cl.e[j].owner, cl.e[j].comm,
			 cl.e[j].fds, false);
		seq_putc(m, '\n');
	}

	/* An upper bound on what one read lists of the rest. */
	seen = kcalloc(256, sizeof(*seen), GFP_KERNEL);
	for (i = 0; seen && i < cl.nr_pids; i++) {
		task = get_pid_task(cl.pids[i], PIDTYPE_TGID);
		if (!task)
			continue;
		show_vma_only_ctxs(m, &cl, task, seen, &nr_seen, 256);
		put_task_struct(task);
	}
	kfree(seen);

	for (j = 0; j < cl.nr; j++)
		fput(cl.e[j].file);
	kfree(cl.e);
	for (i = 0; i < cl.nr_pids; i++)
		put_pid(cl.pids[i]);
	kvfree(cl.pids);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(contexts);

/* ---- shmem counter and audit ---------------------------------------- */

static DEFINE_MUTEX(shmem_sel_lock);
static struct path shmem_path;		/* pinned while selected */

static bool is_shmem_inode(struct inode *inode)
{
	return S_ISREG(inode->i_mode) && inode->i_sb->s_magic == TMPFS_MAGIC;
}

struct audit {
	unsigned int mappings, armed;
	unsigned int count;
	bool have_count;
};

/*
 * Count the VMAs of the file's i_mmap tree, all of them; the counter is
 * read under the same i_mmap_rwsem.  Registration does not take that
 * lock, so a mismatch is only meaningful when nothing is changing.
 */
static void audit_once(struct seq_file *m, struct inode *inode,
		       struct audit *a, bool list)
{
	struct address_space *mapping = inode->i_mapping;
	struct vm_area_struct *vma;
	struct rb_node *rb;

	memset(a, 0, sizeof(*a));
	i_mmap_lock_read(mapping);
	for (rb = rb_first_cached(&mapping->i_mmap); rb; rb = rb_next(rb)) {
		unsigned long flags;

		vma = rb_entry(rb, struct vm_area_struct, shared.rb);
		flags = READ_ONCE(vma->vm_flags);
		a->mappings++;
		if (flags & VM_UFFD_MISSING)
			a->armed++;
		if (!list)
			continue;
		if (a->mappings > AUDIT_LIST_MAX)
			continue;
		seq_printf(m, "vma %lx-%lx mm %08x pgoff %lu %s ",
			   vma->vm_start, vma->vm_end, obj_id(vma->vm_mm),
			   vma->vm_pgoff,
			   flags & VM_SHARED ? "shared" : "private");
		show_modes(m, flags);
		seq_putc(m, '\n');
	}
	a->have_count = uffd_debug_missing_count(inode, &a->count);
	i_mmap_unlock_read(mapping);
	if (list && a->mappings > AUDIT_LIST_MAX)
		seq_printf(m, "vma ... %u more\n", a->mappings - AUDIT_LIST_MAX);
}

static int shmem_show(struct seq_file *m, void *unused)
{
	struct inode *inode;
	struct audit a;
	int tries = 1;
	char *buf;

	mutex_lock(&shmem_sel_lock);
	if (!shmem_path.dentry) {
		seq_puts(m, "file none (write \"PID FD\" or an absolute path)\n");
		goto out;
	}
	inode = d_inode(shmem_path.dentry);
	buf = kmalloc(PATH_MAX, GFP_KERNEL);
	if (buf) {
		char *p = d_path(&shmem_path, buf, PATH_MAX);

		seq_printf(m, "file %s\n", IS_ERR(p) ? "?" : p);
		kfree(buf);
	}
	seq_printf(m, "inode %u:%u %llu\n", MAJOR(inode->i_sb->s_dev),
		   MINOR(inode->i_sb->s_dev), (unsigned long long)inode->i_ino);

	/* Give a racing update a chance to finish before calling it a bug. */
	audit_once(m, inode, &a, false);
	while (a.have_count && a.count != a.armed && tries < 5) {
		msleep(20);
		audit_once(m, inode, &a, false);
		tries++;
	}
	seq_printf(m, "mappings %u\narmed_vmas %u\n", a.mappings, a.armed);
	if (!a.have_count) {
		seq_puts(m, "nr_uffd_missing not available (kernel without the uffd-missing count)\n");
		seq_puts(m, "audit not available\n");
	} else {
		seq_printf(m, "nr_uffd_missing %u\n", a.count);
		if (a.count == a.armed)
			seq_printf(m, "audit match (%u)\n", a.count);
		else
			seq_printf(m, "audit MISMATCH nr_uffd_missing %u armed_vmas %u (%d tries)\n",
				   a.count, a.armed, tries);
	}
	audit_once(m, inode, &a, true);
out:
	mutex_unlock(&shmem_sel_lock);
	return 0;
}

/* "PID FD": the path of that process's open file FD. */
static int path_of_task_fd(char **w, struct path *path)
{
	struct task_struct *task;
	struct file *file;
	unsigned int fd;
	pid_t pid;

	if (parse_pid(w[0], &pid) || kstrtouint(w[1], 10, &fd))
		return -EINVAL;
	task = get_tgid_task(pid);
	if (!task)
		return -ESRCH;
	file = get_task_file(task, fd);
	put_task_struct(task);
	if (!file)
		return -EBADF;
	*path = file->f_path;
	path_get(path);
	fput(file);
	return 0;
}

static ssize_t shmem_write(struct file *f, const char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	struct path path = {}, old;
	char buf[INPUT_MAX], *w[3];
	ssize_t len;
	int n, err;

	len = read_line(ubuf, count, buf);
	if (len < 0)
		return len;
	n = split_words(buf, w, ARRAY_SIZE(w));
	if (n == 1 && !strcmp(w[0], "clear")) {
		/* nothing to look up */
	} else if (n == 1 && w[0][0] == '/') {
		err = kern_path(w[0], LOOKUP_FOLLOW, &path);
		if (err)
			return err;
	} else if (n == 2) {
		err = path_of_task_fd(w, &path);
		if (err)
			return err;
	} else {
		return -EINVAL;
	}
	if (path.dentry && (d_really_is_negative(path.dentry) ||
			    !is_shmem_inode(d_inode(path.dentry)))) {
		path_put(&path);
		return -EOPNOTSUPP;
	}
	mutex_lock(&shmem_sel_lock);
	old = shmem_path;
	shmem_path = path;
	mutex_unlock(&shmem_sel_lock);
	if (old.dentry)
		path_put(&old);
	return count;
}

static int shmem_open(struct inode *inode, struct file *file)
{
	return single_open(file, shmem_show, NULL);
}

static const struct file_operations shmem_fops = {
	.owner = THIS_MODULE,
	.open = shmem_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = shmem_write,
};

/* ---- stats from the series' tracepoints ----------------------------- */

#ifdef UFFD_DEBUG_HAVE_TRACEPOINTS
/* Mirrors enum uffd_missing_reason (include/linux/userfaultfd_k.h). */
static const char *const armed_reasons[] = {
	[UFFD_MISSING_REGISTER] = "register",
	[UFFD_MISSING_UNREGISTER] = "unregister",
	[UFFD_MISSING_RELEASE] = "release",
	[UFFD_MISSING_FORK] = "fork",
	[UFFD_MISSING_FORK_DROP] = "fork_drop",
	[UFFD_MISSING_REMAP_DROP] = "remap_drop",
	[UFFD_MISSING_SPLIT] = "split",
	[UFFD_MISSING_COPY] = "copy",
	[UFFD_MISSING_MERGE] = "merge",
	[UFFD_MISSING_UNMAP] = "unmap",
	[UFFD_MISSING_UNDO] = "undo",
};

#define NR_REASONS ARRAY_SIZE(armed_reasons)

static atomic_long_t st_released;	/* RETRY with the fault lock dropped */
static atomic_long_t st_armed[NR_REASONS][2];	/* [reason][up, down] */
static atomic_long_t st_refused[2];		/* madvise, khugepaged */
static atomic_long_t st_unknown_reason;

static void probe_fault_released(void *data, struct mm_struct *mm,
				 unsigned long address,
				 unsigned int fault_flags,
				 unsigned long reason)
{
	atomic_long_inc(&st_released);
}

static void probe_shmem_missing(void *data, struct inode *inode,
				unsigned int old, unsigned int new, int reason)
{
	if (reason < 0 || reason >= NR_REASONS) {
		atomic_long_inc(&st_unknown_reason);
		return;
	}
	atomic_long_inc(&st_armed[reason][new < old]);
}

static void probe_collapse_refused(void *data, struct mm_struct *mm,
				   struct inode *inode, pgoff_t index,
				   int holes, unsigned int armed,
				   bool is_khugepaged)
{
	atomic_long_inc(&st_refused[is_khugepaged]);
}

/*
 * The series exports nothing for this module: find its tracepoints among
 * the kernel's by name and attach with tracepoint_probe_register().  The
 * check_trace_callback_type_*() calls make the compiler hold each probe to
 * its event's prototype, as register_trace_*() would.
 */
static struct uffd_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool registered;
} uffd_tps[] = {
	{ "uffd_fault_released", probe_fault_released },
	{ "uffd_shmem_missing", probe_shmem_missing },
	{ "uffd_collapse_refused", probe_collapse_refused },
};

static void __maybe_unused uffd_tp_types(void)
{
	check_trace_callback_type_uffd_fault_released(probe_fault_released);
	check_trace_callback_type_uffd_shmem_missing(probe_shmem_missing);
	check_trace_callback_type_uffd_collapse_refused(probe_collapse_refused);
}

static void uffd_tp_find(struct tracepoint *tp, void *unused)
{
	for (int i = 0; i < ARRAY_SIZE(uffd_tps); i++)
		if (!strcmp(tp->name, uffd_tps[i].name))
			uffd_tps[i].tp = tp;
}

static bool stats_attached(void)
{
	for (int i = 0; i < ARRAY_SIZE(uffd_tps); i++)
		if (!uffd_tps[i].registered)
			return false;
	return true;
}

static void stats_unregister(void)
{
	bool any = false;

	for (int i = ARRAY_SIZE(uffd_tps) - 1; i >= 0; i--) {
		if (!uffd_tps[i].registered)
			continue;
		tracepoint_probe_unregister(uffd_tps[i].tp, uffd_tps[i].probe,
					    NULL);
		uffd_tps[i].registered = false;
		any = true;
	}
	/* No probe may still run when the module text goes away. */
	if (any)
		tracepoint_synchronize_unregister();
}

static int stats_register(void)
{
	int err;

	for_each_kernel_tracepoint(uffd_tp_find, NULL);
	for (int i = 0; i < ARRAY_SIZE(uffd_tps); i++) {
		if (!uffd_tps[i].tp) {
			pr_warn("no tracepoint %s in this kernel\n",
				uffd_tps[i].name);
			return -ENOENT;
		}
		err = tracepoint_probe_register(uffd_tps[i].tp,
						uffd_tps[i].probe, NULL);
		if (err)
			return err;
		uffd_tps[i].registered = true;
	}
	return 0;
}

static void stats_reset(void)
{
	unsigned int i;

	atomic_long_set(&st_released, 0);
	for (i = 0; i < NR_REASONS; i++) {
		atomic_long_set(&st_armed[i][0], 0);
		atomic_long_set(&st_armed[i][1], 0);
	}
	atomic_long_set(&st_refused[0], 0);
	atomic_long_set(&st_refused[1], 0);
	atomic_long_set(&st_unknown_reason, 0);
}

static int stats_show(struct seq_file *m, void *unused)
{
	unsigned int i;

	if (!stats_attached()) {
		seq_puts(m, "tracepoints not available (registering the probes failed)\n");
		return 0;
	}
	seq_puts(m, "tracepoints available\n");
	seq_printf(m, "fault_released.retry_lock_dropped %ld\n",
		   atomic_long_read(&st_released));
	for (i = 0; i < NR_REASONS; i++)
		seq_printf(m, "shmem_missing.%s.up %ld\nshmem_missing.%s.down %ld\n",
			   armed_reasons[i], atomic_long_read(&st_armed[i][0]),
			   armed_reasons[i], atomic_long_read(&st_armed[i][1]));
	seq_printf(m, "shmem_missing.unknown_reason %ld\n",
		   atomic_long_read(&st_unknown_reason));
	seq_printf(m, "collapse_refused.madvise %ld\ncollapse_refused.khugepaged %ld\n",
		   atomic_long_read(&st_refused[0]),
		   atomic_long_read(&st_refused[1]));
	return 0;
}
#else
static int stats_register(void)
{
	return 0;
}

static void stats_unregister(void)
{
}

static void stats_reset(void)
{
}

static int stats_show(struct seq_file *m, void *unused)
{
	seq_puts(m, "tracepoints not available (kernel without the userfaultfd tracepoints)\n");
	return 0;
}
#endif

static ssize_t stats_write(struct file *f, const char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	char buf[INPUT_MAX];
	ssize_t len;

	len = read_line(ubuf, count, buf);
	if (len < 0)
		return len;
	if (strcmp(buf, "reset"))
		return -EINVAL;
	stats_reset();
	return count;
}

static int stats_open(struct inode *inode, struct file *file)
{
	return single_open(file, stats_show, NULL);
}

static const struct file_operations stats_fops = {
	.owner = THIS_MODULE,
	.open = stats_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = stats_write,
};

/* ---- kworker GUP trigger --------------------------------------------- */

enum gup_state { GUP_IDLE, GUP_RUNNING, GUP_DONE };

static struct {
	struct mutex write_lock;	/* one writer validates at a time */
	spinlock_t lock;		/* the fields below */
	struct work_struct work;
	enum gup_state state;
	struct mm_struct *mm;		/* mmget() while running */
	pid_t pid;
	unsigned long addr, len;
	bool write;
	long ret;
	bool lock_dropped;
	ktime_t start, end;
} gup;

/*
 * Unbound: the worker may spin for good in GUP on an unfixed kernel, and
 * a concurrency-managed pool would stall every work item queued behind it.
 */
static struct workqueue_struct *gup_wq;

/*
 * What async_pf_execute() does for a guest page that is not present:
 * read-lock the mm, remote GUP with @locked so the fault may drop the
 * lock and retry, unlock only if GUP left the lock held.
 */
static void gup_work_fn(struct work_struct *work)
{
	struct mm_struct *mm = gup.mm;
	int locked = 1;
	long ret;

	mmap_read_lock(mm);
	ret = uffd_debug_gup_remote(mm, gup.addr, gup.len >> PAGE_SHIFT,
				    gup.write ? FOLL_WRITE : 0, &locked);
	if (locked)
		mmap_read_unlock(mm);
	mmput(mm);

	spin_lock(&gup.lock);
	gup.ret = ret;
	gup.lock_dropped = !locked;
	gup.end = ktime_get();
	gup.mm = NULL;
	gup.state = GUP_DONE;
	spin_unlock(&gup.lock);
}

/* Is [addr, end) covered by VMAs without a gap? */
static int range_mapped(struct mm_struct *mm, unsigned long addr,
			unsigned long end)
{
	struct vm_area_struct *vma;
	int err = 0;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	while (addr < end) {
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start > addr) {
			err = -EFAULT;
			break;
		}
		addr = vma->vm_end;
	}
	mmap_read_unlock(mm);
	return err;
}

static ssize_t gup_write(struct file *f, const char __user *ubuf,
			 size_t count, loff_t *ppos)
{
	unsigned long addr, len;
	struct task_struct *task;
	struct mm_struct *mm;
	char buf[INPUT_MAX], *w[4];
	bool write = false;
	ssize_t ret;
	pid_t pid;
	int n;

	ret = read_line(ubuf, count, buf);
	if (ret < 0)
		return ret;
	n = split_words(buf, w, ARRAY_SIZE(w));
	if (n < 3)
		return -EINVAL;
	if (parse_pid(w[0], &pid) || kstrtoul(w[1], 0, &addr) ||
	    kstrtoul(w[2], 0, &len))
		return -EINVAL;
	if (n == 4) {
		if (strcmp(w[3], "write"))
			return -EINVAL;
		write = true;
	}
	if (!len || !PAGE_ALIGNED(addr) || !PAGE_ALIGNED(len))
		return -EINVAL;
	if (len > GUP_MAX_BYTES)
		return -E2BIG;
	if (addr + len < addr || addr + len > TASK_SIZE)
		return -EOVERFLOW;

	task = get_tgid_task(pid);
	if (!task)
		return -ESRCH;
	mm = get_task_mm(task);		/* NULL for kthreads and the exiting */
	put_task_struct(task);
	if (!mm)
		return -ESRCH;

	mutex_lock(&gup.write_lock);
	ret = -EBUSY;
	if (READ_ONCE(gup.state) == GUP_RUNNING)
		goto out;
	ret = range_mapped(mm, addr, addr + len);
	if (ret)
		goto out;
	spin_lock(&gup.lock);
	gup.mm = mm;
	gup.pid = pid;
	gup.addr = addr;
	gup.len = len;
	gup.write = write;
	gup.ret = 0;
	gup.lock_dropped = false;
	gup.start = ktime_get();
	gup.state = GUP_RUNNING;
	spin_unlock(&gup.lock);
	mm = NULL;			/* the worker puts it */
	queue_work(gup_wq, &gup.work);
	ret = count;
out:
	mutex_unlock(&gup.write_lock);
	if (mm)
		mmput(mm);
	return ret;
}

static int gup_show(struct seq_file *m, void *unused)
{
	static const char *const states[] = { "idle", "running", "done" };
	unsigned long addr, len;
	enum gup_state state;
	bool write, dropped;
	ktime_t start, end;
	pid_t pid;
	long ret;

	spin_lock(&gup.lock);
	state = gup.state;
	pid = gup.pid;
	addr = gup.addr;
	len = gup.len;
	write = gup.write;
	ret = gup.ret;
	dropped = gup.lock_dropped;
	start = gup.start;
	end = state == GUP_DONE ? gup.end : ktime_get();
	spin_unlock(&gup.lock);

	seq_printf(m, "state %s\n", states[state]);
	if (state == GUP_IDLE)
		return 0;
	seq_printf(m, "pid %d\naddress 0x%lx\nlength %lu\nwrite %d\n",
		   pid, addr, len, write);
	if (state == GUP_DONE) {
		seq_printf(m, "result %ld\n", ret);
		seq_printf(m, "mmap_lock %s\n", dropped ?
			   "dropped by GUP" : "held by GUP, unlocked by the worker");
	}
	seq_printf(m, "elapsed_us %lld\n", ktime_us_delta(end, start));
	return 0;
}

static int gup_open(struct inode *inode, struct file *file)
{
	return single_open(file, gup_show, NULL);
}

static const struct file_operations gup_fops = {
	.owner = THIS_MODULE,
	.open = gup_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = gup_write,
};

/* ---- module --------------------------------------------------------- */

static void __init create_file(int i, const char *name, umode_t mode,
			       const struct file_operations *fops)
{
	struct dentry *d = debugfs_create_file(name, mode, uffd_debug_dir,
					       NULL, fops);

	if (!IS_ERR_OR_NULL(d))
		uffd_debug_files[i] = dget(d);
}

/*
 * Wait until no open of a removed file is in flight, then drop our
 * reference. On 7.3 (not 6.1) the first open of a debugfs file reads its
 * file_operations (ours, in module memory) before checking whether the
 * file was removed, and debugfs_remove() has nothing to wait for while no
 * open has completed: module.reload hit that under KASAN as a read of the
 * freed module. An open holds a reference to the dentry from the end of
 * its path walk to the return of ->open(); once the file is unhashed no
 * walk can take a new one, so a count back to ours means none is left.
 */
static void drain_opens(struct dentry *d)
{
	unsigned long start = jiffies, end = start + msecs_to_jiffies(OPEN_DRAIN_MS);

	if (!d)
		return;
	if (d_count(d) > 1) {
		pr_info("%pd: waiting for %d open(s) in flight\n", d, d_count(d) - 1);
		while (d_count(d) > 1 && time_before(jiffies, end))
			usleep_range(500, 1000);
		if (d_count(d) > 1)
			pr_warn("%pd: %d references after %d ms, unloading anyway\n",
				d, d_count(d) - 1, OPEN_DRAIN_MS);
		else
			pr_info("%pd: drained in %u ms\n", d, jiffies_to_msecs(jiffies - start));
	}
	dput(d);
}

static int __init uffd_debug_init(void)
{
	int err;

	get_random_bytes(&id_key, sizeof(id_key));
	mutex_init(&gup.write_lock);
	spin_lock_init(&gup.lock);
	INIT_WORK(&gup.work, gup_work_fn);
	gup_wq = alloc_workqueue("uffd_debug_gup", WQ_UNBOUND, 0);
	if (!gup_wq)
		return -ENOMEM;

	err = stats_register();
	if (err) {
		/* stats then says "not available"; the rest still works */
		pr_warn("cannot attach to the userfaultfd tracepoints: %d\n",
			err);
		stats_unregister();
	}

	uffd_debug_dir = debugfs_create_dir("uffd_debug", NULL);
	if (IS_ERR_OR_NULL(uffd_debug_dir)) {
		stats_unregister();
		destroy_workqueue(gup_wq);
		return uffd_debug_dir ? PTR_ERR(uffd_debug_dir) : -ENODEV;
	}
	create_file(0, "contexts", 0400, &contexts_fops);
	create_file(1, "shmem", 0600, &shmem_fops);
	create_file(2, "stats", 0600, &stats_fops);
	create_file(3, "gup", 0600, &gup_fops);
	return 0;
}

static void __exit uffd_debug_exit(void)
{
	/* Waits for readers and writers still inside the files. */
	debugfs_remove_recursive(uffd_debug_dir);
	for (int i = 0; i < NR_FILES; i++)
		drain_opens(uffd_debug_files[i]);
	stats_unregister();
	/* Waits for a running GUP: it ends when its faults are resolved. */
	destroy_workqueue(gup_wq);
	if (shmem_path.dentry)
		path_put(&shmem_path);
}

module_init(uffd_debug_init);
module_exit(uffd_debug_exit);

MODULE_DESCRIPTION("Inspect userfaultfd state; drive KVM's async page fault GUP path");
MODULE_LICENSE("GPL");
