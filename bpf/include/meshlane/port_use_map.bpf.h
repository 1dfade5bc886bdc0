/* Adaptive splicing's per-port map (meshlane/port_use.h) and the decision it gives a new
 * connection: shared by sock_ops (bpf/sockops/sockops.bpf.c) and the connect hooks
 * (bpf/cgroup/intercept.bpf.c), which give no listener answer (ml_srvlistener_v1) to a
 * connection of a short port. */
#ifndef MESHLANE_PORT_USE_MAP_BPF_H
#define MESHLANE_PORT_USE_MAP_BPF_H

#include "meshlane/port_use.h"
#include "meshlane/port_use_types.h"

/* Server ports (namespace, port) and what their spliced ends were. LRU: a port that stops
 * being used is forgotten, and judged afresh if it comes back. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ml_listener_key); /* slot always 0 */
	__type(value, struct ml_port_use);
} ml_portuse_v1 SEC(".maps");

/* Whether the port's recent connections were short: its new ones stay unspliced. */
static __always_inline int ml_port_is_short(const struct ml_listener_key *port)
{
	struct ml_port_use *use = bpf_map_lookup_elem(&ml_portuse_v1, port);

	return use && ml_port_use_short(use->busy_ends, use->short_ends);
}

#endif /* MESHLANE_PORT_USE_MAP_BPF_H */
