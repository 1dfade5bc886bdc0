/* Whether a spliced socket's sends should leave the splice because its reader spins on its
 * socket, judged from what sk_msg saw (struct ml_reader_spin), over plain values so host tests
 * can drive it.
 *
 * A redirected send puts its bytes straight into the reader's socket, under that socket's
 * lock (lock_sock, a sleeping lock). TCP never waits for it: a segment that finds the socket
 * held goes to its backlog. A reader that polls its socket in a loop (recv() on a non-blocking
 * socket until bytes come, as sockperf's client and busy-polling applications do) holds the
 * lock for much of the time with nothing queued; a send then sleeps until the reader lets go,
 * and the reader, woken by the send's release, waits for the sender in turn. Each such wait
 * is a context switch and, on a VM whose idle vCPUs halt, a wake-up through the hypervisor:
 * measured with sockperf's busy-polling client, the spliced fast path took 2.5x the round
 * trip of plain TCP (docs/performance.md).
 *
 * So a send that finds its reader holding the socket with nothing queued counts as spinning.
 * Readers that wait in epoll or in a blocking recv() hold their socket too, now and then, when
 * a send comes while they read or send on it. How often either is found depends on the machine
 * as much as on the reader: 17-20% of the sends to sockperf's busy-polling client and 0.1-3% of
 * those to event-loop readers on a VM whose idle vCPUs halt; 1-2.6% and under 0.02% on a VM
 * that polls before halting, where each wait also costs far less. So the share that makes a
 * socket leave is a setting (acceleration.spinning_reader_per_mille, 90 by default: 9%), and the
 * share is counted over many sends: from the first spinning send, a window of up to
 * ML_SPIN_WINDOW_SENDS sends; once ML_SPIN_LEAVE of them were spinning and the spinning ones
 * make at least the set share of the window's sends, the socket's later sends take the normal
 * stack. A window that ends below the share is forgotten (the next spinning send opens one).
 * Counted this way, the verdict for a reader depends on its share, not on whether a few spins
 * happened to come close together. The reader's own sends follow at their next send
 * (meshlane/peer_left.h). Leaving is one-way and safe at any send: the reader gets the
 * redirected bytes still queued before any that arrive by TCP (the kernel reads the sockmap
 * queue first). */
#ifndef MESHLANE_READER_SPIN_H
#define MESHLANE_READER_SPIN_H

#include "meshlane/compiler.h"
#include "meshlane/reader_spin_types.h"

/* Sends judged together, counted from the first that found the reader spinning. */
#define ML_SPIN_WINDOW_SENDS 16384
/* Spinning sends a window needs before its share is judged: fewer say too little. */
#define ML_SPIN_LEAVE 24
/* acceleration.spinning_reader_per_mille by default: 9% of the sends. */
#define ML_SPIN_DEFAULT_PER_MILLE 90

enum ml_spin_verdict {
	ML_SPIN_COUNTING = 0, /* the window is still open */
	ML_SPIN_LEAVE_SPLICE, /* enough spinning sends: later sends take the normal stack */
	ML_SPIN_FORGET, /* the window closed with too few: drop it (the next spin opens one) */
};

/* Counts one redirected send, spinning or not, into the socket's open window; `per_mille`:
 * spinning sends per 1,000 that make the socket leave. */
ML_INLINE enum ml_spin_verdict ml_reader_spin_judge(struct ml_reader_spin *spin, int spinning,
						    __u32 per_mille)
{
	spin->sends++;
	/* The share only grows at a spinning send: judged there. */
	if (spinning) {
		spin->spinning++;
		if (spin->spinning >= ML_SPIN_LEAVE &&
		    (__u64)spin->spinning * 1000 >= (__u64)per_mille * spin->sends)
			return ML_SPIN_LEAVE_SPLICE;
	}
	if (spin->sends >= ML_SPIN_WINDOW_SENDS)
		return ML_SPIN_FORGET;
	return ML_SPIN_COUNTING;
}

#endif /* MESHLANE_READER_SPIN_H */
