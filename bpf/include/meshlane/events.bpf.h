/* Monitor events: the ring buffer meshlanectl monitor reads through the daemon, and one emit
 * helper per event site so that each program calls a single line.
 *
 * Cost when nobody watches: ml_event_wanted() is one lookup in a one-page array map (inlined by
 * the verifier) and a bit test; no event is built, nothing touches the ring. The daemon sets the
 * mask only while a monitor client is connected and clears it when the last one leaves (and at
 * start, in case an earlier daemon died with a client attached). */
#ifndef MESHLANE_EVENTS_BPF_H
#define MESHLANE_EVENTS_BPF_H

#include "meshlane/counter_types.h"
#include "meshlane/event_types.h"
#include "meshlane/intercept.h"
#include "meshlane/sock_key.h"
#include "meshlane/splice_types.h"
#include "meshlane/workload_types.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ML_EVENTS_RING_BYTES);
} ml_events_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ML_MONITOR_KEYS);
	__type(key, __u32);
	__type(value, __u64);
} ml_monitor_v1 SEC(".maps");

static __always_inline int ml_event_wanted(__u32 type)
{
	__u32 key = ML_MONITOR_KEY_MASK;
	__u64 *mask = bpf_map_lookup_elem(&ml_monitor_v1, &key);

	return mask && (*mask & (1ULL << type));
}

/* A zeroed event of `type` in the ring, or NULL when nobody wants it or the ring is full. A
 * full ring is counted, so the monitor can say how many events it never saw. */
static __always_inline struct ml_event *ml_event_reserve(__u32 type)
{
	struct ml_event *event;

	if (!ml_event_wanted(type))
		return NULL;
	event = bpf_ringbuf_reserve(&ml_events_v1, sizeof(*event), 0);
	if (!event) {
		__u32 key = ML_MONITOR_KEY_RING_DROPS;
		__u64 *drops = bpf_map_lookup_elem(&ml_monitor_v1, &key);

		if (drops)
			__sync_fetch_and_add(drops, 1); /* shared slot: every CPU may write it */
		return NULL;
	}
	__builtin_memset(event, 0, sizeof(*event));
	event->type = type;
	event->timestamp_ns = bpf_ktime_get_ns();
	return event;
}

static __always_inline __u8 ml_event_reason_of(__u32 counter)
{
	switch (counter) {
	case ML_CTR_INTERCEPT_OUTBOUND:
		return ML_REASON_OUTBOUND;
	case ML_CTR_INTERCEPT_NODE_PROXY:
		return ML_REASON_NODE_PROXY;
	case ML_CTR_INTERCEPT_INBOUND:
		return ML_REASON_INBOUND_LOCAL;
	case ML_CTR_FAST_PATH_CONNECTIONS:
		return ML_REASON_FAST_PATH;
	case ML_CTR_DNS_CAPTURED_UDP:
	case ML_CTR_DNS_CAPTURED_TCP:
		return ML_REASON_DNS;
	default:
		return ML_REASON_NONE;
	}
}

/* A connect the cgroup hook decided on: an event when it was rewritten to a proxy, or sent on
 * the fast path (reason fast_path, destination as asked). */
static __always_inline void ml_emit_connect(const struct ml_connect_request *req,
					    const struct ml_connect_verdict *verdict,
					    const struct ml_workload *self)
{
	struct ml_event *event;

	const int fast_path = verdict->hop == ML_HOP_FAST_PATH;

	if (verdict->action != ML_CONNECT_REDIRECT && !fast_path)
		return;
	event = ml_event_reserve(ML_EVENT_INTERCEPTED);
	if (!event)
		return;
	event->netns_cookie = req->netns_cookie;
	event->workload_id = self ? self->id : 0;
	ml_ip6_copy(event->src_ip6, req->src_ip6);
	/* The fast path leaves the destination as the app asked. */
	ml_ip6_copy(event->dst_ip6, fast_path ? req->dst_ip6 : verdict->new_ip6);
	event->dst_port = fast_path ? req->dst_port : verdict->new_port;
	ml_ip6_copy(event->orig_dst_ip6, req->dst_ip6);
	event->orig_dst_port = req->dst_port;
	event->reason = ml_event_reason_of(verdict->counter);
	event->hop = verdict->hop;
	bpf_ringbuf_submit(event, 0);
}

/* A connect passed untouched by a rule (reason: enum ml_skip_reason, ml_bypass_reason);
 * nothing for ML_SKIP_NONE. */
static __always_inline void ml_emit_bypassed(const struct ml_connect_request *req,
					     const struct ml_workload *self, __u8 reason)
{
	struct ml_event *event;

	if (reason == ML_SKIP_NONE)
		return;
	event = ml_event_reserve(ML_EVENT_BYPASSED);
	if (!event)
		return;
	event->netns_cookie = req->netns_cookie;
	event->workload_id = self ? self->id : 0;
	ml_ip6_copy(event->src_ip6, req->src_ip6);
	ml_ip6_copy(event->dst_ip6, req->dst_ip6);
	event->dst_port = req->dst_port;
	event->reason = reason;
	bpf_ringbuf_submit(event, 0);
}

/* An event about a SYN from off the node (src) to a pod's address (dst), reserved with the
 * fields every such event has; NULL when no one listens or the ring is full. */
static __always_inline struct ml_event *ml_tc_event(__u32 type, const __u32 src_ip6[4],
						    __u16 src_port, const __u32 dst_ip6[4],
						    const struct ml_workload *wl, __u8 reason)
{
	struct ml_event *event = ml_event_reserve(type);

	if (!event)
		return NULL;
	event->netns_cookie = wl->netns_cookie;
	event->workload_id = wl->id;
	ml_ip6_copy(event->src_ip6, src_ip6);
	event->src_port = src_port;
	ml_ip6_copy(event->dst_ip6, dst_ip6);
	event->reason = reason;
	return event;
}

/* A SYN that tc left on its way to dst_port (enum ml_skip_reason): a map had no room, or its
 * flow key was taken. */
static __always_inline void ml_emit_tc_bypassed(const __u32 src_ip6[4], __u16 src_port,
						const __u32 dst_ip6[4], __u16 dst_port,
						const struct ml_workload *wl, __u8 reason)
{
	struct ml_event *event =
		ml_tc_event(ML_EVENT_BYPASSED, src_ip6, src_port, dst_ip6, wl, reason);

	if (!event)
		return;
	event->dst_port = dst_port;
	bpf_ringbuf_submit(event, 0);
}

/* A SYN that tc steered from dst_port to the pod's inbound proxy. */
static __always_inline void ml_emit_tc_steered(const __u32 src_ip6[4], __u16 src_port,
					       const __u32 dst_ip6[4], __u16 dst_port,
					       const struct ml_workload *wl)
{
	struct ml_event *event = ml_tc_event(ML_EVENT_INTERCEPTED, src_ip6, src_port, dst_ip6, wl,
					     ML_REASON_INBOUND_TC);

	if (!event)
		return;
	event->dst_port = wl->inbound_port;
	ml_ip6_copy(event->orig_dst_ip6, dst_ip6);
	event->orig_dst_port = dst_port;
	bpf_ringbuf_submit(event, 0);
}

/* A socket event seen by sock_ops (SPLICED, MAP_FULL, SKIPPED*). `self` is the socket's
 * sockhash key, `active` whether it is the client end; the hop kind is only known there (the
 * connect hook recorded it on the client socket). `reason`: enum ml_skip_reason for SKIPPED*;
 * `state`: the socket's, for its original destination. */
static __always_inline void ml_emit_socket(__u32 type, const struct ml_sock_key *self,
					   __u64 netns_cookie, int active, __u8 hop, int error,
					   __u8 reason, const struct ml_sock_state *state)
{
	struct ml_event *event = ml_event_reserve(type);

	if (!event)
		return;
	event->netns_cookie = netns_cookie;
	ml_ip6_copy(event->src_ip6, self->local_ip6);
	event->src_port = self->local_port;
	ml_ip6_copy(event->dst_ip6, self->remote_ip6);
	event->dst_port = self->remote_port;
	event->side = active ? ML_SIDE_CLIENT : ML_SIDE_SERVER;
	event->hop = active ? hop : ML_HOP_OTHER;
	event->error = error;
	event->reason = reason;
	/* An intercepted connection's end knows where its application wanted to go: the link
	 * between this socket and the connect's intercepted event. */
	if (state->has_orig_dst) {
		ml_ip6_copy(event->orig_dst_ip6, state->orig_dst.ip6);
		event->orig_dst_port = state->orig_dst.port;
	}
	bpf_ringbuf_submit(event, 0);
}

/* A socket sk_msg sent back to the normal stack: a send it could not redirect (reason
 * ML_FALLBACK_PEER, detail: the send's size) or a reader too far behind (reason
 * ML_FALLBACK_READER_BEHIND, detail: its unread bytes). `peer` is the peer's sockhash key
 * (ml_sock_state.peer), so this socket's local end is the peer's remote end. */
static __always_inline void ml_emit_fallback(const struct ml_sock_key *peer, __u64 netns_cookie,
					     __u8 reason, __u32 detail)
{
	struct ml_event *event = ml_event_reserve(ML_EVENT_FALLBACK);

	if (!event)
		return;
	event->netns_cookie = netns_cookie;
	ml_ip6_copy(event->src_ip6, peer->remote_ip6);
	event->src_port = peer->remote_port;
	ml_ip6_copy(event->dst_ip6, peer->local_ip6);
	event->dst_port = peer->local_port;
	event->reason = reason;
	event->detail = detail;
	bpf_ringbuf_submit(event, 0);
}

/* For the L4 policy code: call when a connection is refused, with the rule that refused it
 * (any id the policy code chooses; the monitor shows it as "rule"). src may be zero (a connect
 * whose socket is not bound yet); dst is where the client wanted to go. workload_id and
 * netns_cookie identify the workload that enforces the policy (0 when unknown). */
static __always_inline void ml_emit_denied(__u64 netns_cookie, __u32 workload_id,
					   const __u32 src_ip6[4], __u16 src_port,
					   const __u32 dst_ip6[4], __u16 dst_port, __u32 rule)
{
	struct ml_event *event = ml_event_reserve(ML_EVENT_DENIED);

	if (!event)
		return;
	event->netns_cookie = netns_cookie;
	event->workload_id = workload_id;
	ml_ip6_copy(event->src_ip6, src_ip6);
	event->src_port = src_port;
	ml_ip6_copy(event->dst_ip6, dst_ip6);
	event->dst_port = dst_port;
	ml_ip6_copy(event->orig_dst_ip6, dst_ip6);
	event->orig_dst_port = dst_port;
	event->reason = ML_REASON_POLICY;
	event->detail = rule;
	bpf_ringbuf_submit(event, 0);
}

/* The same for a connect refused in the cgroup connect4/connect6 hook (before any rewrite). */
static __always_inline void ml_emit_connect_denied(const struct ml_connect_request *req,
						   const struct ml_workload *self, __u32 rule)
{
	ml_emit_denied(req->netns_cookie, self ? self->id : 0, req->src_ip6, 0, req->dst_ip6,
		       req->dst_port, rule);
}

#endif /* MESHLANE_EVENTS_BPF_H */
