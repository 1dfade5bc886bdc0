/* Connections from off the node that tc steers to a pod's inbound proxy (the decisions are in
 * tc_flow.h). Shared by the BPF programs and the controller (pinned ABI: layouts and map names
 * never change in place). */
#ifndef MESHLANE_TC_FLOW_TYPES_H
#define MESHLANE_TC_FLOW_TYPES_H

#include "meshlane/compiler.h"

/* Key and value of ml_tcflows_v3: connections from off the node that tc steers to a pod's
 * inbound proxy. Keyed from the pod's side so both directions find the entry. */
struct ml_tc_flow_key {
	__u32 remote_ip6[4];
	__u32 local_ip6[4]; /* the pod address */
	__u16 remote_port; /* host byte order */
	__u16 pad16;
	__u32 pad32;
};

/* The first 16 bytes are the retired v2 layout (map_upgrade.cpp converts it). Every flag has a
 * byte of its own: ingress and egress update one flow on two CPUs at once, and a read-modify-
 * write of shared bits would lose one. */
struct ml_tc_flow {
	__u16 orig_port; /* the app port the client connected to */
	__u16 inbound_port; /* the inbound proxy port it was steered to */
	__u8 fin_in; /* FIN seen from the remote side */
	__u8 fin_out; /* FIN seen from the pod side */
	__u8 acked; /* the client sent a packet after its SYN: the handshake got past the SYN */
	__u8 pad8;
	/* bpf_ktime_get_coarse_ns() at the first SYN: the controller removes flows that are still
	 * not acked long after (SYNs nobody answered, which a plain hash would keep forever). */
	__u64 start_ns;
	/* The acknowledgement number that covers each side's FIN (its sequence number + payload +
	 * 1), valid once fin_in / fin_out is set. */
	__u32 fin_in_ack;
	__u32 fin_out_ack;
	__u8 fin_in_acked; /* the pod acknowledged the remote side's FIN */
	__u8 fin_out_acked; /* the remote side acknowledged the pod's FIN */
	__u8 pad[6];
};

#define ML_TC_FLOWS_MAP_NAME "ml_tcflows_v3"
/* Retired layouts that a start converts into the current one (map_upgrade.cpp): v1 an LRU map
 * with 8-byte values, v2 a hash with the first 16 bytes of today's value (it ended a flow at
 * the first pure ACK after both FINs, which could be a duplicate ACK or a window update). */
#define ML_TC_FLOWS_V1_MAP_NAME "ml_tcflows_v1"
#define ML_TC_FLOWS_V2_MAP_NAME "ml_tcflows_v2"

#endif /* MESHLANE_TC_FLOW_TYPES_H */
