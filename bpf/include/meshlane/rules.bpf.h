/* Workloads and their port and CIDR rules: the maps the controller fills, and the lookups shared
 * by the cgroup and tc programs. */
#ifndef MESHLANE_RULES_BPF_H
#define MESHLANE_RULES_BPF_H

#include "meshlane/intercept.h"
#include "meshlane/listeners.bpf.h"
#include "meshlane/workload_types.h"

/* Sizes below are defaults; the controller sets the configured ones before load. */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* netns cookie */
	__type(value, struct ml_workload);
} ml_workloads_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct ml_ip_key);
	__type(value, struct ml_workload);
} ml_pod_ips_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_port_rule_key);
	__type(value, __u8);
} ml_portrules_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct ml_cidr_rule_key);
	__type(value, __u8);
} ml_cidrrules_v1 SEC(".maps");

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

/* The rule lookups an application's connect from `self` to dst_ip6:dst_port is decided on
 * (ml_decide_connect); dst_pod is the workload owning dst_ip6, NULL when none on this node. The
 * cgroup connect hooks and tc use the same lookups, so tc can tell which SYNs the connect hook
 * sent on the fast path. */
static __always_inline void ml_lookup_connect_rules(const struct ml_workload *self,
						    const struct ml_workload *dst_pod,
						    const __u32 dst_ip6[4], __u16 dst_port,
						    struct ml_connect_rules *rules)
{
	rules->out_port = ml_port_rule(self->id, ML_DIR_OUTBOUND, dst_port);
	rules->out_cidr_exclude = ml_cidr_listed(self->id, ML_CIDR_LIST_OUT_EXCLUDE, dst_ip6);
	rules->out_cidr_include =
		(self->flags & ML_WL_INCLUDE_OUT_CIDRS) ?
			ml_cidr_listed(self->id, ML_CIDR_LIST_OUT_INCLUDE, dst_ip6) :
			0;
	rules->dst_in_port = dst_pod ? ml_port_rule(dst_pod->id, ML_DIR_INBOUND, dst_port) : 0;
	if (!dst_pod || !(self->flags & ML_WL_FAST_PATH) || !(dst_pod->flags & ML_WL_FAST_PATH))
		return;
	rules->fast_path_src_excepted = (self->flags & ML_WL_FAST_PATH_PORT_RULES) &&
					ml_port_rule(self->id, ML_DIR_FAST_PATH, dst_port) ==
						ML_RULE_EXCLUDE;
	rules->fast_path_dst_excepted = (dst_pod->flags & ML_WL_FAST_PATH_PORT_RULES) &&
					ml_port_rule(dst_pod->id, ML_DIR_FAST_PATH, dst_port) ==
						ML_RULE_EXCLUDE;
	rules->dst_listening = ml_listening(dst_pod->netns_cookie, dst_port);
}

#endif /* MESHLANE_RULES_BPF_H */
