/* Original destinations: what interception rewrote, filed for SO_ORIGINAL_DST. Shared by the
 * BPF programs and the controller (pinned ABI: layouts and map names never change in place). */
#ifndef MESHLANE_ORIG_DST_TYPES_H
#define MESHLANE_ORIG_DST_TYPES_H

#include "meshlane/compiler.h"

/* The destination an application asked for before interception rewrote it: what
 * SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST answer. */
struct ml_orig_dst {
	__u32 ip6[4]; /* IPv6 or v4-mapped, network byte order */
	__u16 port; /* host byte order */
	__u16 family; /* AF_INET or AF_INET6: the address family the application used */
};

/* Value of ml_origdst_v2: an original destination filed for a handshake in flight. Filed by the
 * client end's sock_ops at TCP_CONNECT_CB (or by tc at the SYN), taken into the accepted
 * socket's storage and deleted at the server end's PASSIVE_ESTABLISHED_CB. filed_ns lets the
 * controller sweep handshakes that never completed. */
struct ml_orig_dst_entry {
	struct ml_orig_dst dst;
	__u32 pad; /* always zero */
	__u64 filed_ns; /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC_COARSE */
};

/* Key of ml_origdst_v2: one TCP connection as (client, server) seen from the server side.
 * scope follows ml_sock_key: the netns cookie for loopback connections, else 0. */
struct ml_flow_key {
	__u64 scope;
	__u32 client_ip6[4];
	__u32 server_ip6[4];
	__u16 client_port; /* host byte order */
	__u16 server_port; /* host byte order */
	__u32 pad;
};

#define ML_ORIG_DST_MAP_NAME "ml_origdst_v2"
/* Retired layout (LRU map) that a start converts into the current one (map_upgrade.cpp). */
#define ML_ORIG_DST_V1_MAP_NAME "ml_origdst_v1"

#endif /* MESHLANE_ORIG_DST_TYPES_H */
