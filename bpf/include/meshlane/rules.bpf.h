/* Rule and workload lookups shared by the cgroup and tc programs. */
#ifndef MESHLANE_RULES_BPF_H
#define MESHLANE_RULES_BPF_H

#include "meshlane/maps.bpf.h"
#include "meshlane/shared.h"

static __always_inline __u8 ml_port_rule(__u32 workload_id, __u8 direction, __u16 port)
{
	struct ml_port_rule_key key = {
		.workload_id = workload_id,
		.port = port,
		.direction = direction,
	};
	__u8 *rule = bpf_map_lookup_elem(&ml_portrules_v1, &key);

	return rule ? *rule : 0;
}

/* Whether ip6 lies in one of the workload's prefixes on the given list. */
static __always_inline int ml_cidr_listed(__u32 workload_id, __u32 list, const __u32 ip6[4])
{
	struct ml_cidr_rule_key key = {
		.prefixlen = ML_CIDR_KEY_PREFIX_BITS + 128,
		.workload_id = bpf_htonl(workload_id),
		.list = bpf_htonl(list),
	};

	key.ip6[0] = ip6[0];
	key.ip6[1] = ip6[1];
	key.ip6[2] = ip6[2];
	key.ip6[3] = ip6[3];
	return bpf_map_lookup_elem(&ml_cidrrules_v1, &key) != NULL;
}

static __always_inline struct ml_workload *ml_pod_of(const __u32 ip6[4])
{
	struct ml_ip_key key;

	key.ip6[0] = ip6[0];
	key.ip6[1] = ip6[1];
	key.ip6[2] = ip6[2];
	key.ip6[3] = ip6[3];
	return bpf_map_lookup_elem(&ml_pod_ips_v1, &key);
}

#endif /* MESHLANE_RULES_BPF_H */
