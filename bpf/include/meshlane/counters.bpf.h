/* Per-CPU event counters, summed by the controller. */
#ifndef MESHLANE_COUNTERS_BPF_H
#define MESHLANE_COUNTERS_BPF_H

#include "meshlane/shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ml_counters_v1 SEC(".maps");

static __always_inline void ml_count(__u32 counter, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(&ml_counters_v1, &counter);

	if (value)
		*value += amount; /* per-CPU slot: no atomics needed */
}

#endif /* MESHLANE_COUNTERS_BPF_H */
