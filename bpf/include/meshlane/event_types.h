/* Monitor events (meshlanectl monitor). Shared by the BPF programs and the controller (pinned
 * ABI: layouts and map names never change in place). */
#ifndef MESHLANE_EVENT_TYPES_H
#define MESHLANE_EVENT_TYPES_H

#include "meshlane/compiler.h"

/* The datapath writes one struct ml_event per event into the ring buffer ml_events_v1, but only
 * for the types whose bit (1 << type) the daemon set in ml_monitor_v1[ML_MONITOR_KEY_MASK]: the
 * daemon sets it only while a monitor client is connected, so nobody watching costs one array
 * lookup per event site. See bpf/include/meshlane/events.bpf.h. */
enum ml_event_type {
	ML_EVENT_NONE = 0,
	ML_EVENT_INTERCEPTED, /* a connect rewritten to a proxy, or a SYN steered by tc */
	ML_EVENT_SPLICED, /* a socket added to the sockhash */
	ML_EVENT_DENIED, /* refused by L4 policy (ml_emit_denied*) */
	ML_EVENT_MAP_FULL, /* the sockhash update failed: normal stack */
	ML_EVENT_FALLBACK, /* a send could not be redirected: this socket uses the normal stack */
	ML_EVENT_SKIPPED_BLOCKING, /* not spliced: the application may read it blocking */
	ML_EVENT_SKIPPED_SHORT, /* a client end not spliced: its server port's connections are short */
	/* Not spliced for any other reason (reason: enum ml_skip_reason). Blocking and short keep
	 * their own types above, which came first; their JSON carries the same "reason" names. */
	ML_EVENT_SKIPPED,
	/* A workload's connect left alone (not intercepted) by a rule: reason enum ml_skip_reason
	 * (ML_SKIP_EXCLUDED_PORT .. ML_SKIP_ORIG_DST_FULL). */
	ML_EVENT_BYPASSED,
	ML_EVENT_MAX,
};

/* ml_event.reason for ML_EVENT_INTERCEPTED: which rule sent the connection where. */
enum ml_event_reason {
	ML_REASON_NONE = 0,
	ML_REASON_OUTBOUND, /* app -> its outbound sidecar */
	ML_REASON_NODE_PROXY, /* app -> the node-level proxy */
	ML_REASON_INBOUND_LOCAL, /* proxy -> a local workload's inbound proxy */
	ML_REASON_INBOUND_TC, /* from off the node, steered by tc to the inbound proxy */
	ML_REASON_POLICY, /* ML_EVENT_DENIED */
	ML_REASON_FAST_PATH, /* app -> app on this node, not redirected: the sidecars are skipped */
	ML_REASON_DNS, /* app's query to port 53 -> its DNS proxy (DNS capture; UDP or TCP) */
};

/* ml_event.reason for ML_EVENT_SKIPPED and ML_EVENT_BYPASSED: the rule that decided. Append
 * only (the daemon decodes the byte). */
enum ml_skip_reason {
	ML_SKIP_NONE = 0,
	ML_SKIP_PORT, /* acceleration.include_ports / exclude_ports (node-wide) */
	ML_SKIP_WORKLOAD, /* acceleration off for the socket's workload, or one of its ports */
	ML_SKIP_PEER, /* the other end is not (or cannot be) a spliced socket of this node */
	ML_SKIP_BLOCKING, /* ML_EVENT_SKIPPED_BLOCKING's reason */
	ML_SKIP_SHORT, /* ML_EVENT_SKIPPED_SHORT's reason */
	ML_SKIP_STEERED, /* either end of a connection tc steered into a pod's inbound proxy */
	ML_SKIP_ACCEL_OFF, /* acceleration.enabled = false (node-wide) */
	/* ML_EVENT_BYPASSED: */
	ML_SKIP_EXCLUDED_PORT, /* the workload's outbound port lists */
	ML_SKIP_EXCLUDED_CIDR, /* the workload's outbound CIDR lists */
	ML_SKIP_PROXY, /* the proxy's own connect (proxy uid/gid), not to a local workload */
	ML_SKIP_ORIG_DST_FULL, /* ml_origdst_v2 (nearly) full: the normal path instead */
	ML_SKIP_TC_FLOWS_FULL, /* tc: ml_tcflows_v3 full, the SYN not steered */
	ML_SKIP_TC_FLOW_COLLISION, /* tc: the flow key taken by a connection to another port */
	ML_SKIP_MAX,
};

/* ml_event.reason for ML_EVENT_FALLBACK (0, ML_FALLBACK_PEER, for events of older programs). */
#define ML_FALLBACK_PEER 0 /* the peer was not in the sockhash (first send beat its server) */
#define ML_FALLBACK_READER_BEHIND 1 /* back-pressure: the reader had > max_unread_bytes unread */
#define ML_FALLBACK_READER_SPINNING 2 /* the reader spins on its socket (meshlane/reader_spin.h) */
#define ML_FALLBACK_PEER_LEFT 3 /* the peer's sends left the splice first (meshlane/peer_left.h) */

/* ml_event.detail for ML_EVENT_DENIED: the low 16 bits are the policy rule that denied the
 * connection (the daemon's rule table, 1-based: meshlanectl monitor names it); 0 when no rule
 * matched and the default denied it, and then ML_DENY_DEFAULT_* tell why. */
#define ML_DENY_RULE_MASK 0xffffu
#define ML_DENY_DEFAULT_EGRESS (1u << 16) /* the source has egress allow rules, none matched */
/* the destination has ingress allow rules, none matched: */
#define ML_DENY_DEFAULT_INGRESS (1u << 17)
/* A rule entry denied it but carries no rule id: a policy compiled by a daemon before rule ids,
 * or a rule past the ML_DENY_RULE_MASK first ones. */
#define ML_DENY_RULE_UNNAMED (1u << 18)

/* ml_event.side for socket events: which end of the connection the socket is. */
#define ML_SIDE_CLIENT 1
#define ML_SIDE_SERVER 2

/* One event. Addresses are IPv6 or v4-mapped, network byte order; ports host byte order.
 * src -> dst is the connection's direction for connect and tc events (src is the client; its
 * address is zero when the socket was not bound yet, its port zero before the connect), and
 * the socket's local -> remote end for socket events. */
struct ml_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 netns_cookie; /* the namespace it happened in (tc: the pod's) */
	__u32 src_ip6[4];
	__u32 dst_ip6[4];
	__u32 orig_dst_ip6[4]; /* INTERCEPTED, DENIED: what the client asked for */
	__u16 src_port;
	__u16 dst_port;
	__u16 orig_dst_port; /* 0 when there is no original destination */
	__u8 type; /* enum ml_event_type */
	__u8 reason; /* enum ml_event_reason */
	__u8 hop; /* enum ml_hop: SPLICED by the client end, INTERCEPTED */
	__u8 side; /* ML_SIDE_* for socket events, 0 otherwise */
	__u16 pad16;
	__u32 workload_id; /* ml_workload.id when the program had it at hand, else 0 */
	__s32 error; /* MAP_FULL: what bpf_sock_hash_update returned (-errno) */
	/* DENIED: the policy rule (ML_DENY_*); FALLBACK: size of the send that fell back, or for
	 * ML_FALLBACK_READER_BEHIND the bytes its reader had unread */
	__u32 detail;
};

/* Keys of the array ml_monitor_v1 (value: __u64). */
#define ML_MONITOR_KEY_MASK 0 /* bit (1 << ML_EVENT_*) set: emit that type; daemon-written */
#define ML_MONITOR_KEY_RING_DROPS 1 /* events lost because the ring buffer was full */
#define ML_MONITOR_KEYS 2

#define ML_EVENTS_RING_BYTES (256 * 1024)

#define ML_EVENTS_MAP_NAME "ml_events_v1"
#define ML_MONITOR_MAP_NAME "ml_monitor_v1"

#endif /* MESHLANE_EVENT_TYPES_H */
