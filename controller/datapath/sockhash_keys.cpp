#include "datapath/sockhash_keys.hpp"

#include <bpf/bpf.h>

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
  std::vector<ml_sock_key> keys;
  ml_sock_key current{};
  ml_sock_key next{};
  const ml_sock_key* previous = nullptr;
  while (bpf_map_get_next_key(fd->get(), previous, &next) == 0) {
    keys.push_back(next);
    current = next;
    previous = &current;
    if (keys.size() > info->max_entries) {
      break;  // a map churning under the walk can restart it; never loop forever
    }
  }
  return keys;
}

}  // namespace meshlane
