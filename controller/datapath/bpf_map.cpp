#include "datapath/bpf_map.hpp"

namespace meshlane {

namespace {

Result<bpf_map_info> kernel_map_info(int map_fd) {
  bpf_map_info raw{};
  __u32 length = sizeof(raw);
  if (bpf_obj_get_info_by_fd(map_fd, &raw, &length) != 0) {
    return make_error(errno, "cannot read BPF map info of fd " + std::to_string(map_fd));
  }
  return raw;
}

}  // namespace

Result<MapSpec> map_info(int map_fd) {
  auto raw = kernel_map_info(map_fd);
  if (!raw) {
    return raw.error();
  }
  return MapSpec{raw->name,       raw->type,        raw->key_size,
                 raw->value_size, raw->max_entries, raw->map_flags};
}

Result<std::uint32_t> map_id(int map_fd) {
  auto raw = kernel_map_info(map_fd);
  if (!raw) {
    return raw.error();
  }
  return raw->id;
}

Result<UniqueFd> open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return make_error(errno, "cannot open pinned BPF object " + path);
  }
  return UniqueFd(fd);
}

Result<PinnedMap> open_pinned_map(const std::string& path) {
  auto fd = open_pinned(path);
  if (!fd) {
    return fd.error();
  }
  auto info = map_info(fd->get());
  if (!info) {
    return make_error(info.error().errnum, "cannot read the definition of the map pinned at " +
                                               path + " (is it a map?)");
  }
  return PinnedMap{std::move(fd.value()), std::move(info.value())};
}

}  // namespace meshlane
