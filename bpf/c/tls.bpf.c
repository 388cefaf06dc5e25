// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tls.bpf.c: TLS handshakes of processes in Go toolchain trees.
 *
 * Three sources, joined in the kernel so that user space gets one
 * self-contained record per handshake:
 *
 *  - Go crypto/tls: a uprobe at the entry of crypto/tls.(*Conn).clientHandshake
 *    and one at each of its RET instructions (offsets found by user space
 *    disassembling the function; uretprobes would rewrite the return address
 *    on the goroutine stack, which Go's stack copying and traceback do not
 *    expect). Calls are keyed by (tgid, g), the goroutine pointer that the Go
 *    register ABI keeps in r14. A uprobe at the entry of
 *    (*Conn).sendAlertLocked records the alert the client sends: with TLS 1.3
 *    that alert is encrypted on the wire, so the socket cannot show it.
 *  - libssl: SSL_do_handshake/SSL_connect entry + uretprobe keyed by the SSL
 *    pointer; a failure is final only when SSL_get_error says so (non-blocking
 *    clients such as curl see WANT_READ many times per handshake).
 *  - The socket: on every TCP send of a tree process (the tcp_sendmsg_locked
 *    tracepoint, so no syscall hook taxes other processes), the first bytes
 *    of the data are checked for a TLS ClientHello or alert record. A
 *    ClientHello written while a handshake of the same goroutine (Go) or
 *    thread (libssl) is in flight is stored with it; any other ClientHello or
 *    alert is streamed on its own, so the SNI is seen for every library. The
 *    socket also gives the server's address.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "gopatrol.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum tls_event_type {
	TLS_EV_HANDSHAKE = GP_EV_TLS_FIRST, /* 16 */
	TLS_EV_CLIENT_HELLO = GP_EV_TLS_FIRST + 1, /* 17: not joined to a handshake */
	TLS_EV_ALERT = GP_EV_TLS_FIRST + 2, /* 18: not joined to a handshake */
};

enum tls_library {
	TLS_LIB_GO = 1,
	TLS_LIB_LIBSSL = 2,
};

enum tls_outcome {
	TLS_OK = 1,
	TLS_FAILED = 2,
};

enum tls_alert_source {
	TLS_ALERT_SENT_GO = 1, /* argument of (*Conn).sendAlertLocked */
	TLS_ALERT_WIRE = 2,    /* plaintext alert record written to the socket */
};

#define HELLO_MAX 512
#define INFLIGHT_MAX 4096


struct tls_key {
	__u32 tgid;
	__u32 pad;
	__u64 id; /* Go: g pointer; libssl: SSL pointer */
};

struct tls_inflight {
	__u64 start_ns;
	__u32 root_pid;
	__u8 library;
	__u8 alert_level;
	__u8 alert_desc;
	__u8 alert_source;
	__u16 hello_len;
	__u16 pad;
	struct gp_peer peer; /* of the ClientHello's socket; family 0 when none */
	__u8 hello[HELLO_MAX];
};

/* TLS_EV_HANDSHAKE: 24 + 52 + 512 bytes, padded to 592. */
struct tls_handshake_event {
	struct gp_event_header h;
	__u64 duration_ns;
	__u64 conn_id;  /* g or SSL pointer */
	__s32 ret;      /* libssl: 1, or -1 for a failure SSL_get_error confirmed; Go: 0 */
	__s32 ssl_err;  /* libssl: SSL_get_error code of a failure; Go: 0 */
	__u8 library;
	__u8 outcome;
	__u8 alert_level;
	__u8 alert_desc;
	__u8 alert_source;
	__u8 pad;
	__u16 hello_len;
	struct gp_peer peer;
	__u8 hello[HELLO_MAX];
};

/* TLS_EV_CLIENT_HELLO: 24 + 24 + 512 bytes. */
struct tls_hello_event {
	struct gp_event_header h;
	struct gp_peer peer;
	__u16 hello_len;
	__u16 pad;
	__u8 hello[HELLO_MAX];
};

/* TLS_EV_ALERT: 24 + 24 bytes. */
struct tls_alert_event {
	struct gp_event_header h;
	struct gp_peer peer;
	__u8 level;
	__u8 desc;
	__u16 pad;
};

/*
 * Layout anchors, never read: they put the event records in the object's BTF,
 * where bpf/tlsprobe/layout_test.go checks every offset and size the Go
 * decoder (bpf/tlsprobe/event.go) uses. Constants in .rodata, which
 * the loader does not load (bpf/tlsprobe/load_x86.go): no map.
 */
const struct tls_handshake_event *const tls_layout_handshake = 0;
const struct tls_hello_event *const tls_layout_hello = 0;
const struct tls_alert_event *const tls_layout_alert = 0;

/* The Go decoder (bpf/tlsprobe/event.go) relies on these layouts. */
_Static_assert(sizeof(struct tls_handshake_event) == 24 + 52 + HELLO_MAX + 4, "tls_handshake_event layout");
_Static_assert(__builtin_offsetof(struct tls_handshake_event, hello) == 24 + 52, "tls_handshake_event layout");
_Static_assert(sizeof(struct tls_hello_event) == 24 + 24 + HELLO_MAX, "tls_hello_event layout");
_Static_assert(sizeof(struct tls_alert_event) == 24 + 24, "tls_alert_event layout");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, INFLIGHT_MAX);
	__type(key, struct tls_key);
	__type(value, struct tls_inflight);
} tls_inflight SEC(".maps");

/* A zeroed inflight value: too big for the 512-byte BPF stack, so new
 * entries are copied from here. Never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tls_inflight);
} tls_zero SEC(".maps");

/* libssl: the SSL pointer of the SSL_connect/SSL_do_handshake or
 * SSL_get_error call running on a thread (pid_tgid), for the uretprobe and
 * for ClientHello writes made inside the call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, INFLIGHT_MAX);
	__type(key, __u64);
	__type(value, __u64);
} tls_ssl_call SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, INFLIGHT_MAX);
	__type(key, __u64);
	__type(value, __u64);
} tls_ssl_geterr SEC(".maps");

static __always_inline struct tls_inflight *begin(__u32 tgid, __u64 id, __u32 root, __u8 lib, bool restart)
{
	struct tls_key key = {.tgid = tgid, .id = id};
	struct tls_inflight *v;
	__u32 zero = 0;

	if (!restart) {
		v = bpf_map_lookup_elem(&tls_inflight, &key);
		if (v)
			return v;
	}
	v = bpf_map_lookup_elem(&tls_zero, &zero);
	if (!v)
		return NULL;
	if (bpf_map_update_elem(&tls_inflight, &key, v, BPF_ANY))
		return NULL;
	v = bpf_map_lookup_elem(&tls_inflight, &key);
	if (!v)
		return NULL;
	v->start_ns = bpf_ktime_get_ns();
	v->root_pid = root;
	v->library = lib;
	v->peer.family = 0;
	return v;
}

static __always_inline void finish(struct tls_key *key, struct tls_inflight *v, __u8 outcome, __s32 ret, __s32 ssl_err)
{
	struct tls_handshake_event *e = gp_reserve(sizeof(*e), TLS_EV_HANDSHAKE, v->root_pid);
	if (e) {
		e->duration_ns = bpf_ktime_get_ns() - v->start_ns;
		e->conn_id = key->id;
		e->ret = ret;
		e->ssl_err = ssl_err;
		e->library = v->library;
		e->outcome = outcome;
		e->alert_level = v->alert_level;
		e->alert_desc = v->alert_desc;
		e->alert_source = v->alert_source;
		e->pad = 0;
		e->hello_len = v->hello_len;
		e->peer = v->peer;
		__builtin_memcpy(e->hello, v->hello, HELLO_MAX);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&tls_inflight, key);
}

/* ---- Go crypto/tls ---------------------------------------------------- */

SEC("uprobe/go_tls_handshake_entry")
int go_tls_handshake_entry(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct gp_tree_entry *t = gp_tree_lookup(tgid);
	if (!t)
		return 0;
	/* restart: the entry probe also fires again when the prologue grew the
	 * stack (morestack re-enters the function), and a stale entry of the
	 * same goroutine must not lend its start time. */
	begin(tgid, ctx->r14, t->root_pid, TLS_LIB_GO, true);
	return 0;
}

SEC("uprobe/go_tls_handshake_ret")
int go_tls_handshake_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct tls_key key = {.tgid = tgid, .id = ctx->r14};
	struct tls_inflight *v = bpf_map_lookup_elem(&tls_inflight, &key);
	if (!v)
		return 0;
	/* The error result is an interface in (RAX, RBX): a nil type word
	 * means a nil error. */
	finish(&key, v, ctx->ax == 0 ? TLS_OK : TLS_FAILED, 0, 0);
	return 0;
}

SEC("uprobe/go_tls_send_alert")
int go_tls_send_alert(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct tls_key key = {.tgid = tgid, .id = ctx->r14};
	struct tls_inflight *v = bpf_map_lookup_elem(&tls_inflight, &key);
	if (!v)
		return 0;
	/* func (c *Conn) sendAlertLocked(err alert): c in RAX, err in BX. */
	__u8 desc = ctx->bx & 0xff;
	if (desc == 0 /* close_notify */)
		return 0;
	v->alert_desc = desc;
	v->alert_level = desc == 100 /* no_renegotiation */ ? 1 : 2;
	v->alert_source = TLS_ALERT_SENT_GO;
	return 0;
}

/* ---- libssl ------------------------------------------------------------ */

SEC("uprobe/ssl_handshake_entry")
int ssl_handshake_entry(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct gp_tree_entry *t = gp_tree_lookup(tgid);
	if (!t)
		return 0;
	__u64 ssl = ctx->di;
	/* A non-blocking handshake calls in again after WANT_READ: keep the
	 * first start time. */
	if (!begin(tgid, ssl, t->root_pid, TLS_LIB_LIBSSL, false))
		return 0;
	bpf_map_update_elem(&tls_ssl_call, &id, &ssl, BPF_ANY);
	return 0;
}

SEC("uretprobe/ssl_handshake_ret")
int ssl_handshake_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *ssl = bpf_map_lookup_elem(&tls_ssl_call, &id);
	if (!ssl)
		return 0;
	struct tls_key key = {.tgid = id >> 32, .id = *ssl};
	bpf_map_delete_elem(&tls_ssl_call, &id);
	__s32 ret = (__s32)ctx->ax;
	if (ret != 1)
		return 0; /* SSL_get_error decides whether it failed */
	struct tls_inflight *v = bpf_map_lookup_elem(&tls_inflight, &key);
	if (v)
		finish(&key, v, TLS_OK, ret, 0);
	return 0;
}

SEC("uprobe/ssl_get_error_entry")
int ssl_get_error_entry(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_key key = {.tgid = id >> 32, .id = ctx->di};
	if (!bpf_map_lookup_elem(&tls_inflight, &key))
		return 0;
	__u64 ssl = ctx->di;
	bpf_map_update_elem(&tls_ssl_geterr, &id, &ssl, BPF_ANY);
	return 0;
}

SEC("uretprobe/ssl_get_error_ret")
int ssl_get_error_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *ssl = bpf_map_lookup_elem(&tls_ssl_geterr, &id);
	if (!ssl)
		return 0;
	struct tls_key key = {.tgid = id >> 32, .id = *ssl};
	bpf_map_delete_elem(&tls_ssl_geterr, &id);
	__s32 code = (__s32)ctx->ax;
	switch (code) {
	case 0:  /* SSL_ERROR_NONE */
	case 2:  /* SSL_ERROR_WANT_READ */
	case 3:  /* SSL_ERROR_WANT_WRITE */
	case 4:  /* SSL_ERROR_WANT_X509_LOOKUP */
	case 7:  /* SSL_ERROR_WANT_CONNECT */
	case 8:  /* SSL_ERROR_WANT_ACCEPT */
	case 9:  /* SSL_ERROR_WANT_ASYNC */
	case 10: /* SSL_ERROR_WANT_ASYNC_JOB */
	case 11: /* SSL_ERROR_WANT_CLIENT_HELLO_CB */
	case 12: /* SSL_ERROR_WANT_RETRY_VERIFY */
		return 0;
	}
	struct tls_inflight *v = bpf_map_lookup_elem(&tls_inflight, &key);
	if (v)
		finish(&key, v, TLS_FAILED, -1, code);
	return 0;
}

/* ---- the socket -------------------------------------------------------- */

/* hello_size bounds a copy so that the verifier can prove it fits. */
static __always_inline __u32 hello_size(__u64 len)
{
	__u32 n = len > HELLO_MAX ? HELLO_MAX : (__u32)len;
	asm volatile("" : "+r"(n));
	if (n > HELLO_MAX)
		n = HELLO_MAX;
	return n;
}

/* first_buffer returns the user buffer a TCP send continues from, and how
 * much of the message is left: only sends from user memory (write, send,
 * sendto: ITER_UBUF; writev, sendmsg: ITER_IOVEC) are looked at. */
static __always_inline int first_buffer(const struct msghdr *msg, __u64 *buf, __u64 *len)
{
	const struct iov_iter *it = &msg->msg_iter;
	__u8 type = it->iter_type;
	__u64 off = it->iov_offset;

	if (type == ITER_UBUF) {
		*buf = (__u64)it->ubuf + off;
		*len = it->count;
		return 0;
	}
	if (type != ITER_IOVEC)
		return -1;
	struct iovec iov;
	if (bpf_probe_read_kernel(&iov, sizeof(iov), it->__iov))
		return -1;
	if (off >= iov.iov_len)
		return -1;
	*buf = (__u64)iov.iov_base + off;
	*len = iov.iov_len - off;
	return 0;
}

static __always_inline struct tls_inflight *joined(__u64 pid_tgid, __u64 r14, struct tls_key *key)
{
	struct tls_inflight *v;

	key->tgid = pid_tgid >> 32;
	key->pad = 0;
	/* Go: the writer's goroutine is in the saved r14. For a C program r14
	 * is arbitrary and the lookup misses. */
	key->id = r14;
	v = bpf_map_lookup_elem(&tls_inflight, key);
	if (v)
		return v;
	__u64 *ssl = bpf_map_lookup_elem(&tls_ssl_call, &pid_tgid);
	if (!ssl)
		return NULL;
	key->id = *ssl;
	return bpf_map_lookup_elem(&tls_inflight, key);
}

/* The tracepoint fires in the sender's context each time the send loop
 * starts filling a segment, so a ClientHello (one segment) is seen once, at
 * the start of its record. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(tls_tcp_sendmsg, const struct sock *sk, const struct msghdr *msg, const struct sk_buff *skb, int size_goal)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct gp_tree_entry *t = gp_tree_lookup(pid_tgid >> 32);
	if (!t)
		return 0;

	__u64 buf = 0, len = 0;
	if (first_buffer(msg, &buf, &len))
		return 0;
	if (len < 6)
		return 0;
	/* Record header (type, version, length) + first byte of the body. */
	__u8 hdr[7] = {};
	if (bpf_probe_read_user(hdr, len >= 7 ? 7 : 6, (void *)buf))
		return 0;
	if (hdr[1] != 0x03)
		return 0; /* not SSL 3.0 / TLS 1.x */
	/* Go keeps the goroutine in r14; the send's user registers are those
	 * the syscall entered with. */
	__u64 r14 = BPF_CORE_READ((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()), r14);
	struct gp_peer peer;
	gp_peer_of(&peer, sk);
	struct tls_key key;
	struct tls_inflight *v;

	if (hdr[0] == 0x16 && hdr[5] == 0x01) { /* handshake: ClientHello */
		__u32 n = hello_size(len);
		v = joined(pid_tgid, r14, &key);
		if (v) {
			if (v->hello_len)
				return 0; /* HelloRetryRequest: keep the first */
			if (bpf_probe_read_user(v->hello, n, (void *)buf))
				return 0;
			v->hello_len = n;
			v->peer = peer;
			return 0;
		}
		struct tls_hello_event *e = gp_reserve(sizeof(*e), TLS_EV_CLIENT_HELLO, t->root_pid);
		if (!e)
			return 0;
		e->peer = peer;
		e->pad = 0;
		if (bpf_probe_read_user(e->hello, n, (void *)buf)) {
			bpf_ringbuf_discard(e, 0);
			return 0;
		}
		e->hello_len = n;
		bpf_ringbuf_submit(e, 0);
		return 0;
	}
	if (hdr[0] == 0x15 && hdr[3] == 0 && hdr[4] == 2 && len >= 7) { /* plaintext alert */
		__u8 level = hdr[5], desc = hdr[6];
		if (desc == 0)
			return 0; /* close_notify: not a failure */
		v = joined(pid_tgid, r14, &key);
		if (v) {
			if (!v->alert_source) {
				v->alert_level = level;
				v->alert_desc = desc;
				v->alert_source = TLS_ALERT_WIRE;
			}
			return 0;
		}
		struct tls_alert_event *e = gp_reserve(sizeof(*e), TLS_EV_ALERT, t->root_pid);
		if (!e)
			return 0;
		e->peer = peer;
		e->level = level;
		e->desc = desc;
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
