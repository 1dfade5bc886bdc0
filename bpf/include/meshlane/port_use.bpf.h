/* Per-port judgement of whether splicing pays (meshlane/port_use.h): what sock_ops and sk_msg
 * do with it. Used by bpf/sockops/sockops.bpf.c only; the per-port map and the decision for a
 * new connection are in port_use_map.bpf.h, which the connect hooks share. */
#ifndef MESHLANE_PORT_USE_BPF_H
#define MESHLANE_PORT_USE_BPF_H

#include "meshlane/cb_flags.bpf.h"
#include "meshlane/port_use_map.bpf.h"

/* On each spliced end until it is judged, and on a sample's client end (struct ml_sock_use). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_use);
} ml_sockuse_v1 SEC(".maps");

/* The sock_ops callbacks a sample's client end asks for until both its ends are judged: the
 * state callback (it leaves ESTABLISHED), and the header-option length callback, which the
 * kernel makes at each send() and before each segment the end sends, ACKs included, so that an
 * end whose peer streams to it is judged busy too. The program reserves no room, so no option
 * is ever written. */
#define ML_SAMPLE_CB_FLAGS (BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)

/* Counts one judged end for its port; the port's first judged end creates its entry. */
static __always_inline void ml_port_use_count(const struct ml_listener_key *key, int busy)
{
	struct ml_port_use *port = bpf_map_lookup_elem(&ml_portuse_v1, key);
	struct ml_port_use first = {};

	if (port) {
		ml_port_use_judge(port, busy);
		return;
	}
	/* Two first judgements at once: one of them is lost, as in any racing count. */
	ml_port_use_judge(&first, busy);
	bpf_map_update_elem(&ml_portuse_v1, key, &first, BPF_NOEXIST);
}

/* Starts watching an end of a connection to `port`, with a record in ml_sockuse_v1:
 * - a spliced end (`sample` 0): its sends (ml_sock_use_sent) and its leaving ESTABLISHED
 *   (ml_sock_use_closed, through the state callback) judge it;
 * - the client end of an unspliced connection to a short port taken as a sample
 *   (ml_port_takes_sample): its data segments judge both its ends (ml_sample_watch).
 * Returns whether it is watched (not without memory for its record). */
static __always_inline int ml_sock_use_watch(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					     const struct ml_listener_key *port, __u8 sample)
{
	struct ml_sock_use *use;

	use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!use)
		return 0;
	use->port = *port;
	use->messages = 0;
	use->judged = 0;
	use->sample = sample;
	ml_cb_flags_add(skops, sample ? ML_SAMPLE_CB_FLAGS : BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}

/* Counts one more connection of a short port left unspliced, and says whether it is the one in
 * ML_USE_SAMPLE_EVERY to watch as a sample. Called once per such connection, by its client end. */
static __always_inline int ml_port_takes_sample(const struct ml_listener_key *port)
{
	struct ml_port_use *use = bpf_map_lookup_elem(&ml_portuse_v1, port);
	__u32 skipped;

	if (!use)
		return 0;
	/* Not atomic (a fetching add needs BPF ISA v3): two racing connections may both count the
	 * same number, which only moves a sample by one. */
	skipped = use->skipped;
	use->skipped = skipped + 1;
	return ml_port_use_sampled(skipped);
}

/* sk_msg, after a message of this end was redirected. */
static __always_inline void ml_sock_use_sent(struct bpf_sock *sk)
{
	struct ml_sock_use *use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, 0);

	if (!use || use->judged)
		return;
	use->messages++;
	if (ml_sock_use_busy(use->messages)) {
		use->judged = 1;
		ml_port_use_count(&use->port, 1);
	}
}

/* A sample's client end, at a callback: counts the ends its data segments judge now
 * (ml_sample_judge; `leaving`: it leaves ESTABLISHED, which judges the rest short), and stops
 * the callbacks once both ends are judged. */
static __always_inline void ml_sample_watch(struct bpf_sock_ops *skops, struct ml_sock_use *use,
					    int leaving)
{
	__u8 busy = 0;
	__u8 now;

	now = ml_sample_judge(skops->data_segs_out, skops->data_segs_in, leaving, use->judged,
			      &busy);
	if (now & ML_SAMPLE_CLIENT)
		ml_port_use_count(&use->port, busy & ML_SAMPLE_CLIENT);
	if (now & ML_SAMPLE_SERVER)
		ml_port_use_count(&use->port, busy & ML_SAMPLE_SERVER);
	use->judged |= now;
	if ((use->judged & ML_SAMPLE_BOTH) == ML_SAMPLE_BOTH)
		ml_cb_flags_drop(skops, ML_SAMPLE_CB_FLAGS);
}

/* sock_ops header-option length callback: only a sample's client end asks for it. */
static __always_inline void ml_sample_sending(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ml_sock_use *use;

	if (!sk)
		return;
	use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, 0);
	if (use && use->sample) {
		ml_sample_watch(skops, use, 0);
		return;
	}
	ml_cb_flags_drop(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

/* sock_ops state callback: the end leaves ESTABLISHED (closes, or its peer did). A spliced end
 * not judged busy by then is short; a sample judges its ends from their segments. */
static __always_inline void ml_sock_use_closed(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ml_sock_use *use;

	if (skops->args[0] != BPF_TCP_ESTABLISHED || !sk)
		return;
	use = bpf_sk_storage_get(&ml_sockuse_v1, sk, 0, 0);
	if (use && use->sample) {
		ml_sample_watch(skops, use, 1);
		return;
	}
	if (use && !use->judged) {
		use->judged = 1;
		ml_port_use_count(&use->port, 0);
	}
	ml_cb_flags_drop(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
}

#endif /* MESHLANE_PORT_USE_BPF_H */
