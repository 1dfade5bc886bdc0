/* Listening sockets of the attached cgroup: their registry, their mode, and what the listener
 * scan reports. Shared by the BPF programs and the controller (pinned ABI: layouts and map
 * names never change in place). */
#ifndef MESHLANE_LISTENER_TYPES_H
#define MESHLANE_LISTENER_TYPES_H

#include "meshlane/compiler.h"

/* Key of ml_listener_socks_v1, the registry of the attached cgroup's listening sockets (a
 * SOCKHASH: the kernel drops a listener's entry when it closes, so an entry is always a live
 * listener). Up to ML_LISTENER_SLOTS listeners of one namespace and port are registered, one per
 * slot: IPv4 and IPv6-only listeners, an SO_REUSEPORT group, the old and new workers of a
 * reload. Also the key of ml_listeners_v1 (slot 0), the filter in front of the registry. A
 * client end and the fast path only need to know that one exists (server_may_splice,
 * ml_listening); a server end's mode comes from the listener that accepted it (struct
 * ml_listener_state), never from here. */
struct ml_listener_key {
	__u64 netns_cookie;
	__u16 port; /* host byte order */
	__u16 slot; /* 0 .. ML_LISTENER_SLOTS - 1 */
	__u32 pad32;
};

#define ML_LISTENER_SLOTS 16

/* Value of ml_srvlistener_v1: the namespace and port where the connect hook found a live
 * listener of the cgroup for the address a socket connects to (netns_cookie 0: none found). */
struct ml_server_listener {
	__u64 netns_cookie;
	__u16 port; /* host byte order */
	/* Set when the connect hook also took adaptive splicing's decision for the connection (its
	 * port's connections are not short): sock_ops then does not judge it again. Was padding
	 * (always zero) before. */
	__u8 judged;
	__u8 pad8;
	__u32 pad32;
};

/* Whether an application reads a socket non-blocking, from its file's O_NONBLOCK. */
enum ml_socket_mode {
	ML_SOCKET_MODE_UNKNOWN = 0, /* no file (yet), or never recorded */
	ML_SOCKET_MODE_BLOCKING,
	ML_SOCKET_MODE_NONBLOCKING,
};

/* How a listener's record came to be. */
enum ml_listener_source {
	ML_LISTENER_FROM_LISTEN = 1, /* sock_ops at listen() */
	ML_LISTENER_FROM_SCAN, /* the scan of listeners that existed before the datapath */
};

/* Value of ml_listenmode_v1: socket-local storage of a listening socket of the cgroup, created
 * with BPF_F_CLONE, so the kernel copies it into every socket the listener accepts (at
 * sk_clone_lock, before the server end's established callback). A server end therefore reads
 * the mode of exactly the listener that accepted it, and the record dies with its socket.
 * Only blocking listeners (at listen()) and listeners the scan found get a record: a listener
 * that sock_ops saw non-blocking is marked in its sock_ops flags instead, which its accepted
 * sockets inherit with no allocation (ML_LISTENER_NONBLOCKING_CB_FLAG, listeners.bpf.h). */
struct ml_listener_state {
	__u8 mode; /* enum ml_socket_mode, at listen() or at the scan */
	__u8 source; /* enum ml_listener_source */
	__u16 pad;
};

/* One listening socket's file that the listener scan found in the attached cgroup: a record
 * its iterator writes to its output for the controller, which records the listener's mode. */
struct ml_scanned_listener {
	__u64 netns_cookie;
	__u64 inode; /* the socket's inode number (socket:[N] in /proc/PID/fd): one per listener */
	__u32 pid; /* a process holding the listener's file (tgid) */
	__u32 fd; /* the file's descriptor number in that process */
	__u16 port; /* host byte order */
	__u16 family; /* AF_INET or AF_INET6 */
	__u8 mode; /* enum ml_socket_mode of its file now */
	__u8 v6only; /* AF_INET6 with IPV6_V6ONLY */
	__u8 marked_nonblocking; /* sock_ops marked it non-blocking at listen() (its cb flags) */
	__u8 pad8;
};

#define ML_LISTENERS_MAP_NAME "ml_listeners_v1"
#define ML_LISTENER_SOCKS_MAP_NAME "ml_listener_socks_v1"
#define ML_SERVER_LISTENER_MAP_NAME "ml_srvlistener_v1"
#define ML_LISTEN_MODE_MAP_NAME "ml_listenmode_v1"

#endif /* MESHLANE_LISTENER_TYPES_H */
