// meshlane's tc filters (clsact ingress and egress, direct action) on a pod's interface,
// attached over netlink so that `tc filter show` lists them.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace meshlane {

// Program fds the workload manager attaches with tc.
struct TcPrograms {
  int ingress_fd = -1;
  int egress_fd = -1;
  // daemon.inbound_steering = "sk_lookup": the socket-lookup program the workload manager
  // attaches to each pod's namespace instead of the tc filters (sk_lookup_attach.hpp).
  int sk_lookup_fd = -1;
  bool steer_by_lookup = false;
};

// Fixed handle and priority identify meshlane's filters among others on the interface.
inline constexpr std::uint32_t kTcHandle = 0x4d4c;  // "ML"
inline constexpr std::uint32_t kTcPriority = 0x4d4c;

// Attaches (or replaces in place) both filters on `interface` inside `netns_path`.
Status attach_tc(const std::string& netns_path, const std::string& interface,
                 const TcPrograms& programs);

// Whether both of meshlane's filters (ingress and egress) are on `interface` inside
// `netns_path` now, as the kernel reports them (for workload list/get). An interface that is
// gone has none.
Result<bool> tc_filters_attached(const std::string& netns_path, const std::string& interface);

// Removes meshlane's filters; a namespace or interface that is gone counts as success.
Status detach_tc(const std::string& netns_path, const std::string& interface);

}  // namespace meshlane
