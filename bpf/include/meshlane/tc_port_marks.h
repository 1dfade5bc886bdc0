/* Which ports a tc-steered flow may use, so that a packet of any other connection skips the
 * flow-map lookup (ml_tcports_v1). Shared by the BPF programs and the controller (pinned ABI:
 * the layout and map name never change in place).
 *
 * Every packet through a pod's interface, in both directions, used to hash its addresses and
 * ports into ml_tcflows_v3, though only connections steered from off the node are ever in it:
 * same-node traffic (the fast path, the sidecars' own hops) paid for a lookup that could not
 * find anything. A steered flow's packets carry its app port (entering the pod) or the inbound
 * proxy port (leaving it), and both ports are marked here before the flow is filed, so an
 * unmarked port proves there is no flow to find.
 *
 * Marks are only ever set (by tc at a flow's first SYN, by the controller from the flows
 * already filed): clearing one could race with a new flow on that port. The filter is used
 * only while armed: the controller disarms it at start and arms it once every flow in the map
 * is known to be marked (programs of older builds filed flows without marking them). */
#ifndef MESHLANE_TC_PORT_MARKS_H
#define MESHLANE_TC_PORT_MARKS_H

#include "meshlane/compiler.h"

#define ML_TC_PORTS_MAP_NAME "ml_tcports_v1"

/* One bit per port, 64 to a slot, in two sets. */
#define ML_TC_PORT_WORDS 1024 /* 65536 / 64 */
enum ml_tc_port_set {
	ML_TC_PORTS_APP = 0, /* the ports a steered connection was made to (orig_port) */
	ML_TC_PORTS_INBOUND = 1, /* the inbound proxy ports flows were steered to */
};
/* The last slot: non-zero while the filter is armed. */
#define ML_TC_PORTS_ARMED_SLOT (2 * ML_TC_PORT_WORDS)
#define ML_TC_PORTS_SLOTS (ML_TC_PORTS_ARMED_SLOT + 1)

ML_INLINE __u32 ml_tc_port_slot(enum ml_tc_port_set set, __u16 port)
{
	return (__u32)set * ML_TC_PORT_WORDS + (port >> 6);
}

ML_INLINE __u64 ml_tc_port_bit(__u16 port)
{
	return 1ULL << (port & 63);
}

#endif /* MESHLANE_TC_PORT_MARKS_H */
