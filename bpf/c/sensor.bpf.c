// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sensor.bpf.c: Go toolchain process trees, file-access failures and TCP
 * connects.
 *
 * Only tracepoints (tp_btf) and uprobes: kprobes, fentry/fexit and BPF-LSM
 * are not available on the kernels this runs on. Syscall numbers and pt_regs
 * fields are x86_64's; the Go loader refuses other architectures.
 *
 * Every program must cost next to nothing for processes outside a tree, so
 * none hooks the syscall path by default. Any program on sys_enter/sys_exit,
 * even an empty one, makes the kernel set SYSCALL_TRACEPOINT work on every
 * task of the machine and route every syscall through its slow path (about
 * 1.12x on an openat+close loop here). Instead:
 *  - exec, fork and exit come from the sched tracepoints, once per event;
 *  - file-access failures come from a uprobe on the error branch of the one
 *    function through which a Go program's syscall package enters the
 *    kernel, placed in the toolchain's own binaries (go, compile, link, ...):
 *    it traps only when a syscall of those binaries fails, and a uprobe lives
 *    in the probed file's pages, so no other process can hit it;
 *  - connects come from inet_sock_set_state: TCP state changes only, and
 *    the loader attaches it only while a tree is alive (bpf/scope.go).
 * gp_sys_exit remains for Config.Syscalls, which also sees the failures of
 * C programs in a tree (gcc, git) at that machine-wide price.
 *
 * tp_btf arguments are BTF pointers: direct loads (CO-RE relocated through
 * vmlinux.h's preserve_access_index) avoid a helper call per field.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "gopatrol.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define GP_COMM_LEN 16
#define GP_PATH_MAX 256  /* also the LPM trie's key data size */
#define GP_ARGS_MAX 1024 /* argv bytes streamed per exec */
#define GP_ENV_MAX 16384 /* environ bytes streamed per go command */
#define GP_WALK_MAX 1024 /* bytes of a walked path (gp_walk) */
#define GP_WALK_DEPTH 48 /* dentries and mount crossings a walk follows */
#define GP_NAME_MAX 256  /* a path component and its NUL */

/* File classes: user space fills gp_classes with each class's directories. */
#define GP_CLASS_OTHER 0     /* absolute path under no known directory */
#define GP_CLASS_RELATIVE 15 /* relative path: not resolved in the kernel */
#define GP_NCLASS 16

/* Errno slots of the failure counters. */
#define GP_ERR_EACCES 0
#define GP_ERR_EPERM 1
#define GP_ERR_EROFS 2
#define GP_ERR_ENOENT 3
#define GP_NERR 4

#define EPERM 1
#define ENOENT 2
#define EACCES 13
#define EROFS 30

/* x86_64 syscall numbers. */
#define NR_open 2
#define NR_stat 4
#define NR_lstat 6
#define NR_access 21
#define NR_execve 59
#define NR_truncate 76
#define NR_rename 82
#define NR_mkdir 83
#define NR_rmdir 84
#define NR_creat 85
#define NR_link 86
#define NR_unlink 87
#define NR_symlink 88
#define NR_chmod 90
#define NR_chown 92
#define NR_openat 257
#define NR_mkdirat 258
#define NR_fchownat 260
#define NR_newfstatat 262
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_fchmodat 268
#define NR_faccessat 269
#define NR_renameat2 316
#define NR_execveat 322
#define NR_statx 332
#define NR_openat2 437
#define NR_faccessat2 439

#define AT_FDCWD -100
#define ECONNABORTED 103

/* syscall_nr of a failure seen by the Go error-branch uprobe, which runs
 * after RAX was overwritten with the result. */
#define GP_NR_UNKNOWN 0xffffffff

/* Set by the loader before load. */
const volatile __u32 sample_limit = 8;

struct gp_exec_event {
	struct gp_event_header hdr;
	__u32 ppid;
	__u32 uid;
	__u64 cgroup_id;
	__u64 start_ns;
	__u16 filename_len;
	__u16 args_len;
	__u16 args_truncated;
	__u16 _pad;
	char comm[GP_COMM_LEN];
	char filename[GP_PATH_MAX];
	char args[GP_ARGS_MAX];
};

/*
 * The environment a go command was started with, sent right after its exec
 * event: what user space would read from /proc/PID (environ, exe, cwd,
 * ns/mnt) if the process still lived then. A go command that fails on its
 * flags exits within 20 ms, often before the agent reads /proc.
 */
struct gp_env_event {
	struct gp_event_header hdr;
	__u32 ppid;
	__u32 uid;
	__u64 mnt_ns;    /* inode of the mount namespace */
	__u64 cgroup_id; /* cgroup v2 id: the inode of its directory */
	__u16 env_len;
	__u16 env_truncated; /* environ was longer than GP_ENV_MAX */
	__u16 cwd_len;
	__u16 exe_len;
	__u16 cwd_complete; /* the walk reached the process's root */
	__u16 exe_complete;
	__u32 _pad;
	char cwd[GP_WALK_MAX]; /* gp_walk's form: components leaf first */
	char exe[GP_WALK_MAX];
	char env[GP_ENV_MAX]; /* NUL-separated KEY=value, as /proc/PID/environ */
};

struct gp_exit_event {
	struct gp_event_header hdr;
	__u32 ppid;
	__u32 uid;
	__s32 exit_code; /* wait status: exit status << 8 | signal */
	__u32 _pad;
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 duration_ns;
	char comm[GP_COMM_LEN];
};

struct gp_file_event {
	struct gp_event_header hdr;
	__u32 syscall_nr;
	__s32 err; /* positive errno */
	__u16 class_id;
	__u16 path_len;
	__u32 _pad;
	char path[GP_PATH_MAX];
};

struct gp_connect_event {
	struct gp_event_header hdr;
	struct gp_peer peer;
	__s32 ret;         /* 0 when established, else -errno (sk_err) */
	__u64 duration_ns; /* from SYN sent to established or closed */
};

/*
 * Layout anchors, never read. A struct reaches the object's BTF only through
 * a global or a prototype; there bpf/layout_test.go checks every offset and
 * size the Go decoder (bpf/event.go) uses against these layouts. Constants
 * in .rodata beside sample_limit, so they add no map.
 */
const struct gp_exec_event *const gp_layout_exec = 0;
const struct gp_exit_event *const gp_layout_exit = 0;
const struct gp_env_event *const gp_layout_env = 0;
const struct gp_file_event *const gp_layout_file = 0;
const struct gp_connect_event *const gp_layout_connect = 0;

/* A TCP connect of a tree process in flight: recorded when the socket
 * enters SYN_SENT (in connect(), so in the caller's context), reported when
 * it leaves it (usually in softirq, where current is anybody). */
struct gp_conn {
	__u64 pid_tgid;
	__u64 start_ns;
	__u32 root_pid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* struct sock pointer */
	__type(value, struct gp_conn);
} gp_conns SEC(".maps");

struct gp_path_key {
	__u32 prefixlen; /* bits */
	__u8 data[GP_PATH_MAX];
};

/* Executable names (comm, NUL padded) that start a tree. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[GP_COMM_LEN]);
	__type(value, __u8);
} gp_names SEC(".maps");

/* Directory prefixes -> class id. Each directory is stored twice: "dir/"
 * (anything below) and "dir\0" (the directory itself). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__type(key, struct gp_path_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} gp_classes SEC(".maps");

/* Failure counters, index class * GP_NERR + errno slot. Per-CPU so that
 * counting never contends; user space sums. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GP_NCLASS * GP_NERR);
	__type(key, __u32);
	__type(value, __u64);
} gp_failures SEC(".maps");

/* Samples streamed so far per counter index. Shared across CPUs (atomic
 * add) so that the limit is exact. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GP_NCLASS * GP_NERR);
	__type(key, __u32);
	__type(value, __u32);
} gp_samples SEC(".maps");

/* Scratch space for a path, too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_path_key);
} gp_scratch SEC(".maps");

/*
 * gp_walk writes the path of (dentry, vfsmnt) as seen from root (the
 * process's fs root), leaf first: each component followed by its NUL, so
 * /usr/local/go/bin/go is "go\0bin\0go\0local\0usr\0". It is d_path
 * without the helper, which tracepoints may not call: up the dentries, and
 * from the root of a mount to where it is mounted. It returns the bytes
 * written; *complete is 1 when the walk reached root, or the top of the
 * mount namespace, within GP_WALK_DEPTH steps and the buffer.
 */
static __always_inline __u16 gp_walk(char *buf, struct dentry *dentry, struct vfsmount *vfsmnt,
				     const struct path *root, __u16 *complete)
{
	struct dentry *root_dentry = BPF_CORE_READ(root, dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(root, mnt);
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	__u32 off = 0;

	*complete = 0;
	for (int i = 0; i < GP_WALK_DEPTH; i++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			*complete = 1;
			break;
		}
		if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
			struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
			if (parent == mnt) { /* the top of the namespace */
				*complete = 1;
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = parent;
			vfsmnt = (void *)parent + bpf_core_field_offset(struct mount, mnt);
			continue;
		}
		if (off >= GP_WALK_MAX - GP_NAME_MAX)
			break;
		long n = bpf_probe_read_kernel_str(buf + off, GP_NAME_MAX,
						   BPF_CORE_READ(dentry, d_name.name));
		if (n <= 1) /* unreadable, or an empty name */
			break;
		off += n;
		dentry = BPF_CORE_READ(dentry, d_parent);
	}
	if (!*complete)
		return 0;
	return off;
}

/* gp_send_env streams the environment of p, a go command that just exec'd. */
static __always_inline void gp_send_env(struct task_struct *p, const struct gp_tree_entry *e)
{
	struct gp_env_event *ev = gp_reserve(sizeof(*ev), GP_EV_ENV, e->root_pid);
	if (!ev)
		return;
	ev->ppid = e->ppid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->mnt_ns = BPF_CORE_READ(p, nsproxy, mnt_ns, ns.inum);
	ev->cgroup_id = bpf_get_current_cgroup_id();

	struct path root = BPF_CORE_READ(p, fs, root);
	ev->cwd_len = gp_walk(ev->cwd, BPF_CORE_READ(p, fs, pwd.dentry), BPF_CORE_READ(p, fs, pwd.mnt), &root,
			      &ev->cwd_complete);
	ev->exe_len = gp_walk(ev->exe, BPF_CORE_READ(p, mm, exe_file, f_path.dentry),
			      BPF_CORE_READ(p, mm, exe_file, f_path.mnt), &root, &ev->exe_complete);

	unsigned long start = BPF_CORE_READ(p, mm, env_start);
	unsigned long end = BPF_CORE_READ(p, mm, env_end);
	unsigned long len = end > start ? end - start : 0;
	ev->env_truncated = len > GP_ENV_MAX;
	if (len > GP_ENV_MAX)
		len = GP_ENV_MAX;
	/* Like argv, the kernel just copied the environment into the new mm. */
	if (bpf_probe_read_user(ev->env, len, (void *)start) < 0)
		len = 0;
	ev->env_len = len;
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, 0);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(gp_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct gp_tree_entry *e = gp_tree_lookup(tgid);
	struct gp_tree_entry ne = {};
	char comm[GP_COMM_LEN] = {};

	/* Only a tree's processes pay for more than the lookup above and
	 * the one below: they are looked up to find go commands in a tree
	 * too (go generate, go run of a program that runs go). */
	bpf_get_current_comm(comm, sizeof(comm));
	int is_go = bpf_map_lookup_elem(&gp_names, comm) != NULL;
	if (!e) {
		if (!is_go)
			return 0;
		ne.root_pid = tgid;
		ne.ppid = BPF_CORE_READ(p, real_parent, tgid);
		ne.start_ns = BPF_CORE_READ(p, group_leader, start_time);
		bpf_map_update_elem(&gp_tree, &tgid, &ne, BPF_ANY);
		e = &ne;
	}

	struct gp_exec_event *ev = gp_reserve(sizeof(*ev), GP_EV_EXEC, e->root_pid);
	if (!ev)
		goto env;
	ev->ppid = e->ppid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->start_ns = e->start_ns;
	__builtin_memcpy(ev->comm, comm, sizeof(ev->comm));

	long n = bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), BPF_CORE_READ(bprm, filename));
	ev->filename_len = n > 0 ? n - 1 : 0;

	unsigned long start = BPF_CORE_READ(p, mm, arg_start);
	unsigned long end = BPF_CORE_READ(p, mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	ev->args_truncated = len > GP_ARGS_MAX;
	if (len > GP_ARGS_MAX)
		len = GP_ARGS_MAX;
	/* The kernel just copied argv into the new mm: the pages are present. */
	if (bpf_probe_read_user(ev->args, len, (void *)start) < 0)
		len = 0;
	ev->args_len = len;
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, 0);
env:
	if (is_go)
		gp_send_env(p, e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(gp_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	struct gp_tree_entry *e = gp_tree_lookup(ptgid);
	if (!e)
		return 0;
	__u32 cpid = child->pid;
	__u32 ctgid = child->tgid;
	/* A new thread (CLONE_THREAD) joins its process, which is already a
	 * member: only a new thread group becomes a member. */
	if (cpid != ctgid)
		return 0;
	struct gp_tree_entry ne = {
		.root_pid = e->root_pid,
		.ppid = ptgid,
		.start_ns = child->start_time,
	};
	bpf_map_update_elem(&gp_tree, &ctgid, &ne, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(gp_exit, struct task_struct *p, bool group_dead)
{
	/* Threads exit one by one; the process is gone with the last. */
	if (!group_dead)
		return 0;
	__u32 tgid = p->tgid;
	struct gp_tree_entry *e = gp_tree_lookup(tgid);
	if (!e)
		return 0;
	struct gp_exit_event *ev = gp_reserve(sizeof(*ev), GP_EV_EXIT, e->root_pid);
	if (ev) {
		__u64 now = ev->hdr.ktime_ns;
		ev->ppid = e->ppid;
		ev->uid = (__u32)bpf_get_current_uid_gid();
		ev->exit_code = BPF_CORE_READ(p, exit_code);
		ev->_pad = 0;
		ev->cgroup_id = bpf_get_current_cgroup_id();
		ev->start_ns = e->start_ns;
		ev->duration_ns = now > e->start_ns ? now - e->start_ns : 0;
		bpf_get_current_comm(ev->comm, sizeof(ev->comm));
		bpf_ringbuf_submit(ev, 0);
	}
	bpf_map_delete_elem(&gp_tree, &tgid);
	return 0;
}

static __always_inline unsigned long gp_arg(struct pt_regs *regs, int i)
{
	switch (i) {
	case 0:
		return regs->di;
	case 1:
		return regs->si;
	case 2:
		return regs->dx;
	default:
		return regs->r10;
	}
}

/* gp_path_arg returns which argument of syscall nr is the path whose
 * access failed (the destination for rename and link), or -1. */
static __always_inline int gp_path_arg(long nr)
{
	switch (nr) {
	case NR_open:
	case NR_stat:
	case NR_lstat:
	case NR_access:
	case NR_execve:
	case NR_truncate:
	case NR_mkdir:
	case NR_rmdir:
	case NR_creat:
	case NR_unlink:
	case NR_chmod:
	case NR_chown:
		return 0;
	case NR_rename:
	case NR_link:
	case NR_symlink:
	case NR_openat:
	case NR_mkdirat:
	case NR_fchownat:
	case NR_newfstatat:
	case NR_unlinkat:
	case NR_fchmodat:
	case NR_faccessat:
	case NR_execveat:
	case NR_statx:
	case NR_openat2:
	case NR_faccessat2:
		return 1;
	case NR_symlinkat:
		return 2;
	case NR_renameat:
	case NR_renameat2:
	case NR_linkat:
		return 3;
	}
	return -1;
}

/* gp_file_failure counts a failure of errno -ret on the user path upath
 * and streams the first ones of each (class, errno) pair. */
static __always_inline int gp_file_failure(const char *upath, __u32 nr, long ret, struct gp_tree_entry *e)
{
	__u32 slot;
	switch (-ret) {
	case EACCES:
		slot = GP_ERR_EACCES;
		break;
	case EPERM:
		slot = GP_ERR_EPERM;
		break;
	case EROFS:
		slot = GP_ERR_EROFS;
		break;
	default:
		slot = GP_ERR_ENOENT;
	}

	__u32 zero = 0;
	struct gp_path_key *key = bpf_map_lookup_elem(&gp_scratch, &zero);
	if (!key)
		return 0;
	long n = bpf_probe_read_user_str(key->data, sizeof(key->data), upath);
	if (n <= 0)
		return 0;

	__u32 class_id = GP_CLASS_RELATIVE;
	if (key->data[0] == '/') {
		/* n counts the NUL, so "dir\0" entries match the directory
		 * itself and "dir/" entries anything below it. */
		key->prefixlen = n * 8;
		__u32 *c = bpf_map_lookup_elem(&gp_classes, key);
		class_id = c ? (*c & (GP_NCLASS - 1)) : GP_CLASS_OTHER;
	}

	__u32 idx = class_id * GP_NERR + slot;
	__u64 *cnt = bpf_map_lookup_elem(&gp_failures, &idx);
	if (cnt)
		*cnt += 1;
	if (slot == GP_ERR_ENOENT)
		return 0; /* counted, never streamed */
	__u32 *sent = bpf_map_lookup_elem(&gp_samples, &idx);
	if (!sent || *sent >= sample_limit)
		return 0;
	if (__sync_fetch_and_add(sent, 1) >= sample_limit)
		return 0;

	struct gp_file_event *ev = gp_reserve(sizeof(*ev), GP_EV_FILE_FAILURE, e->root_pid);
	if (!ev)
		return 0;
	ev->syscall_nr = nr;
	ev->err = -ret;
	ev->class_id = class_id;
	ev->path_len = n - 1;
	ev->_pad = 0;
	bpf_probe_read_kernel(ev->path, sizeof(ev->path), key->data);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(gp_sys_exit, struct pt_regs *regs, long ret)
{
	/* Cheapest checks first: most syscalls succeed. */
	if (ret >= 0)
		return 0;
	if (ret != -EACCES && ret != -EPERM && ret != -EROFS && ret != -ENOENT)
		return 0;
	struct gp_tree_entry *e = gp_tree_lookup(bpf_get_current_pid_tgid() >> 32);
	if (!e)
		return 0;
	long nr = regs->orig_ax;
	int argi = gp_path_arg(nr);
	if (argi < 0)
		return 0;
	return gp_file_failure((const char *)gp_arg(regs, argi), nr, ret, e);
}

/*
 * gp_go_syscall_error sits on the first instruction of the error branch of
 * Go's raw syscall function (internal/runtime/syscall/linux.Syscall6 in
 * go1.26: SYSCALL; CMPQ AX, $-4095; JLS ok; NEGQ AX ...), found by user space
 * disassembling each toolchain binary. There RAX holds -errno; the syscall
 * number is gone, but the kernel preserves the argument registers, so DI and
 * SI are the first two arguments. Path syscalls take the path first (execve,
 * chdir, the legacy calls) or after a directory descriptor (every *at call
 * Go uses): a descriptor is AT_FDCWD or a small number, never a user
 * address, which tells the two apart. A failing call that takes no path
 * either has no readable string there or is counted as relative/other.
 */
SEC("uprobe/gp_go_syscall_error")
int gp_go_syscall_error(struct pt_regs *ctx)
{
	long ret = ctx->ax;
	if (ret != -EACCES && ret != -EPERM && ret != -EROFS && ret != -ENOENT)
		return 0;
	struct gp_tree_entry *e = gp_tree_lookup(bpf_get_current_pid_tgid() >> 32);
	if (!e)
		return 0; /* a toolchain binary run outside a tree */
	unsigned long a1 = ctx->di;
	const char *upath = (const char *)a1;
	if ((long)a1 == AT_FDCWD || a1 < (1UL << 31))
		upath = (const char *)ctx->si;
	return gp_file_failure(upath, GP_NR_UNKNOWN, ret, e);
}

/*
 * gp_sock_state follows TCP connects. The two transitions that matter are
 * tested first; every other state change returns at once.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(gp_sock_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	if (newstate == TCP_SYN_SENT) {
		__u64 id = bpf_get_current_pid_tgid();
		struct gp_tree_entry *e = gp_tree_lookup(id >> 32);
		if (!e)
			return 0;
		struct gp_conn c = {.pid_tgid = id, .start_ns = bpf_ktime_get_ns(), .root_pid = e->root_pid};
		bpf_map_update_elem(&gp_conns, &key, &c, BPF_ANY);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;
	struct gp_conn *c = bpf_map_lookup_elem(&gp_conns, &key);
	if (!c)
		return 0;
	struct gp_connect_event *ev = gp_reserve_as(sizeof(*ev), GP_EV_CONNECT, c->root_pid, c->pid_tgid);
	if (ev) {
		gp_peer_of(&ev->peer, sk);
		if (newstate == TCP_ESTABLISHED) {
			ev->ret = 0;
		} else {
			/* tcp_done_with_error stores the error before the state
			 * change; none means the caller closed the socket first. */
			int err = sk->sk_err;
			ev->ret = err ? -err : -ECONNABORTED;
		}
		ev->duration_ns = ev->hdr.ktime_ns - c->start_ns;
		bpf_ringbuf_submit(ev, 0);
	}
	bpf_map_delete_elem(&gp_conns, &key);
	return 0;
}
