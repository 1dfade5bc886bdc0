// SPDX-License-Identifier: GPL-2.0
/* Local TCP splicing: sock_ops puts every established socket of the attached cgroup into a
 * sockhash and records its peer's key; sk_msg redirects each send straight into the peer
 * socket's receive queue, skipping the TCP/IP stack. Anything that cannot be spliced keeps
 * using the normal stack. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "meshlane/counters.bpf.h"
#include "meshlane/events.bpf.h"
#include "meshlane/intercept.h"
#include "meshlane/kernel_defs.bpf.h"
#include "meshlane/maps.bpf.h"
#include "meshlane/orig_dst.bpf.h"
#include "meshlane/peer_left.h"
#include "meshlane/port_use.bpf.h"
#include "meshlane/reader_spin.bpf.h"
#include "meshlane/sock_key.h"
#include "meshlane/splice.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set at load time from the config. */
const volatile __u8 accelerate = 1;
/* Non-zero when acceleration.include_ports is non-empty: only listed ports are spliced. */
const volatile __u8 port_include_mode = 0;
/* acceleration.splice_blocking_sockets. Off by default: the kernel's sockmap receive path
 * (tcp_bpf_recvmsg) can return EAGAIN to a *blocking* recv() when the reader is woken without
 * data, which breaks applications that use blocking sockets. See docs/datapath.md. */
const volatile __u8 splice_blocking_sockets = 0;

/* acceleration.max_unread_bytes: a spliced socket whose reader has more than this many
 * redirected bytes unread goes back to the normal stack, where TCP's flow control holds the
 * sender back. Redirected bytes are charged to the reader but not held to its receive buffer,
 * so without a limit a fast sender can fill the kernel's TCP memory and get ENOMEM. 0 (the
 * default): no limit, and the check below is dead code. */
const volatile __u32 max_unread_bytes = 0;

/* acceleration.leave_spinning_readers: a spliced socket whose reader keeps spinning on its
 * socket sends by the normal stack from then on (meshlane/reader_spin.h). */
const volatile __u8 leave_spinning_readers = 1;
/* acceleration.spinning_reader_per_mille: of 1,000 redirected sends, how many must find the
 * reader spinning for the socket to leave (meshlane/reader_spin.h). */
const volatile __u32 spinning_reader_per_mille = ML_SPIN_DEFAULT_PER_MILLE;

/* Whether the connect hooks run (interception is supported): they tell each client end which
 * live listener its connection reaches (ml_srvlistener_v1). Without them (degraded) a client
 * end goes by the listener filter ml_listeners_v1 alone, whose entries outlive their listeners. */
const volatile __u8 connect_hooks = 1;

/* acceleration.adaptive_splicing: a server port whose spliced connections carry only a few
 * messages each stops splicing its new ones (meshlane/port_use.h). */
const volatile __u8 adaptive_splicing = 1;

/* daemon.inbound_steering = "sk_lookup": connections from off the node are handed to the
 * inbound proxy's listener at the socket lookup (ml_sk_lookup) instead of rewritten by tc. */
const volatile __u8 steer_by_lookup = 0;

/* Tests only (MESHLANE_TEST_VERIFIER_REJECT=1): makes ml_sk_msg a program the verifier
 * rejects, to test how meshlaned reports a rejection and that it then changes nothing. Zero in
 * every real load, where the branch below is dead code that the verifier drops. */
const volatile __u8 test_verifier_reject = 0;

/* Whether the application reads this socket non-blocking, from the file's O_NONBLOCK. */
static __always_inline enum ml_socket_mode socket_mode_of(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct socket *sock;
	struct file *file;

	if (!tp)
		return ML_SOCKET_MODE_UNKNOWN;
	sock = tp->inet_conn.icsk_inet.sk.sk_socket;
	if (!sock)
		return ML_SOCKET_MODE_UNKNOWN;
	file = sock->file;
	if (!file)
		return ML_SOCKET_MODE_UNKNOWN;
	return (file->f_flags & ML_O_NONBLOCK) ? ML_SOCKET_MODE_NONBLOCKING :
						 ML_SOCKET_MODE_BLOCKING;
}

/* An accepted connection has no file yet when it is established, so the mode of the listener
 * that accepts it stands in for its own. Each listener passes on its own mode, so listeners
 * sharing a port (IPv4 and IPv6-only, an SO_REUSEPORT group) never stand in for each other:
 * - a non-blocking one is marked in its sock_ops flags, which the kernel copies into each
 *   socket it accepts (ML_LISTENER_NONBLOCKING_CB_FLAG): no allocation per connection;
 * - a blocking one gets a record in its own storage, cloned into each socket it accepts
 *   (ml_listenmode_v1, BPF_F_CLONE), so that a later scan, which reads the file's mode now,
 *   finds it known and never marks it non-blocking.
 * A listen() again (a new backlog) updates both to the mode of that moment. Only the splice
 * decision reads the mode, so with acceleration off neither is kept. */
static __always_inline void mark_listener_mode(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					       __u8 mode)
{
	__u32 flags = skops->bpf_sock_ops_cb_flags;
	__u32 marked = mode == ML_SOCKET_MODE_NONBLOCKING ?
			       flags | ML_LISTENER_NONBLOCKING_CB_FLAG :
			       flags & ~(__u32)ML_LISTENER_NONBLOCKING_CB_FLAG;
	struct ml_listener_state *state;
	__u64 create = 0;

	if (marked != flags)
		bpf_sock_ops_cb_flags_set(skops, marked);
	/* A non-blocking listener keeps a record only if it has one already (from a scan, or an
	 * older build), brought up to date so that the two never disagree. */
	if (mode != ML_SOCKET_MODE_NONBLOCKING)
		create = BPF_SK_STORAGE_GET_F_CREATE;
	state = bpf_sk_storage_get(&ml_listenmode_v1, sk, 0, create);
	if (state) {
		state->mode = mode;
		state->source = ML_LISTENER_FROM_LISTEN;
	}
}

static __always_inline void record_listener(struct bpf_sock_ops *skops)
{
	struct ml_listener_key key = {
		.netns_cookie = bpf_get_netns_cookie(skops),
		.port = (__u16)skops->local_port,
	};
	struct bpf_sock *sk = skops->sk;
	__u8 mode = ML_SOCKET_MODE_UNKNOWN;

	if (sk)
		mode = socket_mode_of(sk);
	if (sk && accelerate)
		mark_listener_mode(skops, sk, mode);
	bpf_map_update_elem(&ml_listeners_v1, &key, &mode, BPF_ANY);
	/* The first free slot of its namespace and port. With all ML_LISTENER_SLOTS taken the
	 * port stays known by the others; it only goes unseen if they all close first. */
	for (__u16 slot = 0; slot < ML_LISTENER_SLOTS; slot++) {
		key.slot = slot;
		if (bpf_sock_hash_update(skops, &ml_listener_socks_v1, &key, BPF_NOEXIST) == 0)
			return;
	}
	ml_count(ML_CTR_LISTENERS_UNREGISTERED, 1);
}

static __always_inline int reader_may_block(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					    int active)
{
	struct ml_listener_state *listener;

	if (splice_blocking_sockets)
		return 0;
	if (active)
		return socket_mode_of(sk) != ML_SOCKET_MODE_NONBLOCKING;
	/* Inherited from the listener that accepted this socket (record_listener). */
	if (skops->bpf_sock_ops_cb_flags & ML_LISTENER_NONBLOCKING_CB_FLAG)
		return 0;
	/* Cloned from that listener: blocking, or found by the scan; absent when the listener was
	 * opened before the datapath and the scan has not recorded it (unknown: not spliced). */
	listener = bpf_sk_storage_get(&ml_listenmode_v1, sk, 0, 0);
	return !listener || listener->mode != ML_SOCKET_MODE_NONBLOCKING;
}

static __always_inline __u8 port_rule(__u16 port)
{
	__u8 *rule = bpf_map_lookup_elem(&ml_ports_v1, &port);

	return rule ? *rule : 0;
}

/* Exclusion wins over inclusion; in include mode a connection needs one listed end. */
static __always_inline int ports_allow_splice(__u16 local_port, __u16 remote_port)
{
	__u8 local_rule = port_rule(local_port);
	__u8 remote_rule = port_rule(remote_port);

	if (local_rule == ML_PORT_EXCLUDE || remote_rule == ML_PORT_EXCLUDE)
		return 0;
	if (port_include_mode)
		return local_rule == ML_PORT_INCLUDE || remote_rule == ML_PORT_INCLUDE;
	return 1;
}

static __always_inline void read_fields(struct bpf_sock_ops *skops, struct ml_sock_fields *f)
{
	f->family = skops->family;
	f->local_ip4 = skops->local_ip4;
	f->remote_ip4 = skops->remote_ip4;
	f->local_ip6[0] = skops->local_ip6[0];
	f->local_ip6[1] = skops->local_ip6[1];
	f->local_ip6[2] = skops->local_ip6[2];
	f->local_ip6[3] = skops->local_ip6[3];
	f->remote_ip6[0] = skops->remote_ip6[0];
	f->remote_ip6[1] = skops->remote_ip6[1];
	f->remote_ip6[2] = skops->remote_ip6[2];
	f->remote_ip6[3] = skops->remote_ip6[3];
	f->local_port = skops->local_port;
	f->remote_port = skops->remote_port;
	f->snd_una = skops->snd_una;
	f->rcv_nxt = skops->rcv_nxt;
	f->netns_cookie = bpf_get_netns_cookie(skops);
}

/* Node-wide and for the workload whose namespace the socket lives in. */
static __always_inline void count_socket(__u64 netns_cookie, __u32 counter)
{
	ml_count(counter, 1);
	ml_count_workload(netns_cookie, counter, 1);
}

/* Each spliced connection is counted once, by its client end, under its hop kind. */
static __always_inline void count_spliced_hop(__u64 netns_cookie, __u8 hop)
{
	switch (hop) {
	case ML_HOP_APP_TO_PROXY:
		count_socket(netns_cookie, ML_CTR_SPLICED_APP_PROXY);
		break;
	case ML_HOP_PROXY_TO_PROXY:
		count_socket(netns_cookie, ML_CTR_SPLICED_PROXY_PROXY);
		break;
	case ML_HOP_PROXY_TO_APP:
		count_socket(netns_cookie, ML_CTR_SPLICED_PROXY_APP);
		break;
	case ML_HOP_FAST_PATH:
		count_socket(netns_cookie, ML_CTR_SPLICED_FAST_PATH);
		break;
	default:
		count_socket(netns_cookie, ML_CTR_SPLICED_OTHER);
		break;
	}
}

/* Acceleration turned off for the socket's workload, or for one of the connection's ports. */
static __always_inline int workload_refuses_splice(__u64 netns_cookie, __u16 local_port,
						   __u16 remote_port)
{
	struct ml_workload *wl = bpf_map_lookup_elem(&ml_workloads_v1, &netns_cookie);
	struct ml_port_rule_key key = { .direction = ML_DIR_ACCEL };
	__u8 *rule;

	if (!wl)
		return 0;
	if (wl->flags & ML_WL_NO_ACCEL)
		return 1;
	if (!(wl->flags & ML_WL_ACCEL_PORT_RULES))
		return 0;
	key.workload_id = wl->id;
	key.port = local_port;
	rule = bpf_map_lookup_elem(&ml_portrules_v1, &key);
	if (rule && *rule == ML_RULE_EXCLUDE)
		return 1;
	key.port = remote_port;
	rule = bpf_map_lookup_elem(&ml_portrules_v1, &key);
	return rule && *rule == ML_RULE_EXCLUDE;
}

/* The client end of an intercepted connection files its original destination under the
 * connection's tuple as its SYN leaves: TCP_CONNECT_CB runs inside connect(), right after the
 * connect hook made sure ml_origdst_v2 had room. The server end takes it (take_orig_dst). */
static __always_inline void file_orig_dst(struct bpf_sock_ops *skops)
{
	struct ml_orig_dst_entry entry = {};
	struct ml_sock_fields fields = {};
	struct ml_sock_key self = {}, peer = {};
	struct ml_flow_key flow = {};
	struct bpf_sock *sk = skops->sk;
	struct ml_sock_state *state;

	if (!sk)
		return;
	state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, 0);
	if (!state || !state->has_orig_dst)
		return;
	read_fields(skops, &fields);
	if (ml_build_keys(&fields, &self, &peer) != 0)
		return;
	ml_flow_key_from_client(&self, &flow);
	entry.dst = state->orig_dst;
	entry.filed_ns = bpf_ktime_get_coarse_ns();
	if (bpf_map_update_elem(&ml_origdst_v2, &flow, &entry, BPF_ANY) != 0) {
		count_socket(fields.netns_cookie, ML_CTR_ORIG_DST_FILE_FAILED);
		return;
	}
	/* Until established, watch for the connect failing (refused, timed out, closed): its entry
	 * is then removed at once instead of waiting for the controller's sweep. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A connect that failed before it was established takes its original destination back. */
static __always_inline void forget_orig_dst(struct bpf_sock_ops *skops)
{
	struct ml_sock_fields fields = {};
	struct ml_sock_key self = {}, peer = {};
	struct ml_flow_key flow = {};

	if (skops->args[0] != BPF_TCP_SYN_SENT || skops->args[1] != BPF_TCP_CLOSE)
		return;
	read_fields(skops, &fields);
	if (ml_build_keys(&fields, &self, &peer) != 0)
		return;
	ml_flow_key_from_client(&self, &flow);
	bpf_map_delete_elem(&ml_origdst_v2, &flow);
}

/* Established: the state changes of the rest of the connection's life are of no interest. */
static __always_inline void stop_watching_connect(struct bpf_sock_ops *skops)
{
	if (skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG)
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
							 ~BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A connection that the socket lookup handed to a pod's inbound proxy, counted and reported once
 * it is established: the lookup also runs for stray packets of connections already gone (a
 * late ACK or RST to a closed port), which reach the proxy's listener only to be reset, and
 * must not count as steered. */
static __always_inline void count_lookup_steered(const struct ml_sock_key *self)
{
	struct ml_workload *wl = ml_pod_of(self->local_ip6);

	if (!wl)
		return;
	ml_count(ML_CTR_INTERCEPT_INBOUND_TC, 1);
	ml_count_workload(wl->netns_cookie, ML_CTR_INTERCEPT_INBOUND_TC, 1);
	ml_emit_tc_steered(self->remote_ip6, self->remote_port, self->local_ip6, self->local_port,
			   wl);
}

/* The original destination filed for the connection of this server end (file_orig_dst), or NULL;
 * `flow` gets its key. */
static __always_inline struct ml_orig_dst_entry *filed_orig_dst(const struct ml_sock_key *self,
								struct ml_flow_key *flow)
{
	ml_flow_key_from_server(self, flow);
	return bpf_map_lookup_elem(&ml_origdst_v2, flow);
}

/* The server end takes the original destination filed for its connection into its own socket
 * storage, where getsockopt answers from for as long as the socket lives (a proxy may ask
 * twice); the map then only holds handshakes in flight. */
static __always_inline void take_orig_dst(struct ml_sock_state *state,
					  const struct ml_orig_dst_entry *entry,
					  const struct ml_flow_key *flow)
{
	state->orig_dst = entry->dst;
	state->has_orig_dst = 1;
	bpf_map_delete_elem(&ml_origdst_v2, flow);
}

/* Whether tc steered this connection into a pod's inbound proxy: the connection came from off
 * the node or from a process that is not a workload's, and its server end is the proxy's
 * socket, never a spliced one. This end is the pod's (the proxy's accepted socket) or the
 * client's (a process of the cgroup in a namespace that is not a workload, e.g. a node agent
 * probing a pod: its connect hook intercepted nothing and the listener it found is the app's,
 * which tc bypasses). Its flow was filed at the SYN, before either end was established. A client
 * whose connect hook sent it to a proxy or on the fast path (hop) is never steered. */
static __always_inline int steered_by_tc(const struct ml_sock_key *self, int active, __u8 hop)
{
	struct ml_tc_flow_key key = {};
	struct ml_tc_flow *flow;

	if (active) {
		if (hop != ML_HOP_OTHER ||
		    !ml_tc_port_may_have_flow(ML_TC_PORTS_APP, self->remote_port))
			return 0;
		ml_ip6_copy(key.remote_ip6, self->local_ip6);
		ml_ip6_copy(key.local_ip6, self->remote_ip6);
		key.remote_port = self->local_port;
	} else {
		if (!ml_tc_port_may_have_flow(ML_TC_PORTS_INBOUND, self->local_port))
			return 0;
		ml_ip6_copy(key.remote_ip6, self->remote_ip6);
		ml_ip6_copy(key.local_ip6, self->local_ip6);
		key.remote_port = self->remote_port;
	}
	flow = bpf_map_lookup_elem(&ml_tcflows_v3, &key);
	if (!flow)
		return 0;
	/* The client sees the app port, the proxy its inbound port. */
	return active ? flow->orig_port == self->remote_port :
			flow->inbound_port == self->local_port;
}

/* The same for connections steered at the socket lookup (ml_sk_lookup), which keep their
 * addresses and ports: the proxy's accepted socket took an original destination that is its own
 * local address (a connect hook's redirect always changes the port), and a client end of the
 * cgroup finds the one ml_sk_lookup filed for its connection, which the server end takes only
 * once this end is established. */
static __always_inline int steered_by_lookup(const struct ml_sock_key *self, int active,
					     const struct ml_sock_state *state)
{
	struct ml_flow_key flow = {};

	if (!active)
		return state->has_orig_dst && state->orig_dst.port == self->local_port &&
		       ml_ip6_equal(state->orig_dst.ip6, self->local_ip6);
	if (state->hop != ML_HOP_OTHER)
		return 0;
	ml_flow_key_from_client(self, &flow);
	return bpf_map_lookup_elem(&ml_origdst_v2, &flow) != NULL;
}

/* What server_may_splice found out about a client end's server end. */
enum ml_server_reach {
	ML_SERVER_OUT = 0, /* not a spliced socket of this node */
	ML_SERVER_MAY_SPLICE, /* may be one: adaptive splicing judges the port next */
	ML_SERVER_JUDGED, /* may be one, and the connect hook already judged the port */
};

/* Whether this client end's connect found a live listener of the cgroup in the namespace
 * `netns_cookie` on `port` (the connect hook's answer, ml_srvlistener_v1; enum
 * ml_server_reach). `asked` is set when the answer was the connect hook's, which gives none to a
 * connection it kept unspliced as short. */
static __always_inline int connected_to_listener(struct bpf_sock *sk, __u64 netns_cookie,
						 __u16 port, int *asked)
{
	struct ml_listener_key filter = {
		.netns_cookie = netns_cookie,
		.port = port,
	};
	struct ml_server_listener *found;

	if (!connect_hooks)
		return bpf_map_lookup_elem(&ml_listeners_v1, &filter) ? ML_SERVER_MAY_SPLICE :
									ML_SERVER_OUT;
	*asked = 1;
	found = bpf_sk_storage_get(&ml_srvlistener_v1, sk, 0, 0);
	if (!found || found->netns_cookie != netns_cookie || found->port != port)
		return ML_SERVER_OUT;
	return found->judged ? ML_SERVER_JUDGED : ML_SERVER_MAY_SPLICE;
}

/* Whether the server end of this client's connection can be a spliced socket of this node: a
 * live listener of this cgroup on the server port, in this namespace (for a loopback address
 * or this namespace's own address) or in the namespace of the configured workload that owns
 * the address; or this sidecarless workload's node proxy. Anything else (off the node, outside
 * the cgroup) would only ever send this socket bytes by TCP, and on a sockhash member the
 * kernel's FIONREAD counts only redirected bytes: it would read 0 while recv() has data. */
static __always_inline int server_may_splice(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					     const struct ml_sock_key *self, __u8 hop,
					     struct ml_listener_key *server, int *asked)
{
	__u64 netns_cookie = bpf_get_netns_cookie(skops);
	struct ml_ip_key ip = {};
	struct ml_workload *wl;

	server->port = self->remote_port;
	if (ml_ip6_is_loopback(self->remote_ip6) ||
	    ml_ip6_equal(self->remote_ip6, self->local_ip6)) {
		server->netns_cookie = netns_cookie;
		return connected_to_listener(sk, netns_cookie, self->remote_port, asked);
	}
	ml_ip6_copy(ip.ip6, self->remote_ip6);
	wl = bpf_map_lookup_elem(&ml_pod_ips_v1, &ip);
	if (wl) {
		/* A pod's address: its server must listen from inside the cgroup too. A fast-path
		 * connect was only sent there because its hook found that listener (the fast path's
		 * own condition), so it leaves no separate answer to read. */
		server->netns_cookie = wl->netns_cookie;
		if (hop == ML_HOP_FAST_PATH)
			return ML_SERVER_MAY_SPLICE;
		return connected_to_listener(sk, wl->netns_cookie, self->remote_port, asked);
	}
	/* A sidecarless workload's connection to its node proxy, whose namespace is not known
	 * here: its port is not judged (server->netns_cookie stays 0). */
	wl = bpf_map_lookup_elem(&ml_workloads_v1, &netns_cookie);
	if (wl && (wl->flags & ML_WL_NODE_PROXY) &&
	    ml_ip6_equal(self->remote_ip6, wl->node_proxy_ip6))
		return ML_SERVER_MAY_SPLICE;
	return ML_SERVER_OUT;
}

/* The event type a splice skip is reported as: blocking and short had their own types first. */
static __always_inline __u32 skip_event_type(__u8 reason)
{
	if (reason == ML_SKIP_BLOCKING)
		return ML_EVENT_SKIPPED_BLOCKING;
	if (reason == ML_SKIP_SHORT)
		return ML_EVENT_SKIPPED_SHORT;
	return ML_EVENT_SKIPPED;
}

/* The rule that keeps this socket out of the sockhash (enum ml_skip_reason, counted here; the
 * caller emits the event), or 0 when it may join. Decides only: `state` may be a scratch copy.
 * `server` gets the server's namespace and port, for judging whether the port's connections are
 * worth splicing (netns_cookie 0: not known, the node proxy); a server end's `pairing` gets the
 * entry its client end filed. */
static __always_inline int splice_skip_reason(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					      const struct ml_sock_fields *fields,
					      const struct ml_sock_key *self,
					      const struct ml_sock_state *state, int active,
					      struct ml_listener_key *server,
					      struct ml_pairing *pairing)
{
	struct ml_pairing *filed = NULL;
	int reach = ML_SERVER_OUT;
	int asked = 0;

	if (!accelerate)
		return ML_SKIP_ACCEL_OFF;
	if (steer_by_lookup ? steered_by_lookup(self, active, state) :
			      steered_by_tc(self, active, state->hop))
		return ML_SKIP_STEERED;
	if (!ports_allow_splice(self->local_port, self->remote_port)) {
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_PORT);
		return ML_SKIP_PORT;
	}
	if (workload_refuses_splice(fields->netns_cookie, self->local_port, self->remote_port)) {
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_WORKLOAD);
		return ML_SKIP_WORKLOAD;
	}
	if (reader_may_block(skops, sk, active)) {
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_BLOCKING);
		return ML_SKIP_BLOCKING;
	}
	if (active) {
		reach = server_may_splice(skops, sk, self, state->hop, server, &asked);
	} else {
		filed = bpf_map_lookup_elem(&ml_pairing_v2, &state->peer);
		server->netns_cookie = fields->netns_cookie;
		server->port = self->local_port;
	}
	/* An intercepted connection is judged by the port its application asked for: a sidecar's
	 * ports (15001, 15006) carry the connections of every service, short and long. Both ends
	 * know it (the client from its connect hook, the server from take_orig_dst). */
	if (state->has_orig_dst)
		server->port = state->orig_dst.port;
	if (active ? reach == ML_SERVER_OUT : !filed) {
		/* The connect hook gives no answer to a connection it keeps unspliced because its
		 * port's connections are short (note_server_listener): that one is skipped as short.
		 * (A port found short whose listener has gone since counts so too.) */
		if (asked && adaptive_splicing && server->netns_cookie &&
		    ml_port_is_short(server)) {
			count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_SHORT);
			return ML_SKIP_SHORT;
		}
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_PEER);
		return ML_SKIP_PEER;
	}
	if (filed)
		*pairing = *filed;
	/* Decided by the client end only, here or at its connect hook (ML_SERVER_JUDGED): its
	 * server end then finds no pairing entry and stays out too (counted in
	 * sockets_skipped_peer). */
	if (adaptive_splicing && active && reach != ML_SERVER_JUDGED && server->netns_cookie &&
	    ml_port_is_short(server)) {
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_SHORT);
		return ML_SKIP_SHORT;
	}
	return 0;
}

/* Puts this socket, which splice_skip_reason let in, into the sockhash; `state` is its own
 * storage. Returns 0 when it did, ML_SKIP_PEER when the client's first send came first (a
 * server end), or -1 when the sockhash refused it (counted and reported here).
 * Both ends must be spliced or neither: a sockhash member that receives bytes by TCP has a
 * FIONREAD of 0. The client end, established first, files its key in ml_pairing_v2; the
 * server end joins only if it takes that entry, and the client's first send takes it instead
 * when the server end is not established yet (that send then goes by TCP). */
static __always_inline int splice_join(struct bpf_sock_ops *skops, struct bpf_sock *sk,
				       const struct ml_sock_fields *fields,
				       const struct ml_sock_key *self, struct ml_sock_state *state,
				       int active, const struct ml_listener_key *server,
				       const struct ml_pairing *filed)
{
	struct ml_pairing pairing = {
		.client_netns_cookie = fields->netns_cookie,
		.hop = state->hop,
	};
	long err;

	err = bpf_sock_hash_update(skops, &ml_sockhash_v1, (void *)self, BPF_ANY);
	if (err != 0) {
		count_socket(fields->netns_cookie, ML_CTR_SOCKETS_ADD_FAILED);
		ml_emit_socket(ML_EVENT_MAP_FULL, self, fields->netns_cookie, active, state->hop,
			       (int)err, ML_SKIP_NONE, state);
		return -1;
	}
	if (active) {
		if (bpf_map_update_elem(&ml_pairing_v2, self, &pairing, BPF_ANY) != 0) {
			bpf_map_delete_elem(&ml_sockhash_v1, (void *)self);
			count_socket(fields->netns_cookie, ML_CTR_SOCKETS_ADD_FAILED);
			return -1;
		}
		state->pairing = 1;
	} else {
		if (bpf_map_delete_elem(&ml_pairing_v2, &state->peer) != 0) {
			/* The client's first send took the entry between the lookup and the insert: it
			 * went by TCP. This end was in the sockhash for no byte; it leaves again. */
			bpf_map_delete_elem(&ml_sockhash_v1, (void *)self);
			count_socket(fields->netns_cookie, ML_CTR_SOCKETS_SKIPPED_PEER);
			return ML_SKIP_PEER;
		}
		/* Both ends are in: the connection is spliced. Counted once, here, under the client
		 * end's hop kind and workload. This end's sends are of the same kind. */
		count_spliced_hop(filed->client_netns_cookie, filed->hop);
		state->hop = filed->hop;
	}
	if (adaptive_splicing && server->netns_cookie)
		ml_sock_use_watch(skops, sk, server, 0);
	return 0;
}

static __always_inline void add_established(struct bpf_sock_ops *skops, int active)
{
	struct ml_sock_state scratch = {};
	struct ml_sock_fields fields = {};
	struct ml_sock_key self = {};
	struct ml_listener_key server = {};
	struct ml_pairing filed = {};
	struct ml_orig_dst_entry *orig = NULL;
	struct ml_flow_key flow = {};
	struct ml_sock_state *state;
	struct bpf_sock *sk = skops->sk;
	int stored = 1;
	int skipped;

	if (!sk)
		return;
	read_fields(skops, &fields);
	if (ml_build_keys(&fields, &self, &scratch.peer) != 0)
		return;
	if (!active)
		orig = filed_orig_dst(&self, &flow);
	/* Storage is kept only where something reads it later: a client end whose connect hook
	 * recorded a hop kind or an original destination has it already, a server end with an
	 * original destination (getsockopt) gets it here, and any other end only if it joins the
	 * sockhash (sk_msg). The ends that stay unspliced then cost no allocation and no
	 * RCU-delayed free. Without memory for an original destination the end is left as it
	 * is: the entry stays for getsockopt. */
	state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, orig ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!state) {
		if (orig)
			return;
		state = &scratch;
		stored = 0;
	}
	state->peer = scratch.peer;
	if (orig) {
		take_orig_dst(state, orig, &flow);
		if (steer_by_lookup && steered_by_lookup(&self, active, state))
			count_lookup_steered(&self);
	}
	state->fallback = 1;
	skipped = splice_skip_reason(skops, sk, &fields, &self, state, active, &server, &filed);
	if (skipped == 0 && !stored) {
		state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!state) {
			count_socket(fields.netns_cookie, ML_CTR_SOCKETS_ADD_FAILED);
			state = &scratch;
			skipped = -1;
		} else {
			*state = scratch;
		}
	}
	if (skipped == 0)
		skipped = splice_join(skops, sk, &fields, &self, state, active, &server, &filed);
	if (skipped == ML_SKIP_SHORT && ml_port_takes_sample(&server) &&
	    ml_sock_use_watch(skops, sk, &server, 1))
		count_socket(fields.netns_cookie, ML_CTR_SOCKETS_SAMPLED_SHORT);
	if (skipped > 0)
		ml_emit_socket(skip_event_type((__u8)skipped), &self, fields.netns_cookie, active,
			       state->hop, 0, (__u8)skipped, state);
	if (skipped != 0) {
		if (!active) {
			/* The client end may be in the sockhash, waiting for this end: it leaves, or
			 * it would receive every byte by TCP. Nothing was redirected to it (only this
			 * socket could), so nothing queued is lost. Its pairing entry goes too, unless
			 * this end was skipped for finding none (ML_SKIP_PEER: the lookup, or the
			 * delete in splice_join, came up empty): deleting from an LRU hash takes
			 * its locks even for a key that is not there. */
			bpf_map_delete_elem(&ml_sockhash_v1, &scratch.peer);
			if (skipped != ML_SKIP_PEER)
				bpf_map_delete_elem(&ml_pairing_v2, &scratch.peer);
		}
		return;
	}
	state->fallback = 0;
	count_socket(fields.netns_cookie, ML_CTR_SOCKETS_ADDED);
	ml_emit_socket(ML_EVENT_SPLICED, &self, fields.netns_cookie, active, state->hop, 0,
		       ML_SKIP_NONE, state);
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		file_orig_dst(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		forget_orig_dst(skops);
		ml_sock_use_closed(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		stop_watching_connect(skops);
		add_established(skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		add_established(skops, 0);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		record_listener(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		ml_sample_sending(skops);
		break;
	default:
		break;
	}
	return 1;
}

/* Kernel 6.2+ kfuncs; resolved to NULL on older kernels, where the limit is not enforced. */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* The low bits of sk_user_data are flags (SK_USER_DATA_NOCOPY, _BPF, _PSOCK). */
#define ML_SK_USER_DATA_FLAGS 7UL

/* The kernel's sk_msg behind `md`, whose sockets the checks below read; NULL on kernels before
 * 6.2, which lack the kfuncs (the checks are then off). */
static __always_inline struct sk_msg *kernel_msg(struct sk_msg_md *md)
{
	if (!bpf_cast_to_kern_ctx || !bpf_rdonly_cast)
		return 0;
	return bpf_cast_to_kern_ctx(md);
}

/* The socket this message was just redirected to; NULL when the kernel cannot tell us what its
 * reader has left unread, which is all the callers want to know. */
static __always_inline struct sock *redirect_target(struct sk_msg *msg)
{
	if (!msg || !bpf_core_field_exists(struct sk_psock, msg_tot_len))
		return 0;
	return msg->sk_redir;
}

/* Redirected bytes that `target` (from redirect_target), a sockhash member, has not read yet:
 * its psock's ingress queue (msg_tot_len, what FIONREAD reports on a sockhash member). */
static __always_inline __u32 redirected_unread(struct sock *target)
{
	struct sk_psock *psock;
	unsigned long data;

	data = (unsigned long)target->sk_user_data & ~ML_SK_USER_DATA_FLAGS;
	if (!data)
		return 0;
	psock = bpf_rdonly_cast((void *)data, bpf_core_type_id_kernel(struct sk_psock));
	return psock->msg_tot_len;
}

/* Whether the reader of `target` (from redirect_target) spins on it: holds the socket (inside
 * recv()) with nothing redirected left to read, so this send will wait for its lock
 * (meshlane/reader_spin.h). */
static __always_inline int reader_spinning(struct sock *target)
{
	return target->sk_lock.owned && redirected_unread(target) == 0;
}

/* Whether the other end's sends left the splice: bytes came to this socket by TCP
 * (meshlane/peer_left.h). Never without the kfuncs (kernel_msg NULL). */
static __always_inline int peer_left_splice(struct sk_msg *msg)
{
	struct tcp_sock *tp;

	if (!msg)
		return 0;
	tp = bpf_rdonly_cast(msg->sk, bpf_core_type_id_kernel(struct tcp_sock));
	return ml_peer_left_splice(tp->bytes_received,
				   tp->inet_conn.icsk_inet.sk.__sk_common.skc_state ==
					   BPF_TCP_CLOSE_WAIT);
}

/* This socket's later sends take the normal stack, for good: counted, and reported to the
 * monitor with the reason and its detail. */
static __always_inline void fall_back(struct ml_sock_state *state, struct sk_msg_md *msg,
				      __u32 counter, __u8 reason, __u32 detail)
{
	state->fallback = 1;
	ml_count(counter, 1);
	ml_emit_fallback(&state->peer, bpf_get_netns_cookie(msg), reason, detail);
}

/* A client's first send: if its pairing entry is still there, the server end is not
 * established yet. Taking the entry makes the server end stay out of the sockhash (and take
 * this end out). Returns 1 when it took the entry: this send and all later ones must then go
 * by TCP. */
static __always_inline int first_send_beats_server(struct ml_sock_state *state)
{
	struct ml_sock_key self = {};

	state->pairing = 0;
	ml_mirror_key(&state->peer, &self);
	return bpf_map_delete_elem(&ml_pairing_v2, &self) == 0;
}

SEC("sk_msg")
int ml_sk_msg(struct sk_msg_md *msg)
{
	struct ml_sock_state *state;
	struct bpf_sock *sk = msg->sk;
	struct sk_msg *kmsg;
	struct sock *target;

	if (test_verifier_reject)
		return *(int *)(long)msg->size; /* a number used as a pointer: rejected */
	if (!sk)
		return SK_PASS;
	state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, 0);
	if (!state || state->fallback)
		return SK_PASS;
	kmsg = kernel_msg(msg);
	if (peer_left_splice(kmsg)) {
		/* Checked before redirecting: this send already takes the normal stack. */
		fall_back(state, msg, ML_CTR_REDIRECT_PEER_LEFT, ML_FALLBACK_PEER_LEFT, msg->size);
		return SK_PASS;
	}
	if (state->pairing && first_send_beats_server(state)) {
		fall_back(state, msg, ML_CTR_REDIRECT_FAILED, ML_FALLBACK_PEER, msg->size);
		return SK_PASS;
	}
	if (bpf_msg_redirect_hash(msg, &ml_sockhash_v1, &state->peer, BPF_F_INGRESS) != SK_PASS) {
		/* Peer not spliced (yet): this and every later send of this socket take the
		 * normal stack, so the peer never reads redirected bytes ahead of queued ones. */
		fall_back(state, msg, ML_CTR_REDIRECT_FAILED, ML_FALLBACK_PEER, msg->size);
		return SK_PASS;
	}
	ml_count(ML_CTR_MESSAGES_REDIRECTED, 1);
	ml_count(ML_CTR_BYTES_REDIRECTED, msg->size);
	if (adaptive_splicing)
		ml_sock_use_sent(sk);
	if (state->hop == ML_HOP_FAST_PATH) {
		ml_count(ML_CTR_FAST_PATH_BYTES, msg->size);
		ml_count_workload(bpf_get_netns_cookie(msg), ML_CTR_FAST_PATH_BYTES, msg->size);
	}
	/* What follows looks at the reader of the socket this message goes to. */
	if (!leave_spinning_readers && !max_unread_bytes)
		return SK_PASS;
	target = redirect_target(kmsg);
	if (!target)
		return SK_PASS;
	if (leave_spinning_readers &&
	    ml_reader_spin_sent(sk, reader_spinning(target), spinning_reader_per_mille)) {
		/* Later sends take the normal stack, whose segments never wait for the reader's
		 * lock; the queued redirected bytes are read first, so the order holds. */
		fall_back(state, msg, ML_CTR_REDIRECT_READER_SPINNING, ML_FALLBACK_READER_SPINNING,
			  msg->size);
		return SK_PASS;
	}
	if (max_unread_bytes) {
		__u32 unread = redirected_unread(target);

		if (unread > max_unread_bytes)
			/* The reader is that far behind: this message is the last one redirected,
			 * later sends take the normal stack and its flow control. The reader gets the
			 * queued redirected bytes before any that arrive by TCP, so the order holds. */
			fall_back(state, msg, ML_CTR_REDIRECT_READER_BEHIND,
				  ML_FALLBACK_READER_BEHIND, unread);
	}
	return SK_PASS;
}
