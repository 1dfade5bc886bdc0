// Removes per-connection entries the datapath files but never ends itself: original
// destinations of handshakes that never completed (the client gave up while the proxy's accept
// queue was full, or the server end is outside the attached cgroup), and tc flows whose SYN was
// never followed by the client's ACK. Both maps are plain hashes that refuse inserts when full
// instead of evicting, so without the sweep such entries would pile up. See
// docs/reliability.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "datapath/pin_layout.hpp"
#include "datapath/test_hooks.hpp"

namespace meshlane {

// Original destinations filed longer ago than this are removed.
inline constexpr std::chrono::seconds kOrigDstStaleAfter{60};
// How often meshlaned sweeps.
inline constexpr std::chrono::seconds kSweepInterval{10};

// Steered tc flows past their handshake are checked against the pod's sockets once they are
// this old, and at most this often: a connection that ended without tc seeing its FIN or RST
// (timed out, or destroyed while its last packets were dropped before the pod's interface)
// would otherwise keep its flow for as long as the workload exists.
inline constexpr std::chrono::seconds kTcFlowCheckAfter{120};
inline constexpr std::chrono::seconds kDeadFlowCheckInterval{60};

struct SweepReport {
  std::uint64_t orig_dsts = 0;      // stale original destinations removed
  std::uint64_t tc_flows = 0;       // tc flows still at their SYN removed
  std::uint64_t dead_tc_flows = 0;  // tc flows whose pod-side socket is gone, removed
};

// How often the sweeps run and how old a flow must be before its socket is looked for. The
// constants above, or for tests only hooks.fast_sweep (MESHLANE_TEST_FAST_SWEEP=1): every
// second, any age.
struct SweepTiming {
  std::chrono::seconds interval = kSweepInterval;
  std::chrono::seconds dead_flow_interval = kDeadFlowCheckInterval;
  std::chrono::seconds tc_flow_check_after = kTcFlowCheckAfter;
};
SweepTiming sweep_timing(const TestHooks& hooks);

// The network namespace (path) of the workload that has this address (v4-mapped for IPv4), if
// any: where the pod-side socket of a steered flow lives.
using NetnsOfAddress = std::function<std::optional<std::string>(const std::uint8_t* ip6)>;

// The clock of bpf_ktime_get_coarse_ns(), which stamps the entries.
std::uint64_t datapath_now_ns();

// Sweeps ml_origdst_v2 and ml_tcflows_v3 under `pins` at time now_ns (datapath_now_ns()).
// A missing map (interception never loaded) is not an error.
Result<SweepReport> sweep_stale_entries(const PinLayout& pins, std::uint64_t now_ns);

// Removes steered tc flows past their handshake, older than `min_age`, for which the pod has no
// socket any more (asked through NETLINK_SOCK_DIAG in the pod's namespace, found by
// `netns_of`). Flows of addresses no workload has, or whose lookup fails, are kept.
Result<std::uint64_t> sweep_dead_tc_flows(const PinLayout& pins, std::uint64_t now_ns,
                                          std::chrono::seconds min_age,
                                          const NetnsOfAddress& netns_of);

}  // namespace meshlane
