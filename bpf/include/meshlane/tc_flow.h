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

/* Tracks the close of a steered flow; `inbound` is the direction of this packet. The entry
 * must outlive both FINs until the last ACK has been translated, or that ACK would carry the
 * wrong port; a RST ends it at once. */
ML_INLINE int ml_tc_flow_track(struct ml_tc_flow *flow, __u8 tcp_flags, int inbound)
{
	if (inbound && !flow->acked && (tcp_flags & ML_TCP_ACK))
		flow->acked = 1; /* past the SYN: never swept as a stale handshake */
	if (tcp_flags & ML_TCP_RST)
		return ML_TC_FLOW_DELETE;
	if (flow->fin_in && flow->fin_out && !(tcp_flags & ML_TCP_FIN) && (tcp_flags & ML_TCP_ACK))
		return ML_TC_FLOW_DELETE;
	if (tcp_flags & ML_TCP_FIN) {
		if (inbound)
			flow->fin_in = 1;
		else
			flow->fin_out = 1;
	}
	return ML_TC_FLOW_KEEP;
}

#endif /* MESHLANE_TC_FLOW_H */
