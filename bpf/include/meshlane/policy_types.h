/* L4 authorization policy: the compiled trie's keys and values (building keys and deciding are
 * in policy.h). Shared by the BPF programs and the controller (pinned ABI: layouts and map names
 * never change in place). */
#ifndef MESHLANE_POLICY_TYPES_H
#define MESHLANE_POLICY_TYPES_H

#include "meshlane/compiler.h"

/* The compiled policy is one LPM trie, swapped as a whole through the single slot of the
 * array-of-maps ml_policy_v1: a decision reads the slot once, so it is made entirely by the old
 * policy or entirely by the new one. Every entry kind lives in that one trie (the first data
 * byte is the kind, so kinds never match each other):
 *   ML_POLICY_KIND_NETNS: netns cookie of a workload -> its identity (the connecting side);
 *   ML_POLICY_KIND_IP: address prefix -> identity (workload addresses /128, rule CIDRs);
 *   ML_POLICY_KIND_RULE: (source identity, destination identity, port prefix) -> verdict.
 * An address that matches no ML_POLICY_KIND_IP entry has identity 0 (the world). A pair with
 * no ML_POLICY_KIND_RULE entry for the port gets the default: denied when the source is
 * egress-isolated or the destination ingress-isolated (they have allow rules), else allowed. */
enum ml_policy_kind {
	ML_POLICY_KIND_IP = 1,
	ML_POLICY_KIND_NETNS = 2,
	ML_POLICY_KIND_RULE = 3,
};

#define ML_POLICY_KIND_BITS 32 /* kind byte and its padding, always part of the prefix */
#define ML_POLICY_DATA_BYTES 16

struct ml_policy_key {
	__u32 prefixlen; /* bits of kind..data that must match */
	__u8 kind; /* enum ml_policy_kind */
	__u8 pad[3];
	/* KIND_IP: the address (IPv6 or v4-mapped). KIND_NETNS: the cookie (8 bytes, host order).
	 * KIND_RULE: source identity, destination identity (both big-endian), port (big-endian). */
	__u8 data[ML_POLICY_DATA_BYTES];
};

/* Capacity of one compiled policy trie (entries are allocated as used). */
#define ML_POLICY_MAX_ENTRIES 262144

#define ML_POLICY_ISOLATED_INGRESS (1u << 0) /* only allowed connections may reach it */
#define ML_POLICY_ISOLATED_EGRESS (1u << 1) /* it may only make allowed connections */

enum ml_policy_verdict {
	ML_POLICY_ALLOW = 1,
	ML_POLICY_DENY = 2,
};

struct ml_policy_value {
	__u32 identity; /* KIND_IP, KIND_NETNS */
	__u8 isolation; /* KIND_IP, KIND_NETNS: ML_POLICY_ISOLATED_* of that identity */
	__u8 verdict; /* KIND_RULE: enum ml_policy_verdict */
	/* KIND_RULE: the policy rule that gave the verdict (the daemon's table, 1-based), 0 when
	 * not known (more rules than fit, or a trie of a daemon before this field: it was padding,
	 * always zero). The layout is unchanged. */
	__u16 rule;
};

#define ML_POLICY_MAP_NAME "ml_policy_v1"

#endif /* MESHLANE_POLICY_TYPES_H */
