/* Whether a server port's connections are worth splicing, judged from what the datapath saw
 * of its earlier spliced connections (struct ml_port_use), over plain values so host tests can
 * drive it.
 *
 * Splicing a connection costs a psock on each end, set up when it is established and torn down
 * when it closes; it pays back a little on every message. A connection that carries one request
 * and one response pays the cost and gets almost nothing back: measured on the fast path, one
 * request per connection had the same rate spliced or not and a 1.2-1.7x worse p99
 * (docs/performance.md). So each spliced end is judged once: busy when it has sent
 * ML_USE_BUSY_MESSAGES messages, short when it leaves ESTABLISHED with fewer. A port whose ends
 * are nearly all short stops splicing new connections, except every ML_USE_SAMPLE_EVERY-th, whose
 * ends keep the judgement current. The rule leans towards splicing, which is always correct and
 * only sometimes wasted: a busy end halves the port's count of short ends, so a port splices
 * again within a few samples of its connections getting longer, and a port where even one
 * connection in a few dozen is busy keeps splicing. */
#ifndef MESHLANE_PORT_USE_H
#define MESHLANE_PORT_USE_H

#include "meshlane/compiler.h"
#include "meshlane/port_use_types.h"

/* An end that sends this many messages makes its connection worth splicing. */
#define ML_USE_BUSY_MESSAGES 4
/* Ends judged before a port may be found short: until then every connection is spliced. */
#define ML_USE_MIN_ENDS 64
/* When this many ends are counted, both counts are halved: the judgement follows the port's
 * recent connections (the last 128 to 256 spliced ends). */
#define ML_USE_WINDOW_ENDS 256
/* A port is short while fewer than one in ML_USE_BUSY_SHARE of its judged ends is busy. */
#define ML_USE_BUSY_SHARE 8
/* Of a short port's connections, one in this many is still spliced, to keep judging it. Fewer
 * than one in 100: a spliced short connection is slower than an unspliced one (its psocks), and
 * with one in 16 the samples were the slowest 6% of a short port's connections, its p99
 * (measured: p99 of d against c with one new connection at a time, 1.07 with 16, 1.02 with 128;
 * docs/performance.md). The price: a port whose connections turn long splices again only after
 * two samples, up to 256 connections later. */
#define ML_USE_SAMPLE_EVERY 128

/* Whether the port's recent spliced ends were mostly short. */
ML_INLINE int ml_port_use_short(__u32 busy_ends, __u32 short_ends)
{
	__u64 ends = (__u64)busy_ends + short_ends;

	if (ends < ML_USE_MIN_ENDS)
		return 0;
	return (__u64)busy_ends * ML_USE_BUSY_SHARE < ends;
}

/* Whether the connection skipped after `skipped_before` others of a short port is spliced
 * anyway, as a sample. */
ML_INLINE int ml_port_use_sampled(__u32 skipped_before)
{
	return skipped_before % ML_USE_SAMPLE_EVERY == ML_USE_SAMPLE_EVERY - 1;
}

/* Whether an end that has sent `messages` messages is busy. */
ML_INLINE int ml_sock_use_busy(__u32 messages)
{
	return messages >= ML_USE_BUSY_MESSAGES;
}

/* Halves both counts once they reach the window. */
ML_INLINE void ml_port_use_fade(struct ml_port_use *use)
{
	if ((__u64)use->busy_ends + use->short_ends < ML_USE_WINDOW_ENDS)
		return;
	use->busy_ends /= 2;
	use->short_ends /= 2;
}

/* Counts one judged end. Not atomic: in the datapath, ends judged at the same moment on two
 * CPUs may lose a count, which only blurs an estimate. */
ML_INLINE void ml_port_use_judge(struct ml_port_use *use, int busy)
{
	if (busy) {
		use->busy_ends++;
		use->short_ends /= 2;
	} else {
		use->short_ends++;
	}
	ml_port_use_fade(use);
}

#endif /* MESHLANE_PORT_USE_H */
