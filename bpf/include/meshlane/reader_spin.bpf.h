/* Spinning readers (meshlane/reader_spin.h): the map, and what sk_msg does with it. Used by
 * bpf/sockops/sockops.bpf.c only. */
#ifndef MESHLANE_READER_SPIN_BPF_H
#define MESHLANE_READER_SPIN_BPF_H

#include "meshlane/reader_spin.h"
#include "meshlane/reader_spin_types.h"

/* On a spliced socket from its first send that found the reader spinning until it is judged
 * (struct ml_reader_spin): most sockets never get one. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_reader_spin);
} ml_readerspin_v2 SEC(".maps");

/* One redirected send of `sk`, which found its reader spinning or not; `per_mille`: the share
 * of spinning sends that makes the socket leave. Returns 1 when the socket's later sends should
 * take the normal stack. */
static __always_inline int ml_reader_spin_sent(struct bpf_sock *sk, int spinning, __u32 per_mille)
{
	struct ml_reader_spin *spin;
	enum ml_spin_verdict verdict;

	spin = bpf_sk_storage_get(&ml_readerspin_v2, sk, 0,
				  spinning ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!spin)
		return 0;
	verdict = ml_reader_spin_judge(spin, spinning, per_mille);
	if (verdict != ML_SPIN_COUNTING)
		bpf_sk_storage_delete(&ml_readerspin_v2, sk);
	return verdict == ML_SPIN_LEAVE_SPLICE;
}

#endif /* MESHLANE_READER_SPIN_BPF_H */
