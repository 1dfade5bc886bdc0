/* Everything shared by the BPF programs and the C++ controller, for code that wants all of it.
 * Each feature's structs, constants and map names live in its own *_types.h (one definition for
 * both sides: never copy them into another header); new code should include just the ones it
 * uses. */
#ifndef MESHLANE_SHARED_H
#define MESHLANE_SHARED_H

#include "meshlane/counter_types.h"
#include "meshlane/dns.h" /* struct ml_dns_origin, ML_DNS_ORIGIN_MAP_NAME */
#include "meshlane/event_types.h"
#include "meshlane/listener_types.h"
#include "meshlane/orig_dst_types.h"
#include "meshlane/policy_types.h"
#include "meshlane/port_use_types.h"
#include "meshlane/reader_spin_types.h"
#include "meshlane/splice_types.h"
#include "meshlane/tc_flow_types.h"
#include "meshlane/tc_port_marks.h" /* ML_TC_PORTS_MAP_NAME and the slot of a port */
#include "meshlane/workload_types.h"

#endif /* MESHLANE_SHARED_H */
