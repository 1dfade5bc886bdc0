#include "datapath/skeleton.hpp"

#include "inbound_tc.skel.h"
#include "intercept.skel.h"
#include "listener_scan.skel.h"
#include "sockops.skel.h"

namespace meshlane {

#define MESHLANE_DEFINE_SKELETON_FUNCTIONS(name)                                   \
  name##_bpf* SkeletonFunctions<name##_bpf>::open() { return name##_bpf__open(); } \
  int SkeletonFunctions<name##_bpf>::load(name##_bpf* skeleton) {                  \
    return name##_bpf__load(skeleton);                                             \
  }                                                                                \
  void SkeletonFunctions<name##_bpf>::destroy(name##_bpf* skeleton) {              \
    name##_bpf__destroy(skeleton);                                                 \
  }
MESHLANE_DEFINE_SKELETON_FUNCTIONS(sockops)
MESHLANE_DEFINE_SKELETON_FUNCTIONS(intercept)
MESHLANE_DEFINE_SKELETON_FUNCTIONS(inbound_tc)
MESHLANE_DEFINE_SKELETON_FUNCTIONS(listener_scan)
#undef MESHLANE_DEFINE_SKELETON_FUNCTIONS

}  // namespace meshlane
