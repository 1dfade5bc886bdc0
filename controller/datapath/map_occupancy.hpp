// How full the maps with a configured size are (acceleration.sockhash_max_entries, [maps]):
// entries counted from user space with bpf_map_get_next_key, never by the programs, so that
// counting costs the datapath nothing. The daemon counts periodically, not per request
// (docs/metrics.md "Map occupancy").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datapath/pin_layout.hpp"

namespace meshlane {

struct MapOccupancy {
  std::string map;       // short name: "sockhash", "orig_dst", "tc_flows", "workloads", ...
  std::string pin_name;  // the kernel's name, e.g. "ml_origdst_v2"
  std::string setting;   // the config key of its size
  std::uint64_t entries = 0;
  std::uint32_t capacity = 0;  // max_entries read back from the kernel
  // false when the walk stopped at its cap (kMaxCountedEntries) or when the map churned so
  // much that the kernel restarted it: entries is then a lower bound.
  bool complete = true;
  std::string error;  // non-empty: the map could not be read (entries and capacity are 0)
};

// A walk costs one syscall per entry; past this many entries a map is reported as at least
// this full, which keeps one count of the largest allowed maps well under a second.
inline constexpr std::uint64_t kMaxCountedEntries = 1u << 20;

// Counts the entries of each sized map pinned under `pins` (one result per map, in a fixed
// order; a map that cannot be opened has `error` set).
std::vector<MapOccupancy> count_map_occupancy(const PinLayout& pins);

}  // namespace meshlane
