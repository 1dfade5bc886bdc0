/* The port marks of the steered-flow map (see meshlane/tc_port_marks.h). */
#ifndef MESHLANE_TC_PORT_MARKS_BPF_H
#define MESHLANE_TC_PORT_MARKS_BPF_H

#include "meshlane/tc_port_marks.h"

/* An array, whose lookups the verifier inlines: a marked-port test costs a few instructions,
 * against hashing a 40-byte key. Mapped by the controller, which marks ports with the same
 * atomic OR (a map update would write a whole word back over a mark set meanwhile). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, ML_TC_PORTS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ml_tcports_v1 SEC(".maps");

/* Whether a flow of ml_tcflows_v3 may use `port` in `set`: 1 when the filter is not armed. */
static __always_inline int ml_tc_port_may_have_flow(enum ml_tc_port_set set, __u16 port)
{
	__u32 slot = ML_TC_PORTS_ARMED_SLOT;
	__u64 *word = bpf_map_lookup_elem(&ml_tcports_v1, &slot);

	if (!word || !*word)
		return 1;
	slot = ml_tc_port_slot(set, port);
	word = bpf_map_lookup_elem(&ml_tcports_v1, &slot);
	return !word || (*word & ml_tc_port_bit(port));
}

/* Marks `port` in `set`, before a flow that uses it is filed. Tested first: a port once marked
 * is never written again, so CPUs steering to the same port do not fight over its cache line. */
static __always_inline void ml_tc_mark_port(enum ml_tc_port_set set, __u16 port)
{
	__u32 slot = ml_tc_port_slot(set, port);
	__u64 *word = bpf_map_lookup_elem(&ml_tcports_v1, &slot);
	__u64 bit = ml_tc_port_bit(port);

	if (word && !(*word & bit))
		__sync_fetch_and_or(word, bit);
}

#endif /* MESHLANE_TC_PORT_MARKS_BPF_H */
