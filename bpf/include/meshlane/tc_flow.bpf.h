/* The flow table of the inbound tc programs (see struct ml_tc_flow_key). */
#ifndef MESHLANE_TC_FLOW_BPF_H
#define MESHLANE_TC_FLOW_BPF_H

#include "meshlane/tc_flow_types.h"

/* Sizes below are defaults; the controller sets the configured ones before load. */

/* Connections steered by tc. A plain hash: an LRU map would evict a live flow (and so reset its
 * connection) when full; this one refuses the insert and the SYN is not steered. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_tc_flow_key);
	__type(value, struct ml_tc_flow);
} ml_tcflows_v3 SEC(".maps");

#endif /* MESHLANE_TC_FLOW_BPF_H */
