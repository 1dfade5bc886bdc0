// SPDX-License-Identifier: GPL-2.0
/* Mesh interception without iptables. connect4/connect6 send a workload's TCP connects to its
 * proxy (outbound) or to a local workload's inbound proxy, keeping the original destination in
 * socket storage; sock_ops (bpf/sockops) files it per connection; getsockopt answers
 * SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST from it, exactly as iptables REDIRECT would. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "meshlane/counters.bpf.h"
#include "meshlane/dns.bpf.h"
#include "meshlane/events.bpf.h"
#include "meshlane/intercept.h"
#include "meshlane/maps.bpf.h"
#include "meshlane/orig_dst.bpf.h"
#include "meshlane/policy.bpf.h"
#include "meshlane/port_use_map.bpf.h"
#include "meshlane/rules.bpf.h"
#include "meshlane/splice.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define SOCK_STREAM 1
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

const volatile __u8 intercept = 1;
/* Whether sock_ops splices (acceleration on and supported): only then does a client end read the
 * listener its connect found (ml_srvlistener_v1). Without splicing nobody reads it, and each
 * note would cost an allocation and an RCU-delayed free per connection for nothing. */
const volatile __u8 note_listeners = 1;
/* acceleration.adaptive_splicing (with acceleration on): a connection whose listener answer is
 * noted takes adaptive splicing's decision here, so that a connection it keeps unspliced costs no
 * answer at all (note_server_listener). */
const volatile __u8 adaptive_splicing = 0;

/* Counted node-wide, for the connecting workload and for the local workload it tried to reach. */
static __always_inline void count_denied(const struct ml_connect_request *req,
					 const struct ml_workload *dst_pod)
{
	ml_count(ML_CTR_DENIED_CONNECT, 1);
	ml_count_workload(req->netns_cookie, ML_CTR_DENIED_CONNECT, 1);
	if (dst_pod)
		ml_count_workload(dst_pod->netns_cookie, ML_CTR_DENIED_CONNECT, 1);
}

/* A connect about to be rewritten to a proxy needs room for its original destination in
 * ml_origdst_v2 (sock_ops files it before the SYN leaves). Without it the connect goes to its
 * original destination untouched, the normal path, and is counted: better than reaching a
 * proxy that cannot learn where it was going. */
static __always_inline void pass_if_orig_dst_full(struct ml_connect_verdict *verdict)
{
	if (verdict->record_orig_dst && !ml_orig_dst_has_room())
		ml_verdict_pass(verdict, ML_CTR_INTERCEPT_SKIPPED_MAP_FULL, ML_HOP_OTHER);
}

/* A TCP socket may connect again after a connect failed; the hook runs only while it is closed.
 * What an earlier connect recorded must not describe the new one, which records its own below
 * (or nothing, when it is not intercepted). */
static __always_inline void forget_earlier_connect(struct bpf_sock *sk)
{
	struct ml_sock_state *state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, 0);

	if (!state)
		return;
	state->hop = ML_HOP_OTHER;
	state->has_orig_dst = 0;
}

/* Decides, records the original destination and hop kind, and returns the verdict. */
static __always_inline int handle_connect(struct bpf_sock_addr *ctx, struct ml_connect_request *req,
					  struct ml_connect_verdict *verdict)
{
	struct ml_connect_rules rules = {};
	struct ml_workload *self, *dst_pod;
	struct ml_sock_state *state;
	__u32 deny_detail = 0;
	__u64 uid_gid;

	if (!intercept || ctx->type != SOCK_STREAM)
		return 0;
	forget_earlier_connect(ctx->sk);
	req->netns_cookie = bpf_get_netns_cookie(ctx);
	self = bpf_map_lookup_elem(&ml_workloads_v1, &req->netns_cookie);
	if (!self)
		return 0;
	uid_gid = bpf_get_current_uid_gid();
	req->uid = (__u32)uid_gid;
	req->gid = (__u32)(uid_gid >> 32);
	dst_pod = ml_pod_of(req->dst_ip6);
	if (ml_connect_needs_policy(req, self, dst_pod) &&
	    ml_policy_judge_connect(req->netns_cookie, req->dst_ip6, req->dst_port, &deny_detail) ==
		    ML_POLICY_DENY) {
		count_denied(req, dst_pod);
		ml_emit_connect_denied(req, self, deny_detail);
		verdict->action = ML_CONNECT_DENY;
		return verdict->action;
	}
	ml_lookup_connect_rules(self, dst_pod, req->dst_ip6, req->dst_port, &rules);
	ml_decide_connect(req, self, dst_pod, &rules, verdict);
	pass_if_orig_dst_full(verdict);
	if (verdict->counter < ML_CTR_MAX) {
		ml_count(verdict->counter, 1);
		ml_count_workload(req->netns_cookie, verdict->counter, 1);
		/* A fast-path connection is the destination workload's too. */
		if (verdict->hop == ML_HOP_FAST_PATH && dst_pod)
			ml_count_workload(dst_pod->netns_cookie, verdict->counter, 1);
	}
	ml_emit_connect(req, verdict, self);
	ml_emit_bypassed(req, self, ml_bypass_reason(self, &rules, verdict));
	if (verdict->hop == ML_HOP_OTHER && !verdict->record_orig_dst)
		return verdict->action;

	state = bpf_sk_storage_get(&ml_sockstate_v1, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!state)
		return verdict->action;
	state->hop = verdict->hop;
	state->has_orig_dst = verdict->record_orig_dst;
	if (verdict->record_orig_dst) {
		ml_ip6_copy(state->orig_dst.ip6, req->dst_ip6);
		state->orig_dst.port = req->dst_port;
		state->orig_dst.family = req->dst_is_mapped ? ML_AF_INET : ML_AF_INET6;
	}
	return verdict->action;
}

/* Tells sock_ops which live listener of the cgroup this socket's connection reaches on this
 * node (ml_srvlistener_v1, read by its client end; sock_ops cannot look the registry up). The
 * destination is the final one, after any redirect; its namespace is the pod's that owns the
 * address, else the caller's own (loopback, or possibly its own address: sock_ops consults the
 * answer only for those). A socket that connects again gets a new answer.
 * For a loopback or pod address, adaptive splicing's decision is taken here, by the port the
 * connection is judged by (`judged_port`: the original destination's when the connect is
 * redirected, as sock_ops judges it): a connection to a port whose connections are short will
 * not be spliced and gets no answer, which spares an allocation and an RCU-delayed free per
 * connection on such ports (sock_ops tells it from the port, ml_port_is_short, and picks the
 * samples among them). */
static __always_inline void note_server_listener(struct bpf_sock_addr *ctx, const __u32 ip6[4],
						 __u16 port, __u16 judged_port)
{
	struct ml_listener_key judged_by = {
		.netns_cookie = bpf_get_netns_cookie(ctx),
		.port = judged_port,
	};
	struct ml_server_listener *note;
	struct ml_workload *pod;
	int decides = ml_ip6_is_loopback(ip6);
	int found, judged = 0;

	if (!note_listeners || ctx->type != SOCK_STREAM)
		return;
	if (!decides) {
		pod = ml_pod_of(ip6);
		if (pod) {
			judged_by.netns_cookie = pod->netns_cookie;
			decides = 1;
		}
	}
	found = ml_listening(judged_by.netns_cookie, port);
	if (found && adaptive_splicing && decides) {
		if (ml_port_is_short(&judged_by))
			found = 0;
		else
			judged = 1;
	}
	note = bpf_sk_storage_get(&ml_srvlistener_v1, ctx->sk, 0,
				  found ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!note)
		return;
	note->netns_cookie = found ? judged_by.netns_cookie : 0;
	note->port = port;
	note->judged = judged;
}

/* The port adaptive splicing judges a redirected connection by: the one its application asked
 * for when its original destination is recorded (a sidecar's ports carry every service's
 * connections), else the one it now goes to. */
static __always_inline __u16 judged_port(const struct ml_connect_request *req,
					 const struct ml_connect_verdict *verdict)
{
	return verdict->record_orig_dst ? req->dst_port : verdict->new_port;
}

/* The address the app gave, as the request's destination (v4 as v4-mapped). */
static __always_inline void read_user_ip6(const struct bpf_sock_addr *ctx, __u32 ip6[4])
{
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
}

static __always_inline void request_dst4(const struct bpf_sock_addr *ctx,
					 struct ml_connect_request *req)
{
	ml_ip4_to_mapped(ctx->user_ip4, req->dst_ip6);
	req->dst_port = bpf_ntohs((__u16)ctx->user_port);
	req->dst_is_mapped = 1;
}

static __always_inline void request_dst6(const struct bpf_sock_addr *ctx,
					 struct ml_connect_request *req)
{
	read_user_ip6(ctx, req->dst_ip6);
	req->dst_port = bpf_ntohs((__u16)ctx->user_port);
	req->dst_is_mapped = ml_ip6_is_mapped_v4(req->dst_ip6);
}

/* Rewrites the address the app's connect/sendmsg/recvmsg sees (port in host order). */
static __always_inline void set_user_addr4(struct bpf_sock_addr *ctx, const __u32 ip6[4],
					   __u16 port)
{
	ctx->user_ip4 = ip6[3];
	ctx->user_port = bpf_htons(port);
}

static __always_inline void set_user_addr6(struct bpf_sock_addr *ctx, const __u32 ip6[4],
					   __u16 port)
{
	ctx->user_ip6[0] = ip6[0];
	ctx->user_ip6[1] = ip6[1];
	ctx->user_ip6[2] = ip6[2];
	ctx->user_ip6[3] = ip6[3];
	ctx->user_port = bpf_htons(port);
}

SEC("cgroup/connect4")
int ml_connect4(struct bpf_sock_addr *ctx)
{
	struct ml_connect_request req = {};
	struct ml_connect_verdict verdict = {};
	struct bpf_sock *sk = ctx->sk;

	request_dst4(ctx, &req);
	if (sk && sk->src_ip4)
		ml_ip4_to_mapped(sk->src_ip4, req.src_ip6);
	if (intercept && ml_dns_capture_udp(ctx, &req, &verdict)) {
		set_user_addr4(ctx, verdict.new_ip6, verdict.new_port);
		return 1;
	}
	switch (handle_connect(ctx, &req, &verdict)) {
	case ML_CONNECT_DENY:
		return 0;
	case ML_CONNECT_REDIRECT:
		set_user_addr4(ctx, verdict.new_ip6, verdict.new_port);
		note_server_listener(ctx, verdict.new_ip6, verdict.new_port,
				     judged_port(&req, &verdict));
		break;
	default:
		/* The fast path's own condition was that listener: sock_ops goes by the hop. */
		if (verdict.hop != ML_HOP_FAST_PATH)
			note_server_listener(ctx, req.dst_ip6, req.dst_port, req.dst_port);
		break;
	}
	return 1;
}

SEC("cgroup/connect6")
int ml_connect6(struct bpf_sock_addr *ctx)
{
	struct ml_connect_request req = {};
	struct ml_connect_verdict verdict = {};
	struct bpf_sock *sk = ctx->sk;

	request_dst6(ctx, &req);
	if (sk) {
		req.src_ip6[0] = sk->src_ip6[0];
		req.src_ip6[1] = sk->src_ip6[1];
		req.src_ip6[2] = sk->src_ip6[2];
		req.src_ip6[3] = sk->src_ip6[3];
	}
	if (intercept && ml_dns_capture_udp(ctx, &req, &verdict)) {
		set_user_addr6(ctx, verdict.new_ip6, verdict.new_port);
		return 1;
	}
	switch (handle_connect(ctx, &req, &verdict)) {
	case ML_CONNECT_DENY:
		return 0;
	case ML_CONNECT_REDIRECT:
		set_user_addr6(ctx, verdict.new_ip6, verdict.new_port);
		note_server_listener(ctx, verdict.new_ip6, verdict.new_port,
				     judged_port(&req, &verdict));
		break;
	default:
		/* The fast path's own condition was that listener: sock_ops goes by the hop. */
		if (verdict.hop != ML_HOP_FAST_PATH)
			note_server_listener(ctx, req.dst_ip6, req.dst_port, req.dst_port);
		break;
	}
	return 1;
}

/* The accepted socket's view of its connection: client = remote end, server = local end. */
static __always_inline void flow_key_from_accepted(struct bpf_sockopt *ctx, struct bpf_sock *sk,
						   struct ml_flow_key *key)
{
	if (sk->family == ML_AF_INET) {
		ml_ip4_to_mapped(sk->dst_ip4, key->client_ip6);
		ml_ip4_to_mapped(sk->src_ip4, key->server_ip6);
	} else {
		key->client_ip6[0] = sk->dst_ip6[0];
		key->client_ip6[1] = sk->dst_ip6[1];
		key->client_ip6[2] = sk->dst_ip6[2];
		key->client_ip6[3] = sk->dst_ip6[3];
		key->server_ip6[0] = sk->src_ip6[0];
		key->server_ip6[1] = sk->src_ip6[1];
		key->server_ip6[2] = sk->src_ip6[2];
		key->server_ip6[3] = sk->src_ip6[3];
	}
	key->client_port = bpf_ntohs((__u16)sk->dst_port);
	key->server_port = (__u16)sk->src_port;
	key->scope = (ml_ip6_is_loopback(key->client_ip6) || ml_ip6_is_loopback(key->server_ip6)) ?
			     bpf_get_netns_cookie(ctx) :
			     0;
}

static __always_inline int answer_ipv4(struct bpf_sockopt *ctx, const struct ml_orig_dst *orig)
{
	struct sockaddr_in *addr = ctx->optval;

	if ((void *)(addr + 1) > ctx->optval_end || !ml_ip6_is_mapped_v4(orig->ip6))
		return 0;
	addr->sin_family = ML_AF_INET;
	addr->sin_port = bpf_htons(orig->port);
	addr->sin_addr.s_addr = orig->ip6[3];
	ctx->optlen = sizeof(*addr);
	return 1;
}

static __always_inline int answer_ipv6(struct bpf_sockopt *ctx, const struct ml_orig_dst *orig)
{
	struct sockaddr_in6 *addr = ctx->optval;

	if ((void *)(addr + 1) > ctx->optval_end)
		return 0;
	__builtin_memset(addr, 0, sizeof(*addr));
	addr->sin6_family = ML_AF_INET6;
	addr->sin6_port = bpf_htons(orig->port);
	addr->sin6_addr.in6_u.u6_addr32[0] = orig->ip6[0];
	addr->sin6_addr.in6_u.u6_addr32[1] = orig->ip6[1];
	addr->sin6_addr.in6_u.u6_addr32[2] = orig->ip6[2];
	addr->sin6_addr.in6_u.u6_addr32[3] = orig->ip6[3];
	ctx->optlen = sizeof(*addr);
	return 1;
}

/* The original destination of ctx->sk: kept in its socket storage once sock_ops saw it
 * established (so asking again gets the same answer), else still filed in the map (asked
 * before that, or a connection accepted by programs older than this build). */
static __always_inline const struct ml_orig_dst *orig_dst_of(struct bpf_sockopt *ctx,
							     struct bpf_sock *sk)
{
	struct ml_sock_state *state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, 0);
	struct ml_orig_dst_entry *entry;
	struct ml_flow_key key = {};

	if (state && state->has_orig_dst)
		return &state->orig_dst;
	flow_key_from_accepted(ctx, sk, &key);
	entry = bpf_map_lookup_elem(&ml_origdst_v2, &key);
	return entry ? &entry->dst : NULL;
}

SEC("cgroup/getsockopt")
int ml_getsockopt(struct bpf_sockopt *ctx)
{
	const struct ml_orig_dst *orig;
	struct bpf_sock *sk = ctx->sk;
	int answered;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	if (!sk)
		return 1;
	orig = orig_dst_of(ctx, sk);
	if (!orig) {
		/* Not steered by meshlane: leave conntrack's answer (iptables still in use) as is. */
		if (ctx->retval != 0)
			ml_count(ML_CTR_ORIG_DST_UNKNOWN, 1);
		return 1;
	}
	/* Ours wins over conntrack: a pod moved from iptables to meshlane keeps stale NAT entries
	 * for a while, and the kernel would answer from them. */
	answered = ctx->level == SOL_IP ? answer_ipv4(ctx, orig) : answer_ipv6(ctx, orig);
	if (answered) {
		ctx->retval = 0;
		ml_count(ML_CTR_ORIG_DST_ANSWERED, 1);
	}
	return 1;
}

/* DNS capture (docs/interception.md, "DNS capture"): an app's datagram to port 53 on an
 * unconnected UDP socket goes to its pod's DNS proxy (connected sockets: connect4/connect6). */
SEC("cgroup/sendmsg4")
int ml_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct ml_connect_request req = {};
	struct ml_connect_verdict verdict = {};

	if (!intercept)
		return 1;
	request_dst4(ctx, &req);
	if (ml_dns_capture_udp(ctx, &req, &verdict))
		set_user_addr4(ctx, verdict.new_ip6, verdict.new_port);
	return 1;
}

SEC("cgroup/sendmsg6")
int ml_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct ml_connect_request req = {};
	struct ml_connect_verdict verdict = {};

	if (!intercept)
		return 1;
	request_dst6(ctx, &req);
	if (ml_dns_capture_udp(ctx, &req, &verdict))
		set_user_addr6(ctx, verdict.new_ip6, verdict.new_port);
	return 1;
}

/* The DNS proxy's reply to a captured query, as recvmsg()/recvfrom() report its sender: shown
 * as from the server the app addressed, so resolvers that check (glibc, musl, dig) accept it.
 * A recvmsg program must return 1. */
SEC("cgroup/recvmsg4")
int ml_recvmsg4(struct bpf_sock_addr *ctx)
{
	const struct ml_dns_origin *origin;
	__u32 src[4];

	ml_ip4_to_mapped(ctx->user_ip4, src);
	origin = ml_dns_reply_origin(ctx, src, bpf_ntohs((__u16)ctx->user_port));
	if (origin && ml_ip6_is_mapped_v4(origin->server_ip6))
		set_user_addr4(ctx, origin->server_ip6, origin->server_port);
	return 1;
}

SEC("cgroup/recvmsg6")
int ml_recvmsg6(struct bpf_sock_addr *ctx)
{
	const struct ml_dns_origin *origin;
	__u32 src[4];

	read_user_ip6(ctx, src);
	origin = ml_dns_reply_origin(ctx, src, bpf_ntohs((__u16)ctx->user_port));
	if (origin)
		set_user_addr6(ctx, origin->server_ip6, origin->server_port);
	return 1;
}
