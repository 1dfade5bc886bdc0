/* Per-port judgement of whether splicing pays (meshlane/port_use.h): what sock_ops and sk_msg
 * do with it. Used by bpf/sockops/sockops.bpf.c only; the per-port map and the decision for a
 * new connection are in port_use_map.bpf.h, which the connect hooks share. */
#ifndef MESHLANE_PORT_USE_BPF_H
#define MESHLANE_PORT_USE_BPF_H

#include "meshlane/port_use_map.bpf.h"

/* On each spliced end until it is judged (struct ml_sock_use). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_use);
} ml_sockuse_v1 SEC(".maps");

/* Starts watching a spliced end of a connection to `port`: its sends (ml_sock_use_sent) and
 * its leaving ESTABLISHED (ml_sock_use_closed, through the state callback) judge it. */
static __always_inline void ml_sock_use_start(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					      const struct ml_listener_key *port)
{
	struct ml_sock_use *use;

	use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!use)
		return;
	use->port = *port;
	use->messages = 0;
	use->judged = 0;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* Counts the end's judgement for its port; the port's first judged end creates its entry. */
static __always_inline void ml_sock_use_judge(struct ml_sock_use *use, int busy)
{
	struct ml_port_use *port = bpf_map_lookup_elem(&ml_portuse_v1, &use->port);
	struct ml_port_use first = {};

	use->judged = 1;
	if (port) {
		ml_port_use_judge(port, busy);
		return;
	}
	/* Two first judgements at once: one of them is lost, as in any racing count. */
	ml_port_use_judge(&first, busy);
	bpf_map_update_elem(&ml_portuse_v1, &use->port, &first, BPF_NOEXIST);
}

/* sk_msg, after a message of this end was redirected. */
static __always_inline void ml_sock_use_sent(struct bpf_sock *sk)
{
	struct ml_sock_use *use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, 0);

	if (!use || use->judged)
		return;
	use->messages++;
	if (ml_sock_use_busy(use->messages))
		ml_sock_use_judge(use, 1);
}

/* sock_ops state callback: the end leaves ESTABLISHED (closes, or its peer did). An end not
 * judged busy by then is short. */
static __always_inline void ml_sock_use_closed(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ml_sock_use *use;

	if (skops->args[0] != BPF_TCP_ESTABLISHED || !sk)
		return;
	use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, 0);
	if (use && !use->judged)
		ml_sock_use_judge(use, 0);
	bpf_sock_ops_cb_flags_set(skops,
				  skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
}

#endif /* MESHLANE_PORT_USE_BPF_H */
