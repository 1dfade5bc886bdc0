/* The interception decision for one TCP connect, as a pure function over plain structs: the
 * cgroup connect4/connect6 programs do the map lookups and call it, host unit tests call it
 * with hand-made inputs. Mirrors the istio-iptables rules (see docs/interception.md). */
#ifndef MESHLANE_INTERCEPT_H
#define MESHLANE_INTERCEPT_H

#include "meshlane/counter_types.h"
#include "meshlane/dns.h"
#include "meshlane/event_types.h"
#include "meshlane/orig_dst_types.h"
#include "meshlane/sock_key.h"
#include "meshlane/workload_types.h"

struct ml_connect_request {
	__u32 dst_ip6[4]; /* IPv6 or v4-mapped */
	__u32 src_ip6[4]; /* address the socket is bound to, zero when unbound */
	__u16 dst_port; /* host byte order */
	__u16 dst_is_mapped; /* dst given as IPv4 (connect4, or ::ffff:a.b.c.d in connect6) */
	__u32 uid;
	__u32 gid;
	__u32 pad;
	__u64 netns_cookie;
};

/* Results of the rule lookups for this connect; 0 means no rule. */
struct ml_connect_rules {
	__u8 out_port; /* (own workload, outbound, dst port) */
	__u8 out_cidr_include; /* dst address in own outbound include CIDRs */
	__u8 out_cidr_exclude; /* dst address in own outbound exclude CIDRs */
	__u8 dst_in_port; /* (destination pod's workload, inbound, dst port) */
	/* Fast path (docs/fast-path.md): the dst port is excepted by the connecting workload or
	 * by the destination pod's (ML_DIR_FAST_PATH rules); a listener of the cgroup exists in
	 * the destination pod on the dst port (ml_listener_socks_v1). */
	__u8 fast_path_src_excepted;
	__u8 fast_path_dst_excepted;
	__u8 dst_listening;
	__u8 pad;
};

enum ml_connect_action {
	ML_CONNECT_PASS = 0,
	ML_CONNECT_REDIRECT = 1,
	ML_CONNECT_DENY = 2, /* refused by L4 policy: connect() fails with EPERM */
};

/* Whether L4 policy judges this connect: everything but a connect inside the workload's own
 * pod (loopback, or the inbound proxy's upstream to its app). */
ML_INLINE int ml_connect_needs_policy(const struct ml_connect_request *req,
				      const struct ml_workload *self,
				      const struct ml_workload *dst_pod)
{
	if (ml_ip6_is_loopback(req->dst_ip6))
		return 0;
	return !dst_pod || dst_pod->netns_cookie != self->netns_cookie;
}

struct ml_connect_verdict {
	__u32 action; /* enum ml_connect_action */
	__u32 counter; /* ML_CTR_* to count, ML_CTR_MAX for none */
	__u32 new_ip6[4]; /* when REDIRECT: IPv6 or v4-mapped */
	__u16 new_port; /* when REDIRECT, host byte order */
	__u8 hop; /* enum ml_hop of the resulting connection */
	__u8 record_orig_dst; /* the proxy will ask for the original destination */
};

ML_INLINE int ml_is_passthrough_source(const struct ml_workload *wl, const __u32 src[4])
{
	for (int i = 0; i < ML_MAX_PASSTHROUGH; i++) {
		if (i < (int)wl->passthrough_count && ml_ip6_equal(src, wl->passthrough_ip6[i]))
			return 1;
	}
	return 0;
}

ML_INLINE int ml_is_proxy(const struct ml_workload *wl, const struct ml_connect_request *req)
{
	return req->uid == wl->proxy_uid || req->gid == wl->proxy_gid;
}

/* Whether a port list allows interception: excluded never, and in include mode only listed. */
ML_INLINE int ml_port_intercepted(__u8 rule, int include_mode)
{
	if (rule == ML_RULE_EXCLUDE)
		return 0;
	return !include_mode || rule == ML_RULE_INCLUDE;
}

ML_INLINE void ml_verdict_pass(struct ml_connect_verdict *v, __u32 counter, __u8 hop)
{
	v->action = ML_CONNECT_PASS;
	v->counter = counter;
	v->hop = hop;
	v->record_orig_dst = 0;
}

ML_INLINE void ml_verdict_redirect(struct ml_connect_verdict *v, const __u32 ip6[4], __u16 port,
				   __u32 counter, __u8 hop)
{
	v->action = ML_CONNECT_REDIRECT;
	v->counter = counter;
	ml_ip6_copy(v->new_ip6, ip6);
	v->new_port = port;
	v->hop = hop;
	v->record_orig_dst = 1;
}

/* A mesh proxy's own connect: untouched, except towards a workload on this node, which goes
 * to that workload's inbound proxy (istio: ISTIO_OUTPUT's uid-owner rules). */
ML_INLINE void ml_decide_proxy_connect(const struct ml_connect_request *req,
				       const struct ml_workload *self,
				       const struct ml_workload *dst_pod,
				       const struct ml_connect_rules *rules,
				       struct ml_connect_verdict *v)
{
	if (!dst_pod || req->dst_port == dst_pod->inbound_port ||
	    !ml_port_intercepted(rules->dst_in_port, dst_pod->flags & ML_WL_INCLUDE_IN_PORTS)) {
		ml_verdict_pass(v, ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
		return;
	}
	if (dst_pod->netns_cookie == self->netns_cookie) {
		/* Its own pod: the inbound proxy's upstream to the app passes. With passthrough
		 * sources (istio 127.0.0.6, ::6) only connects from them pass; others go inbound. */
		if (self->passthrough_count == 0 || ml_is_passthrough_source(self, req->src_ip6)) {
			ml_verdict_pass(v, ML_CTR_MAX, ML_HOP_PROXY_TO_APP);
			return;
		}
	}
	ml_verdict_redirect(v, req->dst_ip6, dst_pod->inbound_port, ML_CTR_INTERCEPT_INBOUND,
			    ML_HOP_PROXY_TO_PROXY);
}

/* The L4 fast path: an app's connect to another workload on this node goes straight to that
 * workload's app, skipping both sidecars, when both workloads opted in, neither excepts the
 * port, the port is not one of the destination's mesh ports (its proxy ports, or a port its
 * inbound interception excludes, such as istio's 15008/15020/15021/15090), and the
 * destination's app listens on it from inside the cgroup (otherwise the sidecar path answers
 * as it does today). The L4 policy has judged the connect before this. */
ML_INLINE int ml_fast_path_applies(const struct ml_workload *self,
				   const struct ml_workload *dst_pod, __u16 dst_port,
				   const struct ml_connect_rules *rules)
{
	if (!dst_pod || dst_pod->netns_cookie == self->netns_cookie)
		return 0;
	if (!(self->flags & ML_WL_FAST_PATH) || !(dst_pod->flags & ML_WL_FAST_PATH))
		return 0;
	if (dst_port == dst_pod->inbound_port || dst_port == dst_pod->outbound_port ||
	    !ml_port_intercepted(rules->dst_in_port, dst_pod->flags & ML_WL_INCLUDE_IN_PORTS))
		return 0;
	if (rules->fast_path_src_excepted || rules->fast_path_dst_excepted)
		return 0;
	return rules->dst_listening;
}

/* An application's connect: to its outbound proxy unless loopback, its own pod, or excluded;
 * straight to the destination's app on the fast path. */
ML_INLINE void ml_decide_app_connect(const struct ml_connect_request *req,
				     const struct ml_workload *self,
				     const struct ml_workload *dst_pod,
				     const struct ml_connect_rules *rules,
				     struct ml_connect_verdict *v)
{
	__u32 target[4];

	if (ml_ip6_is_loopback(req->dst_ip6) ||
	    (dst_pod && dst_pod->netns_cookie == self->netns_cookie)) {
		ml_verdict_pass(v, ML_CTR_MAX, ML_HOP_OTHER);
		return;
	}
	/* DNS capture: TCP to port 53 goes to the DNS proxy (istio: ISTIO_OUTPUT's REDIRECT to
	 * 15053), which gets the server it was going to from SO_ORIGINAL_DST like any proxy. */
	if (ml_dns_captures(self, req->uid, req->gid, req->dst_ip6, req->dst_port,
			    rules->out_cidr_exclude)) {
		ml_set_loopback(target, req->dst_is_mapped);
		ml_verdict_redirect(v, target, self->dns_proxy_port, ML_CTR_DNS_CAPTURED_TCP,
				    ML_HOP_APP_TO_PROXY);
		return;
	}
	if (!ml_port_intercepted(rules->out_port, self->flags & ML_WL_INCLUDE_OUT_PORTS) ||
	    rules->out_cidr_exclude ||
	    ((self->flags & ML_WL_INCLUDE_OUT_CIDRS) && !rules->out_cidr_include)) {
		ml_verdict_pass(v, ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
		return;
	}
	if (ml_fast_path_applies(self, dst_pod, req->dst_port, rules)) {
		ml_verdict_pass(v, ML_CTR_FAST_PATH_CONNECTIONS, ML_HOP_FAST_PATH);
		return;
	}
	if (self->flags & ML_WL_NODE_PROXY) {
		ml_verdict_redirect(v, self->node_proxy_ip6,
				    self->node_proxy_port ? self->node_proxy_port :
							    self->outbound_port,
				    ML_CTR_INTERCEPT_NODE_PROXY, ML_HOP_APP_TO_PROXY);
		return;
	}
	ml_set_loopback(target, req->dst_is_mapped);
	ml_verdict_redirect(v, target, self->outbound_port, ML_CTR_INTERCEPT_OUTBOUND,
			    ML_HOP_APP_TO_PROXY);
}

/* self: the workload of the connecting process's netns, NULL when it is not a workload.
 * dst_pod: the workload owning the destination address, NULL when none on this node. */
ML_INLINE void ml_decide_connect(const struct ml_connect_request *req,
				 const struct ml_workload *self, const struct ml_workload *dst_pod,
				 const struct ml_connect_rules *rules, struct ml_connect_verdict *v)
{
	if (!self) {
		ml_verdict_pass(v, ML_CTR_MAX, ML_HOP_OTHER);
		return;
	}
	if (ml_is_proxy(self, req))
		ml_decide_proxy_connect(req, self, dst_pod, rules, v);
	else
		ml_decide_app_connect(req, self, dst_pod, rules, v);
}

/* Why a connect passed untouched, for its bypassed event (enum ml_skip_reason); ML_SKIP_NONE
 * when it was not a rule's doing (redirected, fast path, loopback, inside its own pod, the
 * inbound proxy's upstream to its app, not a workload). */
ML_INLINE __u8 ml_bypass_reason(const struct ml_workload *self,
				const struct ml_connect_rules *rules,
				const struct ml_connect_verdict *v)
{
	if (v->action != ML_CONNECT_PASS)
		return ML_SKIP_NONE;
	switch (v->counter) {
	case ML_CTR_BYPASS_EXCLUDED:
		return ml_port_intercepted(rules->out_port, self->flags & ML_WL_INCLUDE_OUT_PORTS) ?
			       ML_SKIP_EXCLUDED_CIDR :
			       ML_SKIP_EXCLUDED_PORT;
	case ML_CTR_BYPASS_PROXY:
		return ML_SKIP_PROXY;
	case ML_CTR_INTERCEPT_SKIPPED_MAP_FULL:
		return ML_SKIP_ORIG_DST_FULL;
	default:
		return ML_SKIP_NONE;
	}
}

/* Key under which sock_ops files the original destination of a connection it saw established
 * from the client side, and under which getsockopt looks it up from the server side. */
ML_INLINE void ml_flow_key_from_client(const struct ml_sock_key *client_key,
				       struct ml_flow_key *out)
{
	out->scope = client_key->scope;
	ml_ip6_copy(out->client_ip6, client_key->local_ip6);
	ml_ip6_copy(out->server_ip6, client_key->remote_ip6);
	out->client_port = client_key->local_port;
	out->server_port = client_key->remote_port;
	out->pad = 0;
}

/* The same key from the server end's own socket key (the accepted socket's sock_ops). */
ML_INLINE void ml_flow_key_from_server(const struct ml_sock_key *server_key,
				       struct ml_flow_key *out)
{
	out->scope = server_key->scope;
	ml_ip6_copy(out->client_ip6, server_key->remote_ip6);
	ml_ip6_copy(out->server_ip6, server_key->local_ip6);
	out->client_port = server_key->remote_port;
	out->server_port = server_key->local_port;
	out->pad = 0;
}

#endif /* MESHLANE_INTERCEPT_H */
