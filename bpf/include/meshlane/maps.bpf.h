/* Every map meshlane pins, defined once. Each BPF object includes this header and libbpf
 * reuses the pinned instance, so all programs share one set of maps. */
#ifndef MESHLANE_MAPS_BPF_H
#define MESHLANE_MAPS_BPF_H

#include "meshlane/listeners.bpf.h"
#include "meshlane/map_room.h"
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

/* Original destinations of handshakes in flight (see struct ml_orig_dst_entry). A plain hash:
 * it refuses instead of evicting, and the connect hooks stop intercepting before it is full
 * (ml_orig_dst_has_room below), so no filed entry is ever lost. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_flow_key);
	__type(value, struct ml_orig_dst_entry);
} ml_origdst_v2 SEC(".maps");

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

/* Connections steered by tc. A plain hash: an LRU map would evict a live flow (and so reset its
 * connection) when full; this one refuses the insert and the SYN is not steered. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_tc_flow_key);
	__type(value, struct ml_tc_flow);
} ml_tcflows_v2 SEC(".maps");


/* Client ends of connections being spliced whose server end is not established yet (key: the
 * client's sockhash key). Taken by the server end's established callback, or by the client's
 * first send if that comes first; see splice_socket. An entry lives for one handshake, so an
 * LRU hash: one evicted only means that connection is not spliced. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ml_sock_key);
	__type(value, struct ml_pairing);
} ml_pairing_v2 SEC(".maps");

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

/* Kernel >= 6.6: the live element count of a map (a per-CPU counter the kernel keeps for hash
 * maps), callable from every program type. */
extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym __weak;

/* Whether a connection may be intercepted without risking a failed ml_origdst_v2 insert: the
 * map must be below its capacity minus a headroom for the connects other CPUs are between
 * this check and their insert (the insert follows in the same connect() call, at sock_ops'
 * TCP_CONNECT_CB, or a few instructions later in tc).
 *
 * Why the kfunc and not a counter of our own: it is exact (the kernel counts every insert and
 * delete, including the controller's sweeps and migrations, which a BPF-side counter would
 * have to be told about), costs a sum over the possible CPUs and no shared cache line, and
 * needs no extra map. On kernels without it (< 6.6) there is no pre-check: a failed insert is
 * then counted (orig_dst_file_failed) and the proxy gets no original destination. */
static __always_inline int ml_orig_dst_has_room(void)
{
	if (!bpf_map_sum_elem_count)
		return 1;
	return ml_map_has_room(bpf_map_sum_elem_count((const struct bpf_map *)&ml_origdst_v2),
			       ((const struct bpf_map *)&ml_origdst_v2)->max_entries);
}

#endif /* MESHLANE_MAPS_BPF_H */
