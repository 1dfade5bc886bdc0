/* Whether a spliced socket's peer has left the splice, judged from TCP's count of bytes the
 * socket received, over plain values so host tests can drive it.
 *
 * Once both ends of a connection are spliced, from the start of the connection, nothing reaches
 * either socket by TCP: every send is redirected into the peer's sockmap queue. Bytes that come
 * by TCP therefore mean the peer's sends went back to the normal stack (its reader spun, fell
 * behind, or its redirect failed). The socket then follows at its next send, so the connection
 * leaves the splice in both directions: a socket whose sends take the normal stack holds its own
 * lock while TCP sends each of them, and a send redirected to it would wait for that lock and
 * sleep, the cost that made its peer leave, moved to this end. Measured with sockperf's
 * busy-polling client and 4 KiB messages: while the replies went by TCP and the requests were
 * still redirected, the round trip's p99 was 1.3x that of plain TCP; once both went by TCP,
 * 1.05x (docs/performance.md).
 *
 * A FIN counts one in TCP's count of received bytes but is not a send: a socket whose peer
 * half-closed (CLOSE_WAIT, the only state after a FIN in which it can still send) keeps its
 * splice until a data byte comes by TCP. */
#ifndef MESHLANE_PEER_LEFT_H
#define MESHLANE_PEER_LEFT_H

#include "meshlane/compiler.h"

/* `bytes_received`: TCP's count for the socket (tcp_sock.bytes_received); `fin_received`: the
 * peer sent its FIN. */
ML_INLINE int ml_peer_left_splice(__u64 bytes_received, int fin_received)
{
	return bytes_received > (__u64)(fin_received ? 1 : 0);
}

#endif /* MESHLANE_PEER_LEFT_H */
