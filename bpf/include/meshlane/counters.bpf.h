/* Per-CPU event counters, summed by the controller. */
#ifndef MESHLANE_COUNTERS_BPF_H
#define MESHLANE_COUNTERS_BPF_H

#include "meshlane/counter_types.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ml_counters_v1 SEC(".maps");

static __always_inline void ml_count(__u32 counter, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(&ml_counters_v1, &counter);

	if (value)
		*value += amount; /* per-CPU slot: no atomics needed */
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u64); /* netns cookie of the workload */
	__type(value, struct ml_wl_counters);
} ml_wlcounters_v1 SEC(".maps");

/* Counts for one workload too (in addition to the node-wide counter, which the caller counts
 * separately). Workloads the controller has not registered are skipped. */
static __always_inline void ml_count_workload(__u64 netns_cookie, __u32 counter, __u64 amount)
{
	struct ml_wl_counters *counters = bpf_map_lookup_elem(&ml_wlcounters_v1, &netns_cookie);

	if (counters && counter < ML_COUNTER_SLOTS)
		counters->value[counter] += amount;
}

#endif /* MESHLANE_COUNTERS_BPF_H */
