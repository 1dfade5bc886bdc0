/* The splicing maps: the sockhash sk_msg redirects through, each socket's state, the pairing
 * of a connection's two ends, and the node-wide acceleration port lists. */
#ifndef MESHLANE_SPLICE_BPF_H
#define MESHLANE_SPLICE_BPF_H

#include "meshlane/splice_types.h"

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

#endif /* MESHLANE_SPLICE_BPF_H */
