/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * gopatrol.h: the contract shared by every gopatrol BPF object.
 *
 * sensor.bpf.c (process trees, file failures, connect) and tls.bpf.c (TLS
 * handshakes) are separate ELF objects loaded by separate collections. They
 * share three maps: the sensor's collection creates them and the Go loader
 * hands the same *ebpf.Map values to the TLS collection through
 * CollectionOptions.MapReplacements. MapReplacements checks type, key size,
 * value size, max_entries and flags, so every object must declare the maps
 * exactly as below: include this header, never copy the definitions.
 *
 * Include order in a .bpf.c file:
 *   #include "vmlinux.h"
 *   #include <bpf/bpf_helpers.h>
 *   #include <bpf/bpf_core_read.h>
 *   #include <bpf/bpf_tracing.h>
 *   #include "gopatrol.h"
 * (the libbpf headers are vendored in bpf/c/include; compile with
 * -I bpf/c -I bpf/c/include).
 */
#ifndef GOPATROL_H
#define GOPATROL_H

/*
 * Event types. The sensor owns 1..15, the TLS probes own 16..31. Drops are
 * counted per type in gp_drops, so a type must stay below GP_EV_MAX.
 */
enum gp_event_type {
	GP_EV_EXEC = 1,
	GP_EV_EXIT = 2,
	GP_EV_FILE_FAILURE = 3,
	GP_EV_CONNECT = 4,
	GP_EV_ENV = 5,
	GP_EV_TLS_FIRST = 16, /* 16..31: reserved for tls.bpf.c */
	GP_EV_TLS_LAST = 31,
	GP_EV_MAX = 32,
};

/*
 * Every record in gp_events starts with this header (24 bytes, little
 * endian, no implicit padding). size is the length of the whole record,
 * header included, so that user space can skip a type it does not know.
 */
struct gp_event_header {
	__u16 type;     /* enum gp_event_type */
	__u16 size;     /* bytes in the record, header included */
	__u32 pid;      /* tgid of the process */
	__u32 tid;      /* thread id (kernel pid) */
	__u32 root_pid; /* tgid of the tree's root: the top-level go command */
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};

/* The remote end of a TCP socket, as events carry it (20 bytes). */
struct gp_peer {
	__u16 family; /* AF_INET, AF_INET6; 0 when unknown */
	__u16 port;   /* host byte order */
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
};

/* gp_peer_of reads the remote address of sk, a BTF pointer (tp_btf
 * argument): direct loads, CO-RE relocated. */
static __always_inline void gp_peer_of(struct gp_peer *p, const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;
	__builtin_memset(p->addr, 0, sizeof(p->addr));
	p->family = 0;
	p->port = 0;
	if (family == 2 /* AF_INET */)
		__builtin_memcpy(p->addr, &sk->__sk_common.skc_daddr, 4);
	else if (family == 10 /* AF_INET6 */)
		__builtin_memcpy(p->addr, &sk->__sk_common.skc_v6_daddr, 16);
	else
		return;
	p->family = family;
	p->port = __builtin_bswap16(sk->__sk_common.skc_dport);
}

/* Value of gp_tree: one entry per process (tgid) in a Go toolchain tree. */
struct gp_tree_entry {
	__u32 root_pid; /* tgid of the tree root */
	__u32 ppid;     /* tgid of the parent at fork */
	__u64 start_ns; /* task start_time (CLOCK_MONOTONIC ns) */
};

#define GP_TREE_MAX_ENTRIES 32768
#define GP_RINGBUF_DEFAULT_SIZE (1024 * 1024) /* loader may resize */

/* Process-tree membership, keyed by tgid. Written by sensor.bpf.c only;
 * other objects only look up. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GP_TREE_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct gp_tree_entry);
} gp_tree SEC(".maps");

/* The one ring buffer all objects write events to. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, GP_RINGBUF_DEFAULT_SIZE);
} gp_events SEC(".maps");

/* Per-CPU count of records lost because the ring buffer was full, indexed
 * by event type. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GP_EV_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gp_drops SEC(".maps");

/* gp_tree_lookup returns the tree entry of the current process, or NULL when
 * it is not in a Go toolchain tree. It is the first check of every program
 * that must cost nothing for other processes. */
static __always_inline struct gp_tree_entry *gp_tree_lookup(__u32 tgid)
{
	return bpf_map_lookup_elem(&gp_tree, &tgid);
}

static __always_inline void gp_count_drop(__u32 type)
{
	__u64 *n = bpf_map_lookup_elem(&gp_drops, &type);
	if (n)
		*n += 1;
}

/*
 * gp_reserve_as reserves a record of size bytes (a compile-time constant) in
 * gp_events and fills its header for the thread pid_tgid (as returned by
 * bpf_get_current_pid_tgid). On failure it counts a drop for type and returns
 * NULL. Submit with bpf_ringbuf_submit(p, 0).
 */
static __always_inline void *gp_reserve_as(__u32 size, __u16 type, __u32 root_pid, __u64 pid_tgid)
{
	struct gp_event_header *h = bpf_ringbuf_reserve(&gp_events, size, 0);
	if (!h) {
		gp_count_drop(type);
		return NULL;
	}
	h->type = type;
	h->size = size;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->root_pid = root_pid;
	h->ktime_ns = bpf_ktime_get_ns();
	return h;
}

/* gp_reserve is gp_reserve_as for the current thread. */
static __always_inline void *gp_reserve(__u32 size, __u16 type, __u32 root_pid)
{
	return gp_reserve_as(size, type, root_pid, bpf_get_current_pid_tgid());
}

#endif /* GOPATROL_H */
