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
 * a send comes while they read or send on it: measured, 0.1-3% of the sends to such readers
 * counted, against 17-20% of those to sockperf's busy-polling client. So the first spinning
 * send opens a window of ML_SPIN_WINDOW_SENDS sends; ML_SPIN_LEAVE spinning sends in it (9%)
 * make the socket's later sends take the normal stack, and a window with fewer is forgotten.
 * The reader's own sends follow at their next send (meshlane/peer_left.h). Leaving is one-way and safe at any send: the reader gets the redirected bytes still queued
 * before any that arrive by TCP (the kernel reads the sockmap queue first). */
#ifndef MESHLANE_READER_SPIN_H
#define MESHLANE_READER_SPIN_H

#include "meshlane/compiler.h"
#include "meshlane/reader_spin_types.h"

/* Sends judged together, counted from the first that found the reader spinning. */
#define ML_SPIN_WINDOW_SENDS 256
/* Spinning sends within one window that make the socket leave the splice. */
#define ML_SPIN_LEAVE 24

enum ml_spin_verdict {
	ML_SPIN_COUNTING = 0, /* the window is still open */
	ML_SPIN_LEAVE_SPLICE, /* enough spinning sends: later sends take the normal stack */
	ML_SPIN_FORGET, /* the window closed with too few: drop it (the next spin opens one) */
};

/* Counts one redirected send, spinning or not, into the socket's open window. */
ML_INLINE enum ml_spin_verdict ml_reader_spin_judge(struct ml_reader_spin *spin, int spinning)
{
	spin->sends++;
	if (spinning)
		spin->spinning++;
	if (spin->spinning >= ML_SPIN_LEAVE)
		return ML_SPIN_LEAVE_SPLICE;
	if (spin->sends >= ML_SPIN_WINDOW_SENDS)
		return ML_SPIN_FORGET;
	return ML_SPIN_COUNTING;
}

#endif /* MESHLANE_READER_SPIN_H */
