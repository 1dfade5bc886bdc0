// Removes per-connection entries the datapath files but never ends itself: original
// destinations of handshakes that never completed (the client gave up while the proxy's accept
// queue was full, or the server end is outside the attached cgroup), and tc flows whose SYN was
// never followed by the client's ACK. Both maps are plain hashes that refuse inserts when full
// instead of evicting, so without the sweep such entries would pile up. See
// docs/reliability.md.
#pragma once

#include <chrono>
#include <cstdint>

#include "meshlane/error.hpp"
#include "meshlane/pin_layout.hpp"

namespace meshlane {

// Original destinations filed longer ago than this are removed.
inline constexpr std::chrono::seconds kOrigDstStaleAfter{60};
// How often meshlaned sweeps.
inline constexpr std::chrono::seconds kSweepInterval{10};

struct SweepReport {
  std::uint64_t orig_dsts = 0;  // stale original destinations removed
  std::uint64_t tc_flows = 0;   // tc flows still at their SYN removed
};

// The clock of bpf_ktime_get_coarse_ns(), which stamps the entries.
std::uint64_t datapath_now_ns();

// Sweeps ml_origdst_v2 and ml_tcflows_v2 under `pins` at time now_ns (datapath_now_ns()).
// A missing map (interception never loaded) is not an error.
Result<SweepReport> sweep_stale_entries(const PinLayout& pins, std::uint64_t now_ns);

}  // namespace meshlane
