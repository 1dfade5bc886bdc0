#include "datapath/stale_sweep.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>
#include <vector>

#include "common/netns.hpp"
#include "common/sock_diag.hpp"
#include "datapath/bpf_map.hpp"
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

SweepTiming sweep_timing(const TestHooks& hooks) {
  SweepTiming timing;
  if (hooks.fast_sweep) {
    timing.interval = std::chrono::seconds(1);
    timing.dead_flow_interval = std::chrono::seconds(1);
    timing.tc_flow_check_after = std::chrono::seconds(0);
    spdlog::warn(
        "MESHLANE_TEST_FAST_SWEEP=1: sweeps every second, tc flows of any age checked "
        "(tests only)");
  }
  return timing;
}

Result<std::uint64_t> sweep_dead_tc_flows(const PinLayout& pins, std::uint64_t now_ns,
                                          std::chrono::seconds min_age,
                                          const NetnsOfAddress& netns_of) {
  const std::string pin = pins.map(ML_TC_FLOWS_MAP_NAME);
  if (!exists(pin)) {
    return 0;
  }
  auto map = TypedMap<ml_tc_flow_key, ml_tc_flow>::open_pin(pin);
  if (!map) {
    return map.error();
  }
  const auto min_age_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(min_age).count());
  // Candidates by namespace, so each namespace is entered once.
  std::map<std::string, std::vector<std::pair<ml_tc_flow_key, ml_tc_flow>>> by_netns;
  for (const ml_tc_flow_key& key : map->keys()) {
    auto flow = map->lookup(key);
    if (!flow || !flow->acked || now_ns < flow->start_ns || now_ns - flow->start_ns < min_age_ns) {
      continue;
    }
    if (auto netns = netns_of(reinterpret_cast<const std::uint8_t*>(key.local_ip6))) {
      by_netns[*netns].emplace_back(key, *flow);
    } else {
      spdlog::trace("tc flow from port {}: its pod address is no workload's", key.remote_port);
    }
  }
  std::uint64_t removed = 0;
  for (const auto& [netns, flows] : by_netns) {
    auto inside = NetnsEntry::enter(netns);
    if (!inside) {
      continue;  // the pod is going away; its workload's removal drains the filters
    }
    for (const auto& [key, flow] : flows) {
      // The pod-side socket of a steered connection is the proxy's, on the inbound port.
      TcpTuple tuple;
      std::memcpy(tuple.local.data(), key.local_ip6, tuple.local.size());
      std::memcpy(tuple.remote.data(), key.remote_ip6, tuple.remote.size());
      tuple.local_port = flow.inbound_port;
      tuple.remote_port = key.remote_port;
      auto alive = tcp_socket_exists(tuple);
      if (!alive) {
        spdlog::debug("tc flow from port {}: socket lookup in {} failed: {}", key.remote_port,
                      netns, alive.error().message());
        continue;
      }
      if (alive.value()) {
        continue;
      }
      // Still the same flow (not ended and started again by a reused client port meanwhile)?
      auto now = map->lookup(key);
      if (now && now->start_ns == flow.start_ns && bpf_map_delete_elem(map->fd(), &key) == 0) {
        ++removed;
      }
    }
  }
  return removed;
}

}  // namespace meshlane
