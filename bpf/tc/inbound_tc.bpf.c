// SPDX-License-Identifier: GPL-2.0
/* Inbound interception for traffic that enters a pod from off the node or from processes that
 * are not workloads: on the pod's interface (clsact), ingress steers a new connection to an
 * app port to the inbound proxy port and files the original destination for getsockopt;
 * egress restores the app port on the replies. Flow state lives in a plain hash (full: the SYN
 * is not steered) and is removed on RST or once both FINs are acknowledged; the controller
 * removes flows whose SYN was never followed by the client's ACK. Only packets whose port a
 * steered flow may use look it up (ml_tcports_v1). */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "meshlane/counters.bpf.h"
#include "meshlane/events.bpf.h"
#include "meshlane/intercept.h"
#include "meshlane/kernel_defs.bpf.h"
#include "meshlane/maps.bpf.h"
#include "meshlane/orig_dst.bpf.h"
#include "meshlane/policy.bpf.h"
#include "meshlane/rules.bpf.h"
#include "meshlane/tc_flow.bpf.h"
#include "meshlane/tc_flow.h"

char LICENSE[] SEC("license") = "GPL";

/* Zero when the daemon steers by socket lookup (daemon.inbound_steering = "sk_lookup"): tc
 * filters of an earlier run are then replaced by these programs only to keep rewriting the
 * connections they steered until those end; every new SYN is left to the socket lookup. */
const volatile __u8 steer_new_flows = 1;

/* A parsed TCP/IP packet: where its TCP header is and its addresses (v4-mapped for IPv4). */
struct packet {
	__u32 src_ip6[4];
	__u32 dst_ip6[4];
	__u32 tcp_offset;
	__u16 src_port;
	__u16 dst_port;
	__u8 is_ipv4;
	struct ml_tcp_segment seg; /* flags, sequence numbers and data length */
};

static __always_inline int parse_tcp(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 l3_len, end, headers;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
			return -1;
		if (ip->frag_off & bpf_htons(0x3fff)) /* fragments carry no usable TCP header */
			return -1;
		ml_ip4_to_mapped(ip->saddr, pkt->src_ip6);
		ml_ip4_to_mapped(ip->daddr, pkt->dst_ip6);
		pkt->tcp_offset = sizeof(*eth) + ip->ihl * 4;
		pkt->is_ipv4 = 1;
		l3_len = bpf_ntohs(ip->tot_len);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		ml_ip6_copy(pkt->src_ip6, ip6->saddr.in6_u.u6_addr32);
		ml_ip6_copy(pkt->dst_ip6, ip6->daddr.in6_u.u6_addr32);
		pkt->tcp_offset = sizeof(*eth) + sizeof(*ip6);
		pkt->is_ipv4 = 0;
		l3_len = bpf_ntohs(ip6->payload_len);
		if (l3_len)
			l3_len += sizeof(*ip6);
	} else {
		return -1;
	}
	tcp = data + pkt->tcp_offset;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	pkt->src_port = bpf_ntohs(tcp->source);
	pkt->dst_port = bpf_ntohs(tcp->dest);
	pkt->seg.flags = ((__u8 *)tcp)[13];
	pkt->seg.seq = bpf_ntohl(tcp->seq);
	pkt->seg.ack_seq = bpf_ntohl(tcp->ack_seq);
	/* The IP length, not skb->len: a frame from a NIC may carry Ethernet padding. It is 0
	 * only for BIG TCP packets (over 64 KiB), which have no padding. */
	end = l3_len ? sizeof(*eth) + l3_len : skb->len;
	headers = pkt->tcp_offset + tcp->doff * 4;
	pkt->seg.payload_len = end > headers ? end - headers : 0;
	return 0;
}

/* Rewrites the TCP source or destination port and fixes the checksum. */
static __always_inline void rewrite_port(struct __sk_buff *skb, const struct packet *pkt,
					 int destination, __u16 old_port, __u16 new_port)
{
	__u32 port_offset = pkt->tcp_offset + (destination ? offsetof(struct tcphdr, dest) :
							     offsetof(struct tcphdr, source));
	__be16 old_be = bpf_htons(old_port);
	__be16 new_be = bpf_htons(new_port);

	bpf_l4_csum_replace(skb, pkt->tcp_offset + offsetof(struct tcphdr, check), old_be, new_be,
			    sizeof(new_be));
	bpf_skb_store_bytes(skb, port_offset, &new_be, sizeof(new_be), 0);
}

static __always_inline void flow_key(struct ml_tc_flow_key *key, const __u32 remote[4],
				     const __u32 local[4], __u16 remote_port)
{
	ml_ip6_copy(key->remote_ip6, remote);
	ml_ip6_copy(key->local_ip6, local);
	key->remote_port = remote_port;
	key->pad16 = 0;
	key->pad32 = 0;
}

static __always_inline void count_tc(const struct ml_workload *wl, __u32 counter)
{
	ml_count(counter, 1);
	ml_count_workload(wl->netns_cookie, counter, 1);
}

/* A SYN left unsteered: counted, and shown to the monitor and explain as "bypassed". */
static __always_inline void pass_syn(const struct packet *pkt, const struct ml_workload *wl,
				     __u32 counter, __u8 reason)
{
	count_tc(wl, counter);
	ml_emit_tc_bypassed(pkt->src_ip6, pkt->src_port, pkt->dst_ip6, pkt->dst_port, wl, reason);
}

/* Files a new flow and the original destination the inbound proxy will ask for. Returns whether
 * the SYN is steered: not when the flow key is taken by a connection to another port, or when
 * either map is (nearly) full. Those SYNs reach the app port directly, the normal path. */
static __always_inline int start_flow(const struct packet *pkt, const struct ml_workload *wl,
				      const struct ml_tc_flow_key *key)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ml_tc_flow flow = {
		.orig_port = pkt->dst_port,
		.inbound_port = wl->inbound_port,
		.start_ns = now,
	};
	struct ml_orig_dst_entry orig = {
		.dst.port = pkt->dst_port,
		.dst.family = pkt->is_ipv4 ? ML_AF_INET : ML_AF_INET6,
		.filed_ns = now,
	};
	struct ml_flow_key accepted = {
		.client_port = pkt->src_port,
		.server_port = wl->inbound_port,
	};
	struct ml_tc_flow *existing = NULL;
	long err;

	/* Before the flow exists: its packets test these marks before looking it up. */
	ml_tc_mark_port(ML_TC_PORTS_APP, pkt->dst_port);
	ml_tc_mark_port(ML_TC_PORTS_INBOUND, wl->inbound_port);
	err = bpf_map_update_elem(&ml_tcflows_v3, key, &flow, BPF_NOEXIST);
	if (err == -ML_EEXIST)
		existing = bpf_map_lookup_elem(&ml_tcflows_v3, key);
	switch (ml_tc_syn_decide(err, existing, pkt->dst_port)) {
	case ML_TC_SYN_STEER_RETRANSMIT:
		return 1; /* filed at the first SYN */
	case ML_TC_SYN_COLLISION:
		pass_syn(pkt, wl, ML_CTR_TC_FLOW_COLLISIONS, ML_SKIP_TC_FLOW_COLLISION);
		return 0;
	case ML_TC_SYN_FLOWS_FULL:
		pass_syn(pkt, wl, ML_CTR_TC_FLOWS_FULL, ML_SKIP_TC_FLOWS_FULL);
		return 0;
	default:
		break;
	}
	ml_ip6_copy(orig.dst.ip6, pkt->dst_ip6);
	ml_ip6_copy(accepted.client_ip6, pkt->src_ip6);
	ml_ip6_copy(accepted.server_ip6, pkt->dst_ip6);
	if (!ml_orig_dst_has_room() ||
	    bpf_map_update_elem(&ml_origdst_v2, &accepted, &orig, BPF_ANY) != 0) {
		bpf_map_delete_elem(&ml_tcflows_v3, key);
		pass_syn(pkt, wl, ML_CTR_INTERCEPT_SKIPPED_MAP_FULL, ML_SKIP_ORIG_DST_FULL);
		return 0;
	}
	count_tc(wl, ML_CTR_INTERCEPT_INBOUND_TC);
	ml_emit_tc_steered(pkt->src_ip6, pkt->src_port, pkt->dst_ip6, pkt->dst_port, wl);
	return 1;
}

/* A SYN from an app of a workload on this node that its connect hook sent on the fast path
 * (straight to this pod's app, docs/fast-path.md): the same decision, on the same maps, made
 * again here, so it reaches the app unsteered. A SYN the connect hook did not send that way
 * (either workload not opted in, an excepted or mesh port, the app not listening, an
 * outbound exclusion of the client's) decides the same way here and is steered as before. */
static __always_inline int sent_on_fast_path(const struct packet *pkt, const struct ml_workload *wl)
{
	struct ml_connect_verdict verdict = {};
	struct ml_connect_request req = {};
	struct ml_connect_rules rules = {};
	struct ml_workload *client;

	if (!(wl->flags & ML_WL_FAST_PATH))
		return 0;
	client = ml_pod_of(pkt->src_ip6);
	if (!client || !(client->flags & ML_WL_FAST_PATH))
		return 0;
	ml_ip6_copy(req.dst_ip6, pkt->dst_ip6);
	ml_ip6_copy(req.src_ip6, pkt->src_ip6);
	req.dst_port = pkt->dst_port;
	req.dst_is_mapped = ml_ip6_is_mapped_v4(pkt->dst_ip6);
	req.netns_cookie = client->netns_cookie;
	ml_lookup_connect_rules(client, wl, req.dst_ip6, req.dst_port, &rules);
	ml_decide_app_connect(&req, client, wl, &rules, &verdict);
	return verdict.hop == ML_HOP_FAST_PATH;
}

/* What becomes of a new connection from off the node (or a process that is not a workload's)
 * to the pod `wl`, whichever way it is steered (tc at the SYN, or the socket lookup). */
enum inbound_verdict {
	INBOUND_PASS, /* to the port it asked for */
	INBOUND_DENY, /* L4 policy: counted and reported here */
	INBOUND_STEER, /* to the pod's inbound proxy */
};

static __always_inline enum inbound_verdict decide_inbound(const struct packet *pkt,
							   const struct ml_workload *wl)
{
	__u32 deny_detail = 0;
	__u8 rule;

	/* A SYN from a pod on this node to the inbound proxy port was sent there by connect4,
	 * where the policy already judged it against the original destination. Anyone else going
	 * straight to that port is judged on it like any other port. */
	if ((pkt->dst_port != wl->inbound_port || !ml_pod_of(pkt->src_ip6)) &&
	    ml_policy_judge_inbound(pkt->src_ip6, pkt->dst_ip6, pkt->dst_port, &deny_detail) ==
		    ML_POLICY_DENY) {
		ml_count(ML_CTR_DENIED_INBOUND_TC, 1);
		ml_count_workload(wl->netns_cookie, ML_CTR_DENIED_INBOUND_TC, 1);
		ml_emit_denied(wl->netns_cookie, wl->id, pkt->src_ip6, pkt->src_port, pkt->dst_ip6,
			       pkt->dst_port, deny_detail);
		return INBOUND_DENY;
	}
	if (sent_on_fast_path(pkt, wl))
		return INBOUND_PASS;
	rule = ml_port_rule(wl->id, ML_DIR_INBOUND, pkt->dst_port);
	if (!ml_tc_should_steer(wl, pkt->dst_port, rule,
				ml_cidr_listed(wl->id, ML_CIDR_LIST_IN_EXCLUDE, pkt->src_ip6)))
		return INBOUND_PASS;
	return INBOUND_STEER;
}

SEC("tc")
int ml_tc_ingress(struct __sk_buff *skb)
{
	struct ml_tc_flow_key key;
	struct packet pkt = {};
	struct ml_workload *wl;
	struct ml_tc_flow *flow;

	if (parse_tcp(skb, &pkt) != 0)
		return TC_ACT_OK;
	if ((pkt.seg.flags & (ML_TCP_SYN | ML_TCP_ACK)) == ML_TCP_SYN) {
		if (!steer_new_flows)
			return TC_ACT_OK;
		wl = ml_pod_of(pkt.dst_ip6);
		if (!wl)
			return TC_ACT_OK;
		switch (decide_inbound(&pkt, wl)) {
		case INBOUND_DENY:
			return TC_ACT_SHOT;
		case INBOUND_PASS:
			return TC_ACT_OK;
		default:
			break;
		}
		flow_key(&key, pkt.src_ip6, pkt.dst_ip6, pkt.src_port);
		if (start_flow(&pkt, wl, &key))
			rewrite_port(skb, &pkt, 1, pkt.dst_port, wl->inbound_port);
		return TC_ACT_OK;
	}
	/* Established flows are looked up without the workload: a pod removed from meshlane keeps
	 * its steered connections until they end (the filters stay until the flows are gone).
	 * A packet to a port that no steered flow uses (same-node traffic, the fast path) skips
	 * the lookup (meshlane/tc_port_marks.h). */
	if (!ml_tc_port_may_have_flow(ML_TC_PORTS_APP, pkt.dst_port))
		return TC_ACT_OK;
	flow_key(&key, pkt.src_ip6, pkt.dst_ip6, pkt.src_port);
	flow = bpf_map_lookup_elem(&ml_tcflows_v3, &key);
	if (!flow || pkt.dst_port != flow->orig_port)
		return TC_ACT_OK;
	rewrite_port(skb, &pkt, 1, pkt.dst_port, flow->inbound_port);
	if (ml_tc_flow_track(flow, &pkt.seg, 1) == ML_TC_FLOW_DELETE)
		bpf_map_delete_elem(&ml_tcflows_v3, &key);
	return TC_ACT_OK;
}

SEC("tc")
int ml_tc_egress(struct __sk_buff *skb)
{
	struct ml_tc_flow_key key;
	struct packet pkt = {};
	struct ml_tc_flow *flow;

	if (parse_tcp(skb, &pkt) != 0)
		return TC_ACT_OK;
	if (!ml_tc_port_may_have_flow(ML_TC_PORTS_INBOUND, pkt.src_port))
		return TC_ACT_OK;
	flow_key(&key, pkt.dst_ip6, pkt.src_ip6, pkt.dst_port);
	flow = bpf_map_lookup_elem(&ml_tcflows_v3, &key);
	if (!flow || pkt.src_port != flow->inbound_port)
		return TC_ACT_OK;
	rewrite_port(skb, &pkt, 0, pkt.src_port, flow->orig_port);
	if (ml_tc_flow_track(flow, &pkt.seg, 0) == ML_TC_FLOW_DELETE)
		bpf_map_delete_elem(&ml_tcflows_v3, &key);
	return TC_ACT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Steering by socket lookup (daemon.inbound_steering = "sk_lookup", docs/interception.md).
 *
 * The same decisions as ml_tc_ingress makes at the SYN, made where the kernel looks for the
 * listening socket of a new connection in the pod's namespace: a connection to steer is handed
 * to the inbound proxy's listener (bpf_sk_assign) instead of having its port rewritten. Its
 * packets then keep their addresses and ports all the way: nothing runs per packet (no tc
 * filter on the pod's interface at all), no flow is tracked, and two connections from the same
 * client address and port to two app ports are two different sockets of the proxy. The
 * proxy's accepted socket has the original destination as its own local address; it is filed
 * for SO_ORIGINAL_DST like tc's. */

#define ML_ENOENT 2

/* One load of a context field at its own offset: the verifier refuses a load through a context
 * pointer the compiler moved (ctx + 16, kept for the four words of an address). */
#define ML_CTX_READ(field) (*(volatile __typeof__(field) *)&(field))

static __always_inline int lookup_packet(const struct bpf_sk_lookup *ctx, struct packet *pkt)
{
	if (ctx->protocol != IPPROTO_TCP)
		return -1;
	if (ctx->family == ML_AF_INET) {
		ml_ip4_to_mapped(ctx->remote_ip4, pkt->src_ip6);
		ml_ip4_to_mapped(ctx->local_ip4, pkt->dst_ip6);
		pkt->is_ipv4 = 1;
	} else if (ctx->family == ML_AF_INET6) {
		pkt->src_ip6[0] = ML_CTX_READ(ctx->remote_ip6[0]);
		pkt->src_ip6[1] = ML_CTX_READ(ctx->remote_ip6[1]);
		pkt->src_ip6[2] = ML_CTX_READ(ctx->remote_ip6[2]);
		pkt->src_ip6[3] = ML_CTX_READ(ctx->remote_ip6[3]);
		pkt->dst_ip6[0] = ML_CTX_READ(ctx->local_ip6[0]);
		pkt->dst_ip6[1] = ML_CTX_READ(ctx->local_ip6[1]);
		pkt->dst_ip6[2] = ML_CTX_READ(ctx->local_ip6[2]);
		pkt->dst_ip6[3] = ML_CTX_READ(ctx->local_ip6[3]);
		pkt->is_ipv4 = 0;
	} else {
		return -1;
	}
	pkt->src_port = bpf_ntohs(ctx->remote_port);
	pkt->dst_port = (__u16)ctx->local_port;
	return 0;
}

/* Hands the connection to a listener of the workload's inbound proxy port, from the registry
 * of the cgroup's listeners (ml_listener_socks_v1): any slot whose socket takes it (an IPv4
 * listener cannot take an IPv6 connection; a member of an SO_REUSEPORT group stands for its
 * group, the kernel picks among them). */
static __always_inline long assign_inbound_listener(struct bpf_sk_lookup *ctx,
						    const struct ml_workload *wl)
{
	struct ml_listener_key key = {
		.netns_cookie = wl->netns_cookie,
		.port = wl->inbound_port,
	};
	struct bpf_sock *sk;
	long err = -ML_ENOENT;

	for (__u16 slot = 0; slot < ML_LISTENER_SLOTS; slot++) {
		key.slot = slot;
		sk = bpf_map_lookup_elem(&ml_listener_socks_v1, &key);
		if (!sk)
			continue;
		err = bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
		if (err == 0)
			break;
	}
	return err;
}

/* A connection chosen for the inbound proxy: its original destination filed (the key the
 * proxy's accepted socket will look it up by: its own local port is the app port), then the
 * proxy's listener assigned. With no room to file it, it goes to the app as it asked (as tc
 * leaves such a SYN). With no proxy listening, it is refused (a reset), as a redirect to a port
 * nobody listens on is: it never reaches the app around the proxy. */
static __always_inline int steer_lookup(struct bpf_sk_lookup *ctx, const struct packet *pkt,
					const struct ml_workload *wl)
{
	struct ml_orig_dst_entry orig = {
		.dst.port = pkt->dst_port,
		.dst.family = pkt->is_ipv4 ? ML_AF_INET : ML_AF_INET6,
		.filed_ns = bpf_ktime_get_coarse_ns(),
	};
	struct ml_flow_key accepted = {
		.client_port = pkt->src_port,
		.server_port = pkt->dst_port,
	};

	ml_ip6_copy(orig.dst.ip6, pkt->dst_ip6);
	ml_ip6_copy(accepted.client_ip6, pkt->src_ip6);
	ml_ip6_copy(accepted.server_ip6, pkt->dst_ip6);
	if (!ml_orig_dst_has_room() ||
	    bpf_map_update_elem(&ml_origdst_v2, &accepted, &orig, BPF_ANY) != 0) {
		pass_syn(pkt, wl, ML_CTR_INTERCEPT_SKIPPED_MAP_FULL, ML_SKIP_ORIG_DST_FULL);
		return SK_PASS;
	}
	if (assign_inbound_listener(ctx, wl) != 0) {
		bpf_map_delete_elem(&ml_origdst_v2, &accepted);
		count_tc(wl, ML_CTR_STEERED_NO_PROXY);
		return SK_DROP;
	}
	/* Counted and reported by sock_ops once established (count_lookup_steered). */
	return SK_PASS;
}

SEC("sk_lookup")
int ml_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct packet pkt = {};
	struct ml_workload *wl;

	if (lookup_packet(ctx, &pkt) != 0)
		return SK_PASS;
	wl = ml_pod_of(pkt.dst_ip6);
	if (!wl)
		return SK_PASS;
	/* Connections the pod makes to itself (its inbound proxy to its app from the passthrough
	 * address, an app to its own pod address) never cross its interface, where tc steers: the
	 * connect hooks judge those. The lookup cannot tell them by interface (one to the pod's
	 * own address is looked up as arriving on the interface that has it), so by their source. */
	if (ml_ip6_is_loopback(pkt.src_ip6) || ml_is_passthrough_source(wl, pkt.src_ip6) ||
	    ml_ip6_equal(pkt.src_ip6, pkt.dst_ip6) || ml_pod_of(pkt.src_ip6) == wl)
		return SK_PASS;
	switch (decide_inbound(&pkt, wl)) {
	case INBOUND_DENY:
		return SK_DROP; /* refused (a reset), where tc drops the SYN */
	case INBOUND_PASS:
		return SK_PASS;
	default:
		return steer_lookup(ctx, &pkt, wl);
	}
}
