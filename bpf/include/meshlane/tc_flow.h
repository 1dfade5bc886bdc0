/* Flow steering decisions of the inbound tc programs, over plain values so host tests can
 * drive them. */
#ifndef MESHLANE_TC_FLOW_H
#define MESHLANE_TC_FLOW_H

#include "meshlane/compiler.h"
#include "meshlane/tc_flow_types.h"
#include "meshlane/workload_types.h"

#define ML_TCP_FIN 0x01
#define ML_TCP_SYN 0x02
#define ML_TCP_RST 0x04
#define ML_TCP_ACK 0x10

/* Whether a new connection from off the node to a pod port goes to the inbound proxy. */
ML_INLINE int ml_tc_should_steer(const struct ml_workload *wl, __u16 dst_port, __u8 port_rule,
				 int src_excluded)
{
	if (dst_port == wl->inbound_port || dst_port == wl->outbound_port || src_excluded)
		return 0;
	if (port_rule == ML_RULE_EXCLUDE)
		return 0;
	if ((wl->flags & ML_WL_INCLUDE_IN_PORTS) && port_rule != ML_RULE_INCLUDE)
		return 0;
	return 1;
}

/* What to do with a SYN that ml_tc_should_steer() chose to steer, once its flow was inserted
 * with BPF_NOEXIST. */
enum ml_tc_syn_verdict {
	ML_TC_SYN_STEER_NEW = 0, /* a new flow: steer it and file its original destination */
	ML_TC_SYN_STEER_RETRANSMIT, /* the flow exists for the same port: a retransmitted SYN */
	/* The key (client address and port, pod address) belongs to a live connection to another
	 * port of the pod. Steered, both would be the same 4-tuple at the inbound port, which
	 * rewriting the port cannot tell apart: this one goes to the app port directly. */
	ML_TC_SYN_COLLISION,
	ML_TC_SYN_FLOWS_FULL, /* the flow map refused the insert: not steered */
};

#define ML_EEXIST 17

/* insert_err: what the BPF_NOEXIST insert returned (0 or -errno). existing: the entry under the
 * key when it was -EEXIST (NULL if it went away in between: not steered, as a collision, since
 * the key was just busy). orig_port: the app port this SYN is for. */
ML_INLINE int ml_tc_syn_decide(long insert_err, const struct ml_tc_flow *existing, __u16 orig_port)
{
	if (insert_err == 0)
		return ML_TC_SYN_STEER_NEW;
	if (insert_err != -ML_EEXIST)
		return ML_TC_SYN_FLOWS_FULL;
	if (existing && existing->orig_port == orig_port)
		return ML_TC_SYN_STEER_RETRANSMIT;
	return ML_TC_SYN_COLLISION;
}

/* A flow never acked after this long is a SYN nobody completed: the controller removes it. */
#define ML_TC_FLOW_SYN_TIMEOUT_NS (60ULL * 1000000000ULL)

/* Whether the controller's sweep removes this flow at monotonic time now_ns. */
ML_INLINE int ml_tc_flow_stale(const struct ml_tc_flow *flow, __u64 now_ns)
{
	return !flow->acked && now_ns > flow->start_ns &&
	       now_ns - flow->start_ns > ML_TC_FLOW_SYN_TIMEOUT_NS;
}

enum ml_tc_flow_end {
	ML_TC_FLOW_KEEP = 0,
	ML_TC_FLOW_DELETE = 1,
};

/* What tc reads of a TCP segment to follow a flow's close. */
struct ml_tcp_segment {
	__u32 seq;
	__u32 ack_seq;
	__u32 payload_len; /* bytes of data after the TCP header */
	__u8 flags;
};

/* Whether ack_seq acknowledges everything before `end` (sequence numbers wrap). */
ML_INLINE int ml_tcp_acks(__u32 ack_seq, __u32 end)
{
	return (__s32)(ack_seq - end) >= 0;
}

/* Tracks the close of a steered flow; `inbound` is the direction of this segment. The entry
 * lives until each side's FIN has been acknowledged by the other, by sequence number: after
 * both FINs, a pure ACK may still be a duplicate ACK for a lost segment or a window update,
 * and a flow removed then leaves the retransmissions it asks for unsteered (the app port resets
 * them). The segment that completes the close is translated before the entry goes; a RST ends
 * it at once. The ack numbers are written before the flags that make them valid. */
ML_INLINE int ml_tc_flow_track(struct ml_tc_flow *flow, const struct ml_tcp_segment *seg,
			       int inbound)
{
	if (inbound && !flow->acked && (seg->flags & ML_TCP_ACK))
		flow->acked = 1; /* past the SYN: never swept as a stale handshake */
	if (seg->flags & ML_TCP_RST)
		return ML_TC_FLOW_DELETE;
	if (seg->flags & ML_TCP_ACK) {
		if (inbound && flow->fin_out && !flow->fin_out_acked &&
		    ml_tcp_acks(seg->ack_seq, flow->fin_out_ack))
			flow->fin_out_acked = 1;
		if (!inbound && flow->fin_in && !flow->fin_in_acked &&
		    ml_tcp_acks(seg->ack_seq, flow->fin_in_ack))
			flow->fin_in_acked = 1;
	}
	if (seg->flags & ML_TCP_FIN) {
		if (inbound && !flow->fin_in) {
			flow->fin_in_ack = seg->seq + seg->payload_len + 1;
			flow->fin_in = 1;
		} else if (!inbound && !flow->fin_out) {
			flow->fin_out_ack = seg->seq + seg->payload_len + 1;
			flow->fin_out = 1;
		}
	}
	return flow->fin_in_acked && flow->fin_out_acked ? ML_TC_FLOW_DELETE : ML_TC_FLOW_KEEP;
}

#endif /* MESHLANE_TC_FLOW_H */
