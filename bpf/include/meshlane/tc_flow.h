/* Flow steering decisions of the inbound tc programs, over plain values so host tests can
 * drive them. */
#ifndef MESHLANE_TC_FLOW_H
#define MESHLANE_TC_FLOW_H

#include "meshlane/shared.h"
#include "meshlane/sock_key.h" /* ML_INLINE */

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

enum ml_tc_flow_end {
	ML_TC_FLOW_KEEP = 0,
	ML_TC_FLOW_DELETE = 1,
};

/* Tracks the close of a steered flow; `inbound` is the direction of this packet. The entry
 * must outlive both FINs until the last ACK has been translated, or that ACK would carry the
 * wrong port; a RST ends it at once. */
ML_INLINE int ml_tc_flow_track(struct ml_tc_flow *flow, __u8 tcp_flags, int inbound)
{
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
