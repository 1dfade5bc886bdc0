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

namespace {

template <typename T>
Status add_pinned_map_names(std::set<std::string>& names) {
  auto skeleton = Skeleton<T>::open();
  if (!skeleton) {
    return skeleton.error();
  }
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skeleton.value()->obj) {
    if (is_pinned_map(map)) {
      names.insert(bpf_map__name(map));
    }
  }
  return {};
}

}  // namespace

bool is_pinned_map(const bpf_map* map) {
  return std::string_view(bpf_map__name(map)).starts_with("ml_");
}

void size_maps(bpf_object* object, const AccelerationConfig& acceleration, const TestHooks& hooks) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!is_pinned_map(map)) {
      continue;
    }
    const std::string name = bpf_map__name(map);
    if (name == ML_SOCKHASH_MAP_NAME) {
      bpf_map__set_max_entries(map, acceleration.sockhash_max_entries);
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

Result<std::set<std::string>> pinned_map_names_of_build() {
  std::set<std::string> names;
  // Opened one after the other (each is destroyed before the next opens), never loaded.
  if (auto status = add_pinned_map_names<sockops_bpf>(names); !status) {
    return status.error();
  }
  if (auto status = add_pinned_map_names<intercept_bpf>(names); !status) {
    return status.error();
  }
  if (auto status = add_pinned_map_names<inbound_tc_bpf>(names); !status) {
    return status.error();
  }
  if (auto status = add_pinned_map_names<listener_scan_bpf>(names); !status) {
    return status.error();
  }
  return names;
}

}  // namespace meshlane
