#include "datapath/map_occupancy.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

#include "datapath/bpf_map.hpp"
#include "meshlane/shared.h"

namespace meshlane {

namespace {

struct SizedMap {
  const char* map;
  const char* pin_name;
  const char* setting;
};

constexpr std::array<SizedMap, 5> kSizedMaps = {{
    {"sockhash", ML_SOCKHASH_MAP_NAME, "acceleration.sockhash_max_entries"},
    {"orig_dst", ML_ORIG_DST_MAP_NAME, "maps.orig_dst_max_entries"},
    {"tc_flows", ML_TC_FLOWS_MAP_NAME, "maps.tc_flow_max_entries"},
    {"workloads", ML_WORKLOADS_MAP_NAME, "maps.workload_max_entries"},
    {"pod_addresses", ML_POD_IPS_MAP_NAME, "maps.pod_address_max_entries"},
}};

MapOccupancy count_one(const PinLayout& pins, const SizedMap& sized) {
  MapOccupancy out{sized.map, sized.pin_name, sized.setting};
  auto map = open_pinned_map(pins.map(sized.pin_name));
  if (!map) {
    out.error = map.error().message();
    return out;
  }
  const MapSpec& info = map->info;
  out.capacity = info.max_entries;
  // for_each_map_key stops after max_entries + 1 keys (a walk the kernel restarted because a
  // key was deleted under it); the cap bounds the cost of the largest maps.
  const std::uint64_t cap = std::min<std::uint64_t>(info.max_entries, kMaxCountedEntries);
  std::uint64_t seen = 0;
  for_each_map_key(map->fd.get(), info.key_size, info.max_entries, [&](const std::uint8_t*) {
    ++seen;
    return seen < cap;
  });
  out.entries = std::min<std::uint64_t>(seen, info.max_entries);
  out.complete = seen < kMaxCountedEntries;
  return out;
}

}  // namespace

std::vector<MapOccupancy> count_map_occupancy(const PinLayout& pins) {
  std::vector<MapOccupancy> out;
  out.reserve(kSizedMaps.size());
  for (const SizedMap& sized : kSizedMaps) {
    out.push_back(count_one(pins, sized));
  }
  return out;
}

}  // namespace meshlane
