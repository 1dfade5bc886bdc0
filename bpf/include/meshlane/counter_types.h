/* Event counters, node-wide and per workload. Shared by the BPF programs and the controller
 * (pinned ABI: layouts and map names never change in place). */
#ifndef MESHLANE_COUNTER_TYPES_H
#define MESHLANE_COUNTER_TYPES_H

#include "meshlane/compiler.h"

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
	ML_CTR_TC_FLOWS_FULL, /* a SYN not steered by tc: ml_tcflows_v3 was full */
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
	/* DNS capture: an app's UDP datagram (send or connect) to port 53 sent to its DNS proxy. */
	ML_CTR_DNS_CAPTURED_UDP,
	/* DNS capture: an app's TCP connect to port 53 sent to its DNS proxy. */
	ML_CTR_DNS_CAPTURED_TCP,
	/* DNS capture: a reply from the DNS proxy shown to the app as from the server it asked. */
	ML_CTR_DNS_REPLIES_REWRITTEN,
	/* DNS capture: a socket that had queries captured addressed another server: replies still
	 * in flight from the earlier one will appear to come from the later (the limit of a
	 * per-socket record; docs/interception.md). */
	ML_CTR_DNS_SERVER_SWITCHED,
	/* A spliced socket's sends went back to the normal stack because its reader spins on its
	 * socket (holds it in recv() with nothing queued, again and again): each redirected send
	 * would wait for that lock, and wake a vCPU for it (meshlane/reader_spin.h). */
	ML_CTR_REDIRECT_READER_SPINNING,
	/* A spliced socket's sends went back to the normal stack because its peer's had: bytes came
	 * to it by TCP. The connection leaves the splice in both directions (meshlane/peer_left.h). */
	ML_CTR_REDIRECT_PEER_LEFT,
	/* A connection to steer to a pod's inbound proxy (daemon.inbound_steering = "sk_lookup")
	 * found no listener on the proxy's inbound port: refused, never handed to the app. */
	ML_CTR_STEERED_NO_PROXY,
	/* Client ends of a short port's connections (counted in sockets_skipped_short too) watched
	 * unspliced as samples, one in ML_USE_SAMPLE_EVERY: their data segments keep the port's
	 * judgement current (meshlane/port_use.h). */
	ML_CTR_SOCKETS_SAMPLED_SHORT,
	ML_CTR_MAX,
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

#define ML_COUNTERS_MAP_NAME "ml_counters_v1"
#define ML_WL_COUNTERS_MAP_NAME "ml_wlcounters_v1"

#endif /* MESHLANE_COUNTER_TYPES_H */
