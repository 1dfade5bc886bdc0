/* Every map meshlane pins, defined once. Each BPF object includes this header and libbpf
 * reuses the pinned instance, so all programs share one set of maps. */
#ifndef MESHLANE_MAPS_BPF_H
#define MESHLANE_MAPS_BPF_H

#include "meshlane/shared.h"

/* Sizes below are defaults; the controller sets the configured ones before load. */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_sock_key);
	__type(value, __u64);
} ml_sockhash_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_state);
} ml_sockstate_v1 SEC(".maps");

/* Node-wide acceleration port lists (acceleration.include_ports / exclude_ports). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} ml_ports_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_flow_key);
	__type(value, struct ml_orig_dst);
} ml_origdst_v1 SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_tc_flow_key);
	__type(value, struct ml_tc_flow);
} ml_tcflows_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ml_listener_key);
	__type(value, __u8);
} ml_listeners_v1 SEC(".maps");

/* Template of a compiled policy (see ml_policy_key in shared.h). The controller creates one
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

#endif /* MESHLANE_MAPS_BPF_H */
