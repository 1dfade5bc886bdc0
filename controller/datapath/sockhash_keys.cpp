#include "datapath/sockhash_keys.hpp"

#include <cerrno>
#include <string>
#include <vector>

#include "datapath/bpf_map.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

Result<std::vector<ml_sock_key>> read_sockhash_keys(const std::string& bpffs_dir) {
  // The sockhash's value is a socket, which user space cannot read: only the keys matter here.
  const PinLayout pins{bpffs_dir};
  auto fd = open_pinned(pins.map(ML_SOCKHASH_MAP_NAME));
  if (!fd) {
    return fd.error();
  }
  auto info = map_info(fd->get());
  if (!info) {
    return info.error();
  }
  if (info->key_size != sizeof(ml_sock_key)) {
    return make_error(EINVAL, "map " + info->name + " has key size " +
                                  std::to_string(info->key_size) + ", this build expects " +
                                  std::to_string(sizeof(ml_sock_key)));
  }
  return read_map_keys<ml_sock_key>(fd->get(), info->max_entries);
}

}  // namespace meshlane
