/* Whether a server port's connections are worth splicing, judged from what the datapath saw
 * of its earlier connections (struct ml_port_use), over plain values so host tests can drive it.
 *
 * Splicing a connection costs a psock on each end, set up when it is established and torn down
 * when it closes; it pays back a little on every message. A connection that carries one request
 * and one response pays the cost and gets almost nothing back: measured on the fast path, one
 * request per connection had the same rate spliced or not and a 1.2-1.7x worse p99
 * (docs/performance.md). So each spliced end is judged once: busy when it has sent
 * ML_USE_BUSY_MESSAGES messages, short when it leaves ESTABLISHED with fewer. A port whose ends
 * are nearly all short stops splicing new connections. One in ML_USE_SAMPLE_EVERY of them is
 * watched, unspliced, as a sample: its client end judges both ends from the data segments each
 * way (ml_sample_judge), so that the judgement stays current without any connection paying for
 * a psock it does not need. The rule leans towards splicing, which is always correct and only
 * sometimes wasted: a busy end halves the port's count of short ends, so a port splices again
 * after one sample of its connections getting longer, and a port where even one connection in a
 * few dozen is busy keeps splicing. */
#ifndef MESHLANE_PORT_USE_H
#define MESHLANE_PORT_USE_H

#include "meshlane/compiler.h"
#include "meshlane/port_use_types.h"

/* An end that sends this many messages (spliced: sk_msg calls; a sample: data segments) makes
 * its connection worth splicing. */
#define ML_USE_BUSY_MESSAGES 4
/* Ends judged before a port may be found short: until then every connection is spliced. */
#define ML_USE_MIN_ENDS 64
/* When this many ends are counted, both counts are halved: the judgement follows the port's
 * recent connections (the last 128 to 256 spliced ends). */
#define ML_USE_WINDOW_ENDS 256
/* A port is short while fewer than one in ML_USE_BUSY_SHARE of its judged ends is busy. */
#define ML_USE_BUSY_SHARE 8
/* Of a short port's connections, one in this many is watched as a sample. A sample stays
 * unspliced like the others: spliced samples were slower, and in a full run with one in 128
 * spliced, d's rate of new connections was 0.80 of c's against 0.95 with none spliced
 * (docs/performance.md). It costs only a socket storage and a few sock_ops calls until it is judged, so samples can be
 * frequent: a port whose connections turn long splices again within 16 connections. */
#define ML_USE_SAMPLE_EVERY 16

/* Whether the port's recently judged ends were mostly short. */
ML_INLINE int ml_port_use_short(__u32 busy_ends, __u32 short_ends)
{
	__u64 ends = (__u64)busy_ends + short_ends;

	if (ends < ML_USE_MIN_ENDS)
		return 0;
	return (__u64)busy_ends * ML_USE_BUSY_SHARE < ends;
}

/* Whether the connection skipped after `skipped_before` others of a short port is watched as a
 * sample. */
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

/* The two ends of a sample, as bits of ml_sock_use.judged: the client end (where the sample is
 * watched) and its server end. */
#define ML_SAMPLE_CLIENT 1
#define ML_SAMPLE_SERVER 2
#define ML_SAMPLE_BOTH (ML_SAMPLE_CLIENT | ML_SAMPLE_SERVER)

/* A sample's judgements now, from its client end's data segments out (the client's sends) and in
 * (the server's): returns the ends (ML_SAMPLE_*) newly judged besides those in `judged`, and
 * sets their bits in *busy when they are busy. An end is busy as soon as it has sent
 * ML_USE_BUSY_MESSAGES segments; it is short only once the connection `leaving` ESTABLISHED
 * finds it with fewer. */
ML_INLINE __u8 ml_sample_judge(__u32 segs_out, __u32 segs_in, int leaving, __u8 judged, __u8 *busy)
{
	__u8 now = 0;

	*busy = 0;
	if (ml_sock_use_busy(segs_out))
		*busy |= ML_SAMPLE_CLIENT;
	if (ml_sock_use_busy(segs_in))
		*busy |= ML_SAMPLE_SERVER;
	now = leaving ? ML_SAMPLE_BOTH : *busy;
	now &= (__u8)~judged & ML_SAMPLE_BOTH;
	*busy &= now;
	return now;
}

#endif /* MESHLANE_PORT_USE_H */
