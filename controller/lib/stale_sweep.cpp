#include "meshlane/stale_sweep.hpp"

#include <sys/stat.h>
#include <time.h>

#include <vector>

#include "meshlane/bpf_map.hpp"
#include "meshlane/shared.h"

extern "C" {
#include "meshlane/tc_flow.h"
}

namespace meshlane {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Deletes the entries `stale` picks. Keys are collected first: deleting while walking a hash
// with get_next_key restarts the walk from the top when the current key is gone.
template <typename Key, typename Value, typename Stale>
Result<std::uint64_t> sweep(const std::string& pin, Stale stale) {
  if (!exists(pin)) {
    return 0;
  }
  auto map = TypedMap<Key, Value>::open_pin(pin);
  if (!map) {
    return map.error();
  }
  std::vector<Key> doomed;
  for (const Key& key : map->keys()) {
    if (auto value = map->lookup(key); value && stale(*value)) {
      doomed.push_back(key);
    }
  }
  std::uint64_t removed = 0;
  for (const Key& key : doomed) {
    // Looked at again just before: the datapath may have consumed or re-filed it meanwhile.
    auto value = map->lookup(key);
    if (!value || !stale(*value)) {
      continue;
    }
    if (bpf_map_delete_elem(map->fd(), &key) == 0) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace

std::uint64_t datapath_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(now.tv_nsec);
}

Result<SweepReport> sweep_stale_entries(const PinLayout& pins, std::uint64_t now_ns) {
  const std::uint64_t stale_after =
      std::chrono::duration_cast<std::chrono::nanoseconds>(kOrigDstStaleAfter).count();
  SweepReport report;
  auto orig_dsts = sweep<ml_flow_key, ml_orig_dst_entry>(
      pins.map(ML_ORIG_DST_MAP_NAME), [&](const ml_orig_dst_entry& entry) {
        return now_ns > entry.filed_ns && now_ns - entry.filed_ns > stale_after;
      });
  if (!orig_dsts) {
    return orig_dsts.error();
  }
  report.orig_dsts = orig_dsts.value();
  auto flows = sweep<ml_tc_flow_key, ml_tc_flow>(
      pins.map(ML_TC_FLOWS_MAP_NAME),
      [&](const ml_tc_flow& flow) { return ml_tc_flow_stale(&flow, now_ns) != 0; });
  if (!flows) {
    return flows.error();
  }
  report.tc_flows = flows.value();
  return report;
}

}  // namespace meshlane
