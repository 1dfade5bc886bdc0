#include "datapath/object_maps.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <string_view>

#include "datapath/skeleton.hpp"
#include "inbound_tc.skel.h"
#include "intercept.skel.h"
#include "listener_scan.skel.h"
#include "meshlane/shared.h"
#include "sockops.skel.h"

namespace meshlane {

bool is_pinned_map(const bpf_map* map) {
  return std::string_view(bpf_map__name(map)).starts_with("ml_");
}

std::uint32_t configured_max_entries(const std::string& map_name, const Config& config) {
  if (map_name == ML_SOCKHASH_MAP_NAME) {
    return config.acceleration.sockhash_max_entries;
  }
  if (map_name == ML_ORIG_DST_MAP_NAME) {
    return config.maps.orig_dst_max_entries;
  }
  if (map_name == ML_TC_FLOWS_MAP_NAME) {
    return config.maps.tc_flow_max_entries;
  }
  // The per-workload counters are keyed like the workloads: one entry each.
  if (map_name == ML_WORKLOADS_MAP_NAME || map_name == ML_WL_COUNTERS_MAP_NAME) {
    return config.maps.workload_max_entries;
  }
  if (map_name == ML_POD_IPS_MAP_NAME) {
    return config.maps.pod_address_max_entries;
  }
  return 0;
}

const char* max_entries_setting(const std::string& map_name) {
  if (map_name == ML_SOCKHASH_MAP_NAME) {
    return "acceleration.sockhash_max_entries";
  }
  if (map_name == ML_ORIG_DST_MAP_NAME) {
    return "maps.orig_dst_max_entries";
  }
  if (map_name == ML_TC_FLOWS_MAP_NAME) {
    return "maps.tc_flow_max_entries";
  }
  if (map_name == ML_WORKLOADS_MAP_NAME || map_name == ML_WL_COUNTERS_MAP_NAME) {
    return "maps.workload_max_entries";
  }
  if (map_name == ML_POD_IPS_MAP_NAME) {
    return "maps.pod_address_max_entries";
  }
  return nullptr;
}

void size_maps(bpf_object* object, const Config& config, const TestHooks& hooks) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!is_pinned_map(map)) {
      continue;
    }
    const std::string name = bpf_map__name(map);
    if (std::uint32_t entries = configured_max_entries(name, config); entries != 0) {
      bpf_map__set_max_entries(map, entries);
    }
    if (std::uint32_t entries = hooks.max_entries_override(name); entries != 0) {
      spdlog::warn("map {}: max_entries {} from MESHLANE_TEST_MAP_MAX_ENTRIES (tests only)", name,
                   entries);
      bpf_map__set_max_entries(map, entries);
    }
  }
}

std::vector<MapSpec> wanted_maps(const std::vector<bpf_object*>& objects) {
  std::vector<MapSpec> specs;
  std::set<std::string> seen;
  for (bpf_object* object : objects) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object) {
      if (!is_pinned_map(map) || !bpf_map__autocreate(map) ||
          !seen.insert(bpf_map__name(map)).second) {
        continue;
      }
      specs.push_back({bpf_map__name(map), static_cast<std::uint32_t>(bpf_map__type(map)),
                       bpf_map__key_size(map), bpf_map__value_size(map), bpf_map__max_entries(map),
                       bpf_map__map_flags(map)});
    }
  }
  return specs;
}

Status set_pin_paths(bpf_object* object, const PinLayout& pins) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!is_pinned_map(map)) {
      continue;
    }
    if (int err = bpf_map__set_pin_path(map, pins.map(bpf_map__name(map)).c_str()); err != 0) {
      return make_error(err, std::string("cannot set pin path of map ") + bpf_map__name(map));
    }
  }
  return {};
}

void BuildMapNames::add(Object which, const bpf_object* object) {
  objects_.insert(which);
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (is_pinned_map(map)) {
      names_.insert(bpf_map__name(map));
    }
  }
}

template <typename T>
Status BuildMapNames::open_and_add(Object which) {
  if (objects_.count(which) != 0) {
    return {};
  }
  // Destroyed before the next one opens; never loaded.
  auto skeleton = Skeleton<T>::open();
  if (!skeleton) {
    return skeleton.error();
  }
  add(which, skeleton.value()->obj);
  return {};
}

Status BuildMapNames::add_unopened() {
  if (auto status = open_and_add<sockops_bpf>(Object::kSockops); !status) {
    return status;
  }
  if (auto status = open_and_add<intercept_bpf>(Object::kIntercept); !status) {
    return status;
  }
  if (auto status = open_and_add<inbound_tc_bpf>(Object::kInboundTc); !status) {
    return status;
  }
  return open_and_add<listener_scan_bpf>(Object::kListenerScan);
}

}  // namespace meshlane
