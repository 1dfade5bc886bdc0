// meshlane's socket-lookup program (daemon.inbound_steering = "sk_lookup") in a pod's network
// namespace: one BPF link per workload, pinned under the links directory as
// ml_sklookup_<workload's name, made safe for bpffs>_<hash of the name>, so that steering goes on while meshlaned restarts and a restarted
// daemon swaps its program in place (PinnedLink).
#pragma once

#include <string>
#include <string_view>

#include "common/error.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

inline constexpr std::string_view kSkLookupLinkPrefix = "ml_sklookup_";

// The pin of `workload`'s link.
std::string sk_lookup_link_pin(const PinLayout& pins, const std::string& workload);

// Attaches prog_fd to the namespace at `netns_path` for `workload`, or adopts and updates the
// link pinned for it when that link is on the same namespace.
Status attach_sk_lookup(const PinLayout& pins, const std::string& workload,
                        const std::string& netns_path, int prog_fd);

// Whether `workload`'s pinned link is attached to the namespace at `netns_path` now.
Result<bool> sk_lookup_attached(const PinLayout& pins, const std::string& workload,
                                const std::string& netns_path);

// Detaches and unpins `workload`'s link; none pinned counts as success.
Status detach_sk_lookup(const PinLayout& pins, const std::string& workload);

}  // namespace meshlane
