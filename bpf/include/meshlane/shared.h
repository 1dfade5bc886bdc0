/* Structs and constants shared by the BPF programs and the C++ controller.
 * One definition for both sides: never copy these into another header. */
#ifndef MESHLANE_SHARED_H
#define MESHLANE_SHARED_H

#ifdef __BPF__
/* vmlinux.h provides __u8..__u64 on the BPF side. */
#else
#include <linux/types.h>
#endif

/* Identifies one end of a TCP connection so that its peer can be found:
 * - addresses are IPv6 or IPv4-mapped IPv6 (::ffff:a.b.c.d), so an AF_INET socket and an
 *   AF_INET6 socket talking over IPv4 produce matching keys;
 * - scope is the netns cookie when the remote address is loopback (127.0.0.0/8, ::1): identical
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

/* Per-socket state kept in socket-local storage by sock_ops and read by sk_msg. */
struct ml_sock_state {
	struct ml_sock_key peer; /* key of the peer socket in the sockhash */
	/* Set once a send could not be redirected (peer not in the map yet, or gone). From then on
	 * this socket always uses the normal stack: bytes already in the peer's TCP receive queue
	 * must not be overtaken by bytes redirected into its sockmap ingress queue. */
	__u32 fallback;
	__u32 pad;
};

/* Indexes into the per-CPU counter array ml_counters_v1. Append only: renumbering or
 * removing an entry changes the map layout and needs a new map version. */
enum ml_counter {
	ML_CTR_SOCKETS_ADDED = 0,
	ML_CTR_SOCKETS_ADD_FAILED,   /* sockhash update failed (map full) */
	ML_CTR_SOCKETS_SKIPPED_PORT, /* excluded by the port include/exclude lists */
	ML_CTR_MESSAGES_REDIRECTED,
	ML_CTR_BYTES_REDIRECTED,
	ML_CTR_REDIRECT_FAILED,      /* send went to the normal stack; socket now in fallback */
	ML_CTR_MAX,
};

/* Values of the ml_ports_v1 map (key: __u16 port in host byte order). */
enum ml_port_rule {
	ML_PORT_INCLUDE = 1,
	ML_PORT_EXCLUDE = 2,
};

#define ML_COUNTERS_MAP_NAME "ml_counters_v1"
#define ML_SOCKHASH_MAP_NAME "ml_sockhash_v1"
#define ML_PORTS_MAP_NAME "ml_ports_v1"
#define ML_SOCK_STATE_MAP_NAME "ml_sockstate_v1"

#endif /* MESHLANE_SHARED_H */
