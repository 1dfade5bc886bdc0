/* The L4 policy map and the lookups in the current compiled policy, shared by the cgroup and tc
 * programs. */
#ifndef MESHLANE_POLICY_BPF_H
#define MESHLANE_POLICY_BPF_H

#include "meshlane/policy.h"
#include "meshlane/policy_types.h"

/* Template of a compiled policy (see ml_policy_key in policy_types.h). The controller creates one
 * such trie per policy generation and swaps it into the slot of ml_policy_v1. */
struct ml_policy_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, ML_POLICY_MAX_ENTRIES);
	/* Sizes, not types: libbpf cannot size BTF types inside an inner map definition. */
	__uint(key_size, sizeof(struct ml_policy_key));
	__uint(value_size, sizeof(struct ml_policy_value));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct ml_policy_trie);
} ml_policy_v1 SEC(".maps");

/* An endpoint as the policy sees it. */
struct ml_policy_party {
	__u32 identity;
	__u8 isolation;
};

static __always_inline void ml_policy_party_of(void *policy, const struct ml_policy_key *key,
					       struct ml_policy_party *party)
{
	struct ml_policy_value *value = bpf_map_lookup_elem(policy, key);

	party->identity = value ? value->identity : 0;
	party->isolation = value ? value->isolation : 0;
}

/* *detail (left as is for an allowed connection): what decided a denial, for its event
 * (ml_policy_deny_detail). */
static __always_inline __u8 ml_policy_judge(void *policy, const struct ml_policy_party *src,
					    const struct ml_policy_party *dst, __u16 port,
					    __u32 *detail)
{
	struct ml_policy_value *rule;
	struct ml_policy_key key;
	__u8 verdict;

	ml_policy_rule_key(&key, src->identity, dst->identity, port, 16);
	rule = bpf_map_lookup_elem(policy, &key);
	verdict = ml_policy_decide(rule, src->isolation, dst->isolation);
	if (verdict == ML_POLICY_DENY)
		*detail = ml_policy_deny_detail(rule, src->isolation, dst->isolation);
	return verdict;
}

/* The policy in force, NULL when none has been applied (everything is allowed). Read once per
 * decision: everything a decision looks up comes from this one generation. */
static __always_inline void *ml_policy_current(void)
{
	__u32 slot = 0;

	return bpf_map_lookup_elem(&ml_policy_v1, &slot);
}

/* A workload's connect (identified by its netns) to dst_ip6:port. */
static __always_inline __u8 ml_policy_judge_connect(__u64 netns_cookie, const __u32 dst_ip6[4],
						    __u16 port, __u32 *detail)
{
	struct ml_policy_party src, dst;
	struct ml_policy_key key;
	void *policy = ml_policy_current();

	*detail = 0;
	if (!policy)
		return ML_POLICY_ALLOW;
	ml_policy_netns_key(&key, netns_cookie);
	ml_policy_party_of(policy, &key, &src);
	ml_policy_ip_key(&key, dst_ip6, 128);
	ml_policy_party_of(policy, &key, &dst);
	return ml_policy_judge(policy, &src, &dst, port, detail);
}

/* A connection arriving at a pod from src_ip6 (tc ingress). */
static __always_inline __u8 ml_policy_judge_inbound(const __u32 src_ip6[4], const __u32 dst_ip6[4],
						    __u16 port, __u32 *detail)
{
	struct ml_policy_party src, dst;
	struct ml_policy_key key;
	void *policy = ml_policy_current();

	*detail = 0;
	if (!policy)
		return ML_POLICY_ALLOW;
	ml_policy_ip_key(&key, src_ip6, 128);
	ml_policy_party_of(policy, &key, &src);
	ml_policy_ip_key(&key, dst_ip6, 128);
	ml_policy_party_of(policy, &key, &dst);
	return ml_policy_judge(policy, &src, &dst, port, detail);
}

#endif /* MESHLANE_POLICY_BPF_H */
