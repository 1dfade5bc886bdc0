// A BPF map's definition: as this build's objects declare it (wanted_maps() in object_maps.hpp)
// or as the kernel reports a map (map_info() in bpf_map.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace meshlane {

struct MapSpec {
  std::string name;  // the kernel keeps the first 15 characters (BPF_OBJ_NAME_LEN)
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  std::uint32_t flags = 0;  // BPF_F_*

  bool operator==(const MapSpec&) const = default;
};

}  // namespace meshlane
