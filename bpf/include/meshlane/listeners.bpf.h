/* Listening sockets of the attached cgroup: where they are (for client ends and the fast path)
 * and in which mode their application reads (for the server ends they accept). Written by
 * sock_ops at listen() and, for listeners that existed before the datapath, by the listener
 * scan (bpf/sockops/listener_scan.bpf.c, controller/datapath/listener_scan.cpp). */
#ifndef MESHLANE_LISTENERS_BPF_H
#define MESHLANE_LISTENERS_BPF_H

#include "meshlane/listener_types.h"

/* A listener of the cgroup was seen on (netns, port), value: its mode. Only a filter in front of
 * the registry, so that a port nothing of the cgroup ever listened on costs one lookup: an
 * entry outlives its listener until the LRU map evicts it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ml_listener_key); /* slot always 0 */
	__type(value, __u8);
} ml_listeners_v1 SEC(".maps");

/* The registry of live listeners (struct ml_listener_key). A SOCKHASH rather than a hash of
 * records: the kernel removes a socket from it when the socket closes or stops listening, so a
 * port whose listener is gone is never taken for a listening one. No program is attached to it:
 * a listener in a sockmap keeps its accept path, and the sockets it accepts get their own
 * protocol back (tcp_bpf_clone). The value read from user space is the socket's cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct ml_listener_key);
	__type(value, __u64);
} ml_listener_socks_v1 SEC(".maps");

/* A listener sock_ops saw non-blocking at listen() carries this sock_ops callback flag. The
 * kernel copies a listener's tcp_sock, flags included, into each socket it accepts
 * (sk_clone_lock), so a server end finds its own listener's mode in its own flags. A record in
 * ml_listenmode_v1 would do the same but is cloned into every accepted socket: an allocation
 * and an RCU-delayed free per accepted socket, a cost new connections paid whether spliced or
 * not (docs/datapath.md). The RTO flag only asks for a sock_ops call at a
 * retransmission timeout, which ml_sockops ignores: rare inside a node, and one program run. */
#define ML_LISTENER_NONBLOCKING_CB_FLAG BPF_SOCK_OPS_RTO_CB_FLAG

/* The mode of a blocking listener or one the scan found, on the listener itself; BPF_F_CLONE
 * copies it into every socket it accepts (see struct ml_listener_state). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ml_listener_state);
} ml_listenmode_v1 SEC(".maps");

/* On a connecting socket: the live listener of the cgroup its connect hook found for the
 * destination it connects to (struct ml_server_listener). sock_ops cannot look the registry up
 * itself (a sockhash lookup takes a socket reference, and sock_ops may not release one), so
 * the client end reads the connect hook's answer. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_server_listener);
} ml_srvlistener_v1 SEC(".maps");

/* Whether a listener of the cgroup listens in the namespace `netns_cookie` on `port` now. Each
 * registry lookup takes a reference on the socket it finds; it is dropped at once. Not for
 * sock_ops (see ml_srvlistener_v1). */
static __always_inline int ml_listening(__u64 netns_cookie, __u16 port)
{
	struct ml_listener_key key = {
		.netns_cookie = netns_cookie,
		.port = port,
	};
	struct bpf_sock *sk;

	if (!bpf_map_lookup_elem(&ml_listeners_v1, &key))
		return 0;
	for (__u16 slot = 0; slot < ML_LISTENER_SLOTS; slot++) {
		key.slot = slot;
		sk = bpf_map_lookup_elem(&ml_listener_socks_v1, &key);
		if (sk) {
			bpf_sk_release(sk);
			return 1;
		}
	}
	return 0;
}

#endif /* MESHLANE_LISTENERS_BPF_H */
