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

/* The destination an application asked for before interception rewrote it: what
 * SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST answer. */
struct ml_orig_dst {
	__u32 ip6[4]; /* IPv6 or v4-mapped, network byte order */
	__u16 port; /* host byte order */
	__u16 family; /* AF_INET or AF_INET6: the address family the application used */
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
	__u16 pad16;
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
	__u16 pad16;
	__u32 pad32;
};

/* Value of ml_portuse_v1 (key: struct ml_listener_key of the server's namespace and port, slot
 * 0): what the datapath saw of the spliced connections to one server port, to decide whether its
 * next connections are worth splicing (bpf/include/meshlane/port_use.h). Each spliced end counts
 * once: busy when it has sent ML_USE_BUSY_MESSAGES messages, short when it left ESTABLISHED with
 * fewer. Halved when the sum reaches ML_USE_WINDOW_ENDS, so old observations fade. */
struct ml_port_use {
	__u32 busy_ends;
	__u32 short_ends;
	__u32 skipped; /* client ends skipped as short: every ML_USE_SAMPLE_EVERY-th is spliced */
	__u32 pad32;
};

/* Value of ml_sockuse_v1, on a spliced end until it is judged busy or short. */
struct ml_sock_use {
	struct ml_listener_key port; /* the server's namespace and port (slot 0) */
	__u32 messages; /* sent through sk_msg so far */
	__u8 judged; /* counted in ml_portuse_v1 already */
	__u8 pad8[3];
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
 * the mode of exactly the listener that accepted it, and the record dies with its socket. */
struct ml_listener_state {
	__u8 mode; /* enum ml_socket_mode, at listen() or at the scan */
	__u8 source; /* enum ml_listener_source */
	__u16 pad;
};

/* Key and value of ml_tcflows_v2: connections from off the node that tc steers to a pod's
 * inbound proxy. Keyed from the pod's side so both directions find the entry. */
struct ml_tc_flow_key {
	__u32 remote_ip6[4];
	__u32 local_ip6[4]; /* the pod address */
	__u16 remote_port; /* host byte order */
	__u16 pad16;
	__u32 pad32;
};

struct ml_tc_flow {
	__u16 orig_port; /* the app port the client connected to */
	__u16 inbound_port; /* the inbound proxy port it was steered to */
	__u8 fin_in; /* FIN seen from the remote side */
	__u8 fin_out; /* FIN seen from the pod side */
	__u8 acked; /* the client sent a packet after its SYN: the handshake got past the SYN */
	__u8 pad8;
	/* bpf_ktime_get_coarse_ns() at the first SYN: the controller removes flows that are still
	 * not acked long after (SYNs nobody answered, which a plain hash would keep forever). */
	__u64 start_ns;
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
	__u16 pad16;
};

/* Indexes into the per-CPU counter array ml_counters_v1. Append only: renumbering or
 * removing an entry changes the map layout and needs a new map version. */
enum ml_counter {
	ML_CTR_SOCKETS_ADDED = 0,
	ML_CTR_SOCKETS_ADD_FAILED, /* sockhash update failed (map full) */
	ML_CTR_SOCKETS_SKIPPED_PORT, /* excluded by the port include/exclude lists */
	ML_CTR_MESSAGES_REDIRECTED,
	ML_CTR_BYTES_REDIRECTED,
	ML_CTR_REDIRECT_FAILED, /* send went to the normal stack; socket now in fallback */
	ML_CTR_INTERCEPT_OUTBOUND, /* app connect sent to its outbound proxy */
	ML_CTR_INTERCEPT_NODE_PROXY, /* app connect sent to the node-level proxy */
	ML_CTR_INTERCEPT_INBOUND, /* proxy connect sent to a local workload's inbound proxy */
	ML_CTR_INTERCEPT_INBOUND_TC, /* connection from off the node steered by tc */
	ML_CTR_BYPASS_EXCLUDED, /* not intercepted: excluded port or CIDR */
	ML_CTR_BYPASS_PROXY, /* the proxy's own connect, passed untouched */
	ML_CTR_ORIG_DST_ANSWERED, /* SO_ORIGINAL_DST answered */
	ML_CTR_ORIG_DST_UNKNOWN, /* SO_ORIGINAL_DST asked for a connection we did not steer */
	ML_CTR_SPLICED_APP_PROXY, /* connections spliced, by hop kind (counted once each) */
	ML_CTR_SPLICED_PROXY_PROXY,
	ML_CTR_SPLICED_PROXY_APP,
	ML_CTR_SPLICED_OTHER,
	ML_CTR_SOCKETS_SKIPPED_BLOCKING, /* not spliced: the application may read it blocking */
	ML_CTR_DENIED_CONNECT, /* connect refused by L4 policy (EPERM to the caller) */
	ML_CTR_DENIED_INBOUND_TC, /* SYN from off the node or a non-workload dropped by policy */
	ML_CTR_SOCKETS_SKIPPED_WORKLOAD, /* not spliced: acceleration off for the workload or port */
	/* Not intercepted (connect or tc SYN): ml_origdst_v2 was (nearly) full, so the connection
	 * took the normal path to its original destination. */
	ML_CTR_INTERCEPT_SKIPPED_MAP_FULL,
	/* Intercepted, but sock_ops could not file the original destination (the map filled up
	 * between the connect hook's check and the insert): the proxy gets no answer. */
	ML_CTR_ORIG_DST_FILE_FAILED,
	/* A SYN not steered by tc: its flow key (client address and port, pod address) was taken
	 * by a live steered connection to another port of the pod. */
	ML_CTR_TC_FLOW_COLLISIONS,
	ML_CTR_TC_FLOWS_FULL, /* a SYN not steered by tc: ml_tcflows_v2 was full */
	/* A spliced socket went back to the normal stack because its reader had more than
	 * acceleration.max_unread_bytes of redirected bytes unread (back-pressure). */
	ML_CTR_REDIRECT_READER_BEHIND,
	/* Not spliced because the other end is not: a client whose server is not a spliceable
	 * socket of this node (off the node, outside the cgroup), a server whose client is not
	 * spliced or whose first bytes came by TCP. Both ends or neither: a sockhash member that
	 * receives bytes by TCP has a FIONREAD of 0 (the kernel counts only redirected bytes). */
	ML_CTR_SOCKETS_SKIPPED_PEER,
	/* Listening sockets of the cgroup that existed before the datapath was attached (or before
	 * a workload was added) and whose mode the listener scan recorded. */
	ML_CTR_LISTENERS_SCANNED,
	/* App connects that took the fast path (no sidecar), counted for both workloads. */
	ML_CTR_FAST_PATH_CONNECTIONS,
	/* Fast-path connections spliced (both ends in the sockhash), counted once. */
	ML_CTR_SPLICED_FAST_PATH,
	/* Bytes sent over spliced fast-path connections (per-workload: the sender's). */
	ML_CTR_FAST_PATH_BYTES,
	/* Listeners left out of the listener registry (ml_listener_socks_v1): their namespace and
	 * port already had ML_LISTENER_SLOTS listeners registered. */
	ML_CTR_LISTENERS_UNREGISTERED,
	/* Client ends not spliced because their server's port carries short connections: too
	 * few messages per connection to repay a splice (struct ml_port_use). */
	ML_CTR_SOCKETS_SKIPPED_SHORT,
	ML_CTR_MAX,
};

/* Values of the ml_ports_v1 map (key: __u16 port in host byte order). */
enum ml_port_rule {
	ML_PORT_INCLUDE = 1,
	ML_PORT_EXCLUDE = 2,
};

/* ---- L4 authorization policy (ml_policy_v1) -------------------------------------------------
 * The compiled policy is one LPM trie, swapped as a whole through the single slot of the
 * array-of-maps ml_policy_v1: a decision reads the slot once, so it is made entirely by the old
 * policy or entirely by the new one. Every entry kind lives in that one trie (the first data
 * byte is the kind, so kinds never match each other):
 *   ML_POLICY_KIND_NETNS: netns cookie of a workload -> its identity (the connecting side);
 *   ML_POLICY_KIND_IP: address prefix -> identity (workload addresses /128, rule CIDRs);
 *   ML_POLICY_KIND_RULE: (source identity, destination identity, port prefix) -> verdict.
 * An address that matches no ML_POLICY_KIND_IP entry has identity 0 (the world). A pair with
 * no ML_POLICY_KIND_RULE entry for the port gets the default: denied when the source is
 * egress-isolated or the destination ingress-isolated (they have allow rules), else allowed. */
enum ml_policy_kind {
	ML_POLICY_KIND_IP = 1,
	ML_POLICY_KIND_NETNS = 2,
	ML_POLICY_KIND_RULE = 3,
};

#define ML_POLICY_KIND_BITS 32 /* kind byte and its padding, always part of the prefix */
#define ML_POLICY_DATA_BYTES 16

struct ml_policy_key {
	__u32 prefixlen; /* bits of kind..data that must match */
	__u8 kind; /* enum ml_policy_kind */
	__u8 pad[3];
	/* KIND_IP: the address (IPv6 or v4-mapped). KIND_NETNS: the cookie (8 bytes, host order).
	 * KIND_RULE: source identity, destination identity (both big-endian), port (big-endian). */
	__u8 data[ML_POLICY_DATA_BYTES];
};

/* Capacity of one compiled policy trie (entries are allocated as used). */
#define ML_POLICY_MAX_ENTRIES 262144

#define ML_POLICY_ISOLATED_INGRESS (1u << 0) /* only allowed connections may reach it */
#define ML_POLICY_ISOLATED_EGRESS (1u << 1) /* it may only make allowed connections */

enum ml_policy_verdict {
	ML_POLICY_ALLOW = 1,
	ML_POLICY_DENY = 2,
};

struct ml_policy_value {
	__u32 identity; /* KIND_IP, KIND_NETNS */
	__u8 isolation; /* KIND_IP, KIND_NETNS: ML_POLICY_ISOLATED_* of that identity */
	__u8 verdict; /* KIND_RULE: enum ml_policy_verdict */
	__u16 pad;
};

/* Counter maps are sized in slots, not ML_CTR_MAX, so that appending a counter does not
 * change their layout. */
#define ML_COUNTER_SLOTS 48

/* Per-workload counters (ml_wlcounters_v1, per-CPU, keyed by the workload's netns cookie):
 * the same ml_counter indexes as ml_counters_v1. The controller creates an entry for each
 * workload it applies; the programs only count into entries that exist. */
struct ml_wl_counters {
	__u64 value[ML_COUNTER_SLOTS];
};

#define ML_POLICY_MAP_NAME "ml_policy_v1"
#define ML_WL_COUNTERS_MAP_NAME "ml_wlcounters_v1"
/* ---- Monitor events (meshlanectl monitor) ------------------------------------------------
 * The datapath writes one struct ml_event per event into the ring buffer ml_events_v1, but only
 * for the types whose bit (1 << type) the daemon set in ml_monitor_v1[ML_MONITOR_KEY_MASK]: the
 * daemon sets it only while a monitor client is connected, so nobody watching costs one array
 * lookup per event site. See bpf/include/meshlane/events.bpf.h. */
enum ml_event_type {
	ML_EVENT_NONE = 0,
	ML_EVENT_INTERCEPTED, /* a connect rewritten to a proxy, or a SYN steered by tc */
	ML_EVENT_SPLICED, /* a socket added to the sockhash */
	ML_EVENT_DENIED, /* refused by L4 policy (ml_emit_denied*) */
	ML_EVENT_MAP_FULL, /* the sockhash update failed: normal stack */
	ML_EVENT_FALLBACK, /* a send could not be redirected: this socket uses the normal stack */
	ML_EVENT_SKIPPED_BLOCKING, /* not spliced: the application may read it blocking */
	ML_EVENT_SKIPPED_SHORT, /* a client end not spliced: its server port's connections are short */
	ML_EVENT_MAX,
};

/* ml_event.reason for ML_EVENT_INTERCEPTED: which rule sent the connection where. */
enum ml_event_reason {
	ML_REASON_NONE = 0,
	ML_REASON_OUTBOUND, /* app -> its outbound sidecar */
	ML_REASON_NODE_PROXY, /* app -> the node-level proxy */
	ML_REASON_INBOUND_LOCAL, /* proxy -> a local workload's inbound proxy */
	ML_REASON_INBOUND_TC, /* from off the node, steered by tc to the inbound proxy */
	ML_REASON_POLICY, /* ML_EVENT_DENIED */
	ML_REASON_FAST_PATH, /* app -> app on this node, not redirected: the sidecars are skipped */
};

/* ml_event.side for socket events: which end of the connection the socket is. */
#define ML_SIDE_CLIENT 1
#define ML_SIDE_SERVER 2

/* One event. Addresses are IPv6 or v4-mapped, network byte order; ports host byte order.
 * src -> dst is the connection's direction for connect and tc events (src is the client; its
 * address is zero when the socket was not bound yet, its port zero before the connect), and
 * the socket's local -> remote end for socket events. */
struct ml_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 netns_cookie; /* the namespace it happened in (tc: the pod's) */
	__u32 src_ip6[4];
	__u32 dst_ip6[4];
	__u32 orig_dst_ip6[4]; /* INTERCEPTED, DENIED: what the client asked for */
	__u16 src_port;
	__u16 dst_port;
	__u16 orig_dst_port; /* 0 when there is no original destination */
	__u8 type; /* enum ml_event_type */
	__u8 reason; /* enum ml_event_reason */
	__u8 hop; /* enum ml_hop: SPLICED by the client end, INTERCEPTED */
	__u8 side; /* ML_SIDE_* for socket events, 0 otherwise */
	__u16 pad16;
	__u32 workload_id; /* ml_workload.id when the program had it at hand, else 0 */
	__s32 error; /* MAP_FULL: what bpf_sock_hash_update returned (-errno) */
	__u32 detail; /* DENIED: the policy rule; FALLBACK: size of the send that fell back */
};

/* Keys of the array ml_monitor_v1 (value: __u64). */
#define ML_MONITOR_KEY_MASK 0 /* bit (1 << ML_EVENT_*) set: emit that type; daemon-written */
#define ML_MONITOR_KEY_RING_DROPS 1 /* events lost because the ring buffer was full */
#define ML_MONITOR_KEYS 2

#define ML_EVENTS_RING_BYTES (256 * 1024)

#define ML_EVENTS_MAP_NAME "ml_events_v1"
#define ML_MONITOR_MAP_NAME "ml_monitor_v1"

#define ML_COUNTERS_MAP_NAME "ml_counters_v1"
#define ML_SOCKHASH_MAP_NAME "ml_sockhash_v1"
#define ML_PORTS_MAP_NAME "ml_ports_v1"
#define ML_SOCK_STATE_MAP_NAME "ml_sockstate_v1"
#define ML_ORIG_DST_MAP_NAME "ml_origdst_v2"
#define ML_WORKLOADS_MAP_NAME "ml_workloads_v1"
#define ML_POD_IPS_MAP_NAME "ml_pod_ips_v1"
#define ML_PORT_RULES_MAP_NAME "ml_portrules_v1"
#define ML_CIDR_RULES_MAP_NAME "ml_cidrrules_v1"
#define ML_TC_FLOWS_MAP_NAME "ml_tcflows_v2"
#define ML_LISTENERS_MAP_NAME "ml_listeners_v1"
#define ML_LISTENER_SOCKS_MAP_NAME "ml_listener_socks_v1"
#define ML_SERVER_LISTENER_MAP_NAME "ml_srvlistener_v1"
#define ML_LISTEN_MODE_MAP_NAME "ml_listenmode_v1"
#define ML_PAIRING_MAP_NAME "ml_pairing_v2"
#define ML_PORT_USE_MAP_NAME "ml_portuse_v1"
#define ML_SOCK_USE_MAP_NAME "ml_sockuse_v1"
/* Retired layouts (LRU maps) that a start converts into the current ones (map_upgrade.cpp). */
#define ML_ORIG_DST_V1_MAP_NAME "ml_origdst_v1"
#define ML_TC_FLOWS_V1_MAP_NAME "ml_tcflows_v1"

#endif /* MESHLANE_SHARED_H */
