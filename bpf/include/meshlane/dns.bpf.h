/* DNS capture in the cgroup programs: the steps the connect, sendmsg and recvmsg hooks share. The
 * decisions themselves are in meshlane/dns.h. */
#ifndef MESHLANE_DNS_BPF_H
#define MESHLANE_DNS_BPF_H

#include "meshlane/counters.bpf.h"
#include "meshlane/dns.h"
#include "meshlane/dns_origin.bpf.h"
#include "meshlane/events.bpf.h"
#include "meshlane/rules.bpf.h"

#ifndef ML_SOCK_DGRAM
#define ML_SOCK_DGRAM 2
#endif

/* An app's UDP connect or send to req->dst_ip6:dst_port (filled by the caller, IPv6 or
 * v4-mapped). Returns 1 when it goes to the DNS proxy instead: the caller writes
 * verdict->new_ip6:new_port into the context. The server is remembered on the socket first: a
 * query whose reply could not be shown from its server is better sent where the app meant it. */
static __always_inline int ml_dns_capture_udp(struct bpf_sock_addr *ctx,
					      struct ml_connect_request *req,
					      struct ml_connect_verdict *verdict)
{
	struct ml_dns_origin *origin;
	struct ml_workload *self;
	__u64 uid_gid;

	if (ctx->type != ML_SOCK_DGRAM || req->dst_port != ML_DNS_PORT)
		return 0;
	req->netns_cookie = bpf_get_netns_cookie(ctx);
	self = bpf_map_lookup_elem(&ml_workloads_v1, &req->netns_cookie);
	if (!self || !(self->flags & ML_WL_DNS_CAPTURE))
		return 0;
	uid_gid = bpf_get_current_uid_gid();
	req->uid = (__u32)uid_gid;
	req->gid = (__u32)(uid_gid >> 32);
	if (!ml_dns_captures(self, req->uid, req->gid, req->dst_ip6, req->dst_port,
			     ml_cidr_listed(self->id, ML_CIDR_LIST_OUT_EXCLUDE, req->dst_ip6)))
		return 0;
	origin = bpf_sk_storage_get(&ml_dnsorigin_v1, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!origin)
		return 0;
	ml_dns_proxy_address(req->dst_is_mapped, verdict->new_ip6);
	verdict->new_port = self->dns_proxy_port;
	verdict->action = ML_CONNECT_REDIRECT;
	verdict->counter = ML_CTR_DNS_CAPTURED_UDP;
	verdict->hop = ML_HOP_APP_TO_PROXY;
	if (ml_dns_note_query(origin, req->dst_ip6, req->dst_port, verdict->new_ip6,
			      verdict->new_port)) {
		ml_count(ML_CTR_DNS_SERVER_SWITCHED, 1);
		ml_count_workload(req->netns_cookie, ML_CTR_DNS_SERVER_SWITCHED, 1);
	}
	ml_count(ML_CTR_DNS_CAPTURED_UDP, 1);
	ml_count_workload(req->netns_cookie, ML_CTR_DNS_CAPTURED_UDP, 1);
	ml_emit_connect(req, verdict, self);
	return 1;
}

/* A datagram the app is about to receive from src_ip6:src_port: when it is the DNS proxy's
 * reply to a captured query, returns the origin whose server it is shown from. */
static __always_inline const struct ml_dns_origin *
ml_dns_reply_origin(struct bpf_sock_addr *ctx, const __u32 src_ip6[4], __u16 src_port)
{
	struct ml_dns_origin *origin;
	__u64 netns_cookie;

	if (ctx->type != ML_SOCK_DGRAM)
		return NULL;
	origin = bpf_sk_storage_get(&ml_dnsorigin_v1, ctx->sk, 0, 0);
	if (!origin || !ml_dns_reply_from_proxy(origin, src_ip6, src_port))
		return NULL;
	netns_cookie = bpf_get_netns_cookie(ctx);
	ml_count(ML_CTR_DNS_REPLIES_REWRITTEN, 1);
	ml_count_workload(netns_cookie, ML_CTR_DNS_REPLIES_REWRITTEN, 1);
	return origin;
}

#endif /* MESHLANE_DNS_BPF_H */
