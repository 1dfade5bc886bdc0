#include "datapath/counter_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "datapath/bpf_map.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

Result<Counters> read_counters(const std::string& bpffs_dir) {
  PinLayout pins{bpffs_dir};
  auto map = TypedMap<std::uint32_t, std::uint64_t>::open_pin(pins.map(ML_COUNTERS_MAP_NAME));
  if (!map) {
    return make_error(map.error().errnum, map.error().context +
                                              " (is meshlaned running or its datapath pinned "
                                              "under " +
                                              bpffs_dir + "?)");
  }
  Counters counters;
  for (std::uint32_t index = 0; index < ML_CTR_MAX; ++index) {
    auto per_cpu = map->lookup_percpu(index);
    if (!per_cpu) {
      return per_cpu.error();
    }
    for (std::uint64_t value : per_cpu.value()) {
      counters.values.at(index) += value;
    }
  }
  return counters;
}

static_assert(ML_CTR_MAX <= ML_COUNTER_SLOTS, "counter maps are sized in ML_COUNTER_SLOTS");

Result<Counters> read_workload_counters(const std::string& bpffs_dir, std::uint64_t netns_cookie) {
  const PinLayout pins{bpffs_dir};
  auto map = TypedMap<std::uint64_t, ml_wl_counters>::open_pin(pins.map(ML_WL_COUNTERS_MAP_NAME));
  if (!map) {
    return map.error();
  }
  auto per_cpu = map->lookup_percpu(netns_cookie);
  if (!per_cpu) {
    return make_error(per_cpu.error().errnum, "no counters for the workload with netns cookie " +
                                                  std::to_string(netns_cookie));
  }
  Counters counters;
  for (const ml_wl_counters& cpu : per_cpu.value()) {
    for (std::size_t index = 0; index < counters.values.size(); ++index) {
      counters.values.at(index) += cpu.value[index];
    }
  }
  return counters;
}

Status sync_workload_counters(const std::string& bpffs_dir,
                              const std::vector<std::uint64_t>& netns_cookies) {
  const PinLayout pins{bpffs_dir};
  auto map = TypedMap<std::uint64_t, ml_wl_counters>::open_pin(pins.map(ML_WL_COUNTERS_MAP_NAME));
  if (!map) {
    return map.error();
  }
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return make_error(-cpus, "cannot count possible CPUs");
  }
  const std::vector<ml_wl_counters> zero(static_cast<std::size_t>(cpus));
  for (std::uint64_t cookie : netns_cookies) {
    if (bpf_map_update_elem(map->fd(), &cookie, zero.data(), BPF_NOEXIST) != 0 && errno != EEXIST) {
      return make_error(errno, "cannot add per-workload counters to " + map->info().name);
    }
  }
  for (std::uint64_t cookie : map->keys()) {
    if (std::find(netns_cookies.begin(), netns_cookies.end(), cookie) == netns_cookies.end()) {
      if (auto status = map->erase(cookie); !status) {
        return status;
      }
    }
  }
  return {};
}

}  // namespace meshlane
