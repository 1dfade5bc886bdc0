/* L4 authorization: building ml_policy_v1 keys and combining lookups into a verdict. Plain
 * inline functions over plain values, shared by the BPF programs, the controller's policy
 * compiler (which must write exactly the keys the programs look up) and host unit tests. */
#ifndef MESHLANE_POLICY_H
#define MESHLANE_POLICY_H

#include "meshlane/compiler.h"
#include "meshlane/event_types.h"
#include "meshlane/policy_types.h"

#define ML_POLICY_IP_BITS (ML_POLICY_KIND_BITS + 128)
#define ML_POLICY_NETNS_BITS (ML_POLICY_KIND_BITS + 64)
#define ML_POLICY_PAIR_BITS (ML_POLICY_KIND_BITS + 64) /* kind + both identities */
#define ML_POLICY_RULE_BITS (ML_POLICY_PAIR_BITS + 16) /* ... + the whole port */

ML_INLINE void ml_policy_key_clear(struct ml_policy_key *key, __u8 kind, __u32 prefixlen)
{
	key->prefixlen = prefixlen;
	key->kind = kind;
	key->pad[0] = 0;
	key->pad[1] = 0;
	key->pad[2] = 0;
	for (int i = 0; i < ML_POLICY_DATA_BYTES; i++)
		key->data[i] = 0;
}

/* prefix_bits counts address bits (0..128, v4-mapped space for IPv4). */
ML_INLINE void ml_policy_ip_key(struct ml_policy_key *key, const __u32 ip6[4], __u32 prefix_bits)
{
	const __u8 *bytes = (const __u8 *)ip6;

	ml_policy_key_clear(key, ML_POLICY_KIND_IP, ML_POLICY_KIND_BITS + prefix_bits);
	for (int i = 0; i < 16; i++)
		key->data[i] = bytes[i];
}

ML_INLINE void ml_policy_netns_key(struct ml_policy_key *key, __u64 netns_cookie)
{
	const __u8 *bytes = (const __u8 *)&netns_cookie;

	ml_policy_key_clear(key, ML_POLICY_KIND_NETNS, ML_POLICY_NETNS_BITS);
	for (int i = 0; i < 8; i++)
		key->data[i] = bytes[i];
}

/* port_bits: how many leading bits of the port the entry fixes (16 for a lookup). */
ML_INLINE void ml_policy_rule_key(struct ml_policy_key *key, __u32 src_identity, __u32 dst_identity,
				  __u16 port, __u32 port_bits)
{
	ml_policy_key_clear(key, ML_POLICY_KIND_RULE, ML_POLICY_PAIR_BITS + port_bits);
	key->data[0] = (__u8)(src_identity >> 24);
	key->data[1] = (__u8)(src_identity >> 16);
	key->data[2] = (__u8)(src_identity >> 8);
	key->data[3] = (__u8)src_identity;
	key->data[4] = (__u8)(dst_identity >> 24);
	key->data[5] = (__u8)(dst_identity >> 16);
	key->data[6] = (__u8)(dst_identity >> 8);
	key->data[7] = (__u8)dst_identity;
	key->data[8] = (__u8)(port >> 8);
	key->data[9] = (__u8)port;
}

/* The decision for one connection. rule: the pair's entry for the port, NULL when none. */
ML_INLINE __u8 ml_policy_decide(const struct ml_policy_value *rule, __u8 src_isolation,
				__u8 dst_isolation)
{
	if (rule)
		return rule->verdict;
	if ((src_isolation & ML_POLICY_ISOLATED_EGRESS) ||
	    (dst_isolation & ML_POLICY_ISOLATED_INGRESS))
		return ML_POLICY_DENY;
	return ML_POLICY_ALLOW;
}

/* What a denied event says decided (ml_event.detail, ML_DENY_*): the rule entry's rule, or
 * when no entry matched, which isolation made the default a denial. */
ML_INLINE __u32 ml_policy_deny_detail(const struct ml_policy_value *rule, __u8 src_isolation,
				      __u8 dst_isolation)
{
	__u32 detail = 0;

	if (rule)
		return rule->rule ? rule->rule : ML_DENY_RULE_UNNAMED;
	if (src_isolation & ML_POLICY_ISOLATED_EGRESS)
		detail |= ML_DENY_DEFAULT_EGRESS;
	if (dst_isolation & ML_POLICY_ISOLATED_INGRESS)
		detail |= ML_DENY_DEFAULT_INGRESS;
	return detail;
}

#endif /* MESHLANE_POLICY_H */
