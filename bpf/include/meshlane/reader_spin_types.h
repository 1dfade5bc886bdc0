/* Spinning readers: what sk_msg saw of the reader of a spliced socket's sends (the judgement
 * itself is in reader_spin.h). Shared by the BPF programs and the controller (pinned ABI:
 * layouts and map names never change in place). */
#ifndef MESHLANE_READER_SPIN_TYPES_H
#define MESHLANE_READER_SPIN_TYPES_H

#include "meshlane/compiler.h"

/* Value of ml_readerspin_v2, on a spliced socket from the first of its sends that found its
 * reader spinning (holding its socket, nothing queued) until the socket is judged. */
struct ml_reader_spin {
	__u32 sends; /* redirected sends judged in this window */
	__u32 spinning; /* of which found the reader spinning */
};

#define ML_READER_SPIN_MAP_NAME "ml_readerspin_v2"

#endif /* MESHLANE_READER_SPIN_TYPES_H */
