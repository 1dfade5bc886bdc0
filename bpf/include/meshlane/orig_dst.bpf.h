/* Original destinations of intercepted connections, filed by the connect hooks, sock_ops and
 * tc, answered to getsockopt(SO_ORIGINAL_DST). */
#ifndef MESHLANE_ORIG_DST_BPF_H
#define MESHLANE_ORIG_DST_BPF_H

#include "meshlane/map_room.h"
#include "meshlane/orig_dst_types.h"

/* Sizes below are defaults; the controller sets the configured ones before load. */

/* Original destinations of handshakes in flight (see struct ml_orig_dst_entry). A plain hash:
 * it refuses instead of evicting, and the connect hooks stop intercepting before it is full
 * (ml_orig_dst_has_room below), so no filed entry is ever lost. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_flow_key);
	__type(value, struct ml_orig_dst_entry);
} ml_origdst_v2 SEC(".maps");

/* Kernel >= 6.6: the live element count of a map (a per-CPU counter the kernel keeps for hash
 * maps), callable from every program type. */
extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym __weak;

/* Whether a connection may be intercepted without risking a failed ml_origdst_v2 insert: the
 * map must be below its capacity minus a headroom for the connects other CPUs are between
 * this check and their insert (the insert follows in the same connect() call, at sock_ops'
 * TCP_CONNECT_CB, or a few instructions later in tc).
 *
 * Why the kfunc and not a counter of our own: it is exact (the kernel counts every insert and
 * delete, including the controller's sweeps and migrations, which a BPF-side counter would
 * have to be told about), costs a sum over the possible CPUs and no shared cache line, and
 * needs no extra map. On kernels without it (< 6.6) there is no pre-check: a failed insert is
 * then counted (orig_dst_file_failed) and the proxy gets no original destination. */
static __always_inline int ml_orig_dst_has_room(void)
{
	if (!bpf_map_sum_elem_count)
		return 1;
	return ml_map_has_room(bpf_map_sum_elem_count((const struct bpf_map *)&ml_origdst_v2),
			       ((const struct bpf_map *)&ml_origdst_v2)->max_entries);
}

#endif /* MESHLANE_ORIG_DST_BPF_H */
