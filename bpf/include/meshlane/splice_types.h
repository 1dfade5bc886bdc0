/* Splicing: sockhash keys, per-socket state and the pairing of a connection's two ends, plus
 * the node-wide acceleration port list. Shared by the BPF programs and the controller (pinned
 * ABI: layouts and map names never change in place). */
#ifndef MESHLANE_SPLICE_TYPES_H
#define MESHLANE_SPLICE_TYPES_H

#include "meshlane/compiler.h"
#include "meshlane/orig_dst_types.h"

/* Identifies one end of a TCP connection so that its peer can be found:
 * - addresses are IPv6 or IPv4-mapped IPv6 (::ffff:a.b.c.d), so an AF_INET socket and an
 *   AF_INET6 socket talking over IPv4 produce matching keys;
 * - scope is the netns cookie when either address is loopback (127.0.0.0/8, ::1): identical
 *   loopback tuples in two namespaces must never meet. Otherwise 0, so that hops between
 *   namespaces on this node (pod to pod over veths) can still be spliced;
 * - local_seq/remote_seq are the sequence numbers each side started with (ISN + 1), read at
 *   the established callback: two connections with the same tuple in different namespaces
 *   then still have different keys, and a socket is only ever paired with its real peer. */
struct ml_sock_key {
	__u64 scope;
	__u32 local_ip6[4];
	__u32 remote_ip6[4];
	__u32 local_seq;
	__u32 remote_seq;
	__u16 local_port; /* host byte order */
	__u16 remote_port; /* host byte order */
	__u32 pad; /* always zero: keys are hashed as raw bytes */
};

/* Kinds of hop a spliced connection can be, counted separately. */
enum ml_hop {
	ML_HOP_OTHER = 0, /* a local connection that is not a mesh hop */
	ML_HOP_APP_TO_PROXY, /* app -> its outbound sidecar (or node proxy) */
	ML_HOP_PROXY_TO_PROXY, /* proxy -> a workload's inbound proxy on this node */
	ML_HOP_PROXY_TO_APP, /* inbound proxy -> its app */
	/* app -> app of another workload on this node, both opted in to the fast path: the
	 * sidecars are skipped (docs/fast-path.md) */
	ML_HOP_FAST_PATH,
	ML_HOP_MAX,
};

/* Per-socket state kept in socket-local storage: connect hooks record the original destination
 * and hop kind, sock_ops the peer's key, sk_msg reads it on every send. */
struct ml_sock_state {
	struct ml_sock_key peer; /* key of the peer socket in the sockhash */
	struct ml_orig_dst orig_dst; /* valid when has_orig_dst */
	/* Set once a send could not be redirected (peer not in the map yet, or gone). From then on
	 * this socket always uses the normal stack: bytes already in the peer's TCP receive queue
	 * must not be overtaken by bytes redirected into its sockmap ingress queue. */
	__u8 fallback;
	__u8 has_orig_dst;
	__u8 hop; /* enum ml_hop */
	/* A client end whose entry in ml_pairing_v2 its server end has not taken yet (or had not
	 * at this socket's first send). Was padding (always zero) before. */
	__u8 pairing;
};

/* Value of ml_pairing_v2 (key: the client end's struct ml_sock_key): a client end in the
 * sockhash waiting for its server end. The server end that takes the entry counts the
 * connection as spliced under the client's hop kind and workload: only then are both ends in.
 * (v1 held one byte, and the client end counted the connection when it joined, also when its
 * server end then stayed out.) */
struct ml_pairing {
	__u64 client_netns_cookie;
	__u8 hop; /* enum ml_hop of the client end */
	__u8 pad8[7];
};

/* Values of the ml_ports_v1 map (key: __u16 port in host byte order). */
enum ml_port_rule {
	ML_PORT_INCLUDE = 1,
	ML_PORT_EXCLUDE = 2,
};

#define ML_SOCKHASH_MAP_NAME "ml_sockhash_v1"
#define ML_SOCK_STATE_MAP_NAME "ml_sockstate_v1"
#define ML_PAIRING_MAP_NAME "ml_pairing_v2"
#define ML_PORTS_MAP_NAME "ml_ports_v1"

#endif /* MESHLANE_SPLICE_TYPES_H */
