/* Workloads (pods) and their port and CIDR rules, as the controller writes them for the
 * programs. Shared by the BPF programs and the controller (pinned ABI: layouts and map names
 * never change in place). */
#ifndef MESHLANE_WORKLOAD_TYPES_H
#define MESHLANE_WORKLOAD_TYPES_H

#include "meshlane/compiler.h"

#define ML_MAX_PASSTHROUGH 2

/* A workload (pod) as the datapath sees it. Value of ml_workloads_v1, keyed by the pod's netns
 * cookie (__u64). */
struct ml_workload {
	__u32 id; /* non-zero, unique: scopes the port and CIDR rules */
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u16 outbound_port;
	__u16 inbound_port;
	__u32 flags; /* ML_WL_* */
	__u32 passthrough_count; /* valid entries of passthrough_ip6 */
	/* Source addresses of the inbound proxy's upstream to its app (istio 127.0.0.6, ::6). */
	__u32 passthrough_ip6[ML_MAX_PASSTHROUGH][4];
	__u32 node_proxy_ip6[4]; /* sidecarless target, when ML_WL_NODE_PROXY */
	__u16 node_proxy_port;
	/* The DNS proxy's port on loopback (istio 15053), used when ML_WL_DNS_CAPTURE. Was padding:
	 * older entries carry 0 there and no capture flag. */
	__u16 dns_proxy_port;
	__u32 pad32;
	__u64 netns_cookie;
};

#define ML_WL_NODE_PROXY (1u << 1)
#define ML_WL_INCLUDE_OUT_PORTS (1u << 2) /* only listed outbound ports are intercepted */
#define ML_WL_INCLUDE_IN_PORTS (1u << 3)
#define ML_WL_INCLUDE_OUT_CIDRS (1u << 4)
#define ML_WL_NO_ACCEL (1u << 5) /* never splice this workload's sockets */
#define ML_WL_ACCEL_PORT_RULES (1u << 6) /* some ports are not spliced (ML_DIR_ACCEL rules) */
/* Same-node app-to-app connections with another fast-path workload skip both sidecars. */
#define ML_WL_FAST_PATH (1u << 7)
/* Some ports keep the sidecars even on the fast path (ML_DIR_FAST_PATH rules). */
#define ML_WL_FAST_PATH_PORT_RULES (1u << 8)
/* The app's DNS queries (port 53, UDP and TCP) go to the pod's DNS proxy (docs/interception.md,
 * "DNS capture"). */
#define ML_WL_DNS_CAPTURE (1u << 9)

/* Key of ml_pod_ips_v1: a pod address (IPv6 or v4-mapped) -> struct ml_workload of its pod.
 * Lets a proxy's connect to a pod on this node go to that pod's inbound proxy. */
struct ml_ip_key {
	__u32 ip6[4];
};

/* Key of ml_port_rules_v1 (value: __u8 ML_RULE_INCLUDE / ML_RULE_EXCLUDE). */
struct ml_port_rule_key {
	__u32 workload_id;
	__u16 port; /* host byte order */
	__u8 direction; /* ML_DIR_* */
	__u8 pad;
};

/* Key of the LPM trie ml_cidr_rules_v1 (value: __u8 ML_RULE_*). prefixlen counts the bits of
 * workload_id and list first: 64 + the prefix length in the IPv6/v4-mapped space. */
struct ml_cidr_rule_key {
	__u32 prefixlen;
	__u32 workload_id; /* stored big-endian so the trie compares it bytewise */
	__u32 list; /* ML_CIDR_LIST_*, big-endian */
	__u32 ip6[4];
};

#define ML_DIR_OUTBOUND 1
#define ML_DIR_INBOUND 2
#define ML_DIR_ACCEL 3 /* port rules for splicing: ML_RULE_EXCLUDE on a local or remote port */
/* Port rules for the fast path: ML_RULE_EXCLUDE on a destination port keeps the sidecars. */
#define ML_DIR_FAST_PATH 4
#define ML_RULE_INCLUDE 1
#define ML_RULE_EXCLUDE 2
#define ML_CIDR_LIST_OUT_INCLUDE 1
#define ML_CIDR_LIST_OUT_EXCLUDE 2
#define ML_CIDR_LIST_IN_EXCLUDE 3
#define ML_CIDR_KEY_PREFIX_BITS 64

#define ML_WORKLOADS_MAP_NAME "ml_workloads_v1"
#define ML_POD_IPS_MAP_NAME "ml_pod_ips_v1"
#define ML_PORT_RULES_MAP_NAME "ml_portrules_v1"
#define ML_CIDR_RULES_MAP_NAME "ml_cidrrules_v1"

#endif /* MESHLANE_WORKLOAD_TYPES_H */
