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
	__u32 detail; /* DENIED: the policy rule; FALLBACK: size of the send that fell back */
};

/* Keys of the array ml_monitor_v1 (value: __u64). */
#define ML_MONITOR_KEY_MASK 0 /* bit (1 << ML_EVENT_*) set: emit that type; daemon-written */
#define ML_MONITOR_KEY_RING_DROPS 1 /* events lost because the ring buffer was full */
#define ML_MONITOR_KEYS 2

#define ML_EVENTS_RING_BYTES (256 * 1024)

#define ML_EVENTS_MAP_NAME "ml_events_v1"
#define ML_MONITOR_MAP_NAME "ml_monitor_v1"

#endif /* MESHLANE_EVENT_TYPES_H */
