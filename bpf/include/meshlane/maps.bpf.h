/* Every map meshlane pins, defined once in its feature's header. Each BPF object that shares
 * the datapath's maps includes this header, so every object defines all of them and libbpf
 * reuses the pinned instance: all programs share one set of maps, and sockops, loaded first,
 * creates and pins every one. */
#ifndef MESHLANE_MAPS_BPF_H
#define MESHLANE_MAPS_BPF_H

#include "meshlane/dns_origin.bpf.h"
#include "meshlane/listeners.bpf.h"
#include "meshlane/orig_dst.bpf.h"
#include "meshlane/policy.bpf.h"
#include "meshlane/rules.bpf.h"
#include "meshlane/splice.bpf.h"
#include "meshlane/tc_flow.bpf.h"
#include "meshlane/tc_port_marks.bpf.h"

#endif /* MESHLANE_MAPS_BPF_H */
