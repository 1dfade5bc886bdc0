/* Adaptive splicing: what the datapath saw of a server port's spliced connections (the
 * judgement itself is in port_use.h). Shared by the BPF programs and the controller (pinned
 * ABI: layouts and map names never change in place). */
#ifndef MESHLANE_PORT_USE_TYPES_H
#define MESHLANE_PORT_USE_TYPES_H

#include "meshlane/compiler.h"
#include "meshlane/listener_types.h"

/* Value of ml_portuse_v1 (key: struct ml_listener_key of the server's namespace and port, slot
 * 0): what the datapath saw of the connections to one server port, to decide whether its next
 * connections are worth splicing (bpf/include/meshlane/port_use.h). Each end of a spliced
 * connection or of a sample counts once: busy when it has sent ML_USE_BUSY_MESSAGES messages,
 * short when it left ESTABLISHED with fewer. Halved when the sum reaches ML_USE_WINDOW_ENDS, so
 * old observations fade. */
struct ml_port_use {
	__u32 busy_ends;
	__u32 short_ends;
	__u32 skipped; /* client ends skipped as short: every ML_USE_SAMPLE_EVERY-th is a sample */
	__u32 pad32;
};

/* Value of ml_sockuse_v1, on a spliced end until it is judged busy or short, and on the client
 * end of an unspliced sample until both its ends are. */
struct ml_sock_use {
	struct ml_listener_key port; /* the server's namespace and port (slot 0) */
	__u32 messages; /* sent through sk_msg so far (a spliced end) */
	/* Counted in ml_portuse_v1 already: 1 for a spliced end; for a sample, which of its ends
	 * (ML_SAMPLE_CLIENT, ML_SAMPLE_SERVER). */
	__u8 judged;
	__u8 sample; /* an unspliced sample, judged from its data segments; was padding (0) */
	__u8 pad8[2];
};

#define ML_PORT_USE_MAP_NAME "ml_portuse_v1"
#define ML_SOCK_USE_MAP_NAME "ml_sockuse_v1"

#endif /* MESHLANE_PORT_USE_TYPES_H */
