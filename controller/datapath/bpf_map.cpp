#include "datapath/bpf_map.hpp"

namespace meshlane {

Result<MapInfo> map_info(int map_fd) {
  bpf_map_info raw{};
  __u32 length = sizeof(raw);
  if (bpf_obj_get_info_by_fd(map_fd, &raw, &length) != 0) {
    return make_error(errno, "cannot read BPF map info of fd " + std::to_string(map_fd));
  }
  return MapInfo{raw.name,       raw.id,          raw.type,     raw.key_size,
                 raw.value_size, raw.max_entries, raw.map_flags};
}

Result<UniqueFd> open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return make_error(errno, "cannot open pinned BPF object " + path);
  }
  return UniqueFd(fd);
}

}  // namespace meshlane
