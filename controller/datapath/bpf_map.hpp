// Typed access to BPF maps: the key and value types are checked once against the kernel's
// key_size/value_size, so a struct that drifts from the map layout fails loudly at open.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "datapath/map_spec.hpp"

namespace meshlane {

// The definition of the map at map_fd, as the kernel reports it.
Result<MapSpec> map_info(int map_fd);
// The kernel's id of the map at map_fd: two fds with the same id are the same map.
Result<std::uint32_t> map_id(int map_fd);

// Opens a pinned BPF object (map, program or link) read-write.
Result<UniqueFd> open_pinned(const std::string& path);

// A pinned map, opened, with its definition as the kernel reports it.
struct PinnedMap {
  UniqueFd fd;
  MapSpec info;
};
Result<PinnedMap> open_pinned_map(const std::string& path);

// Walks the keys of the map at map_fd (key_size bytes each) with bpf_map_get_next_key, calling
// visit(const std::uint8_t* key) for each until it returns false. A key deleted under the walk
// makes the kernel start over from the first key, so a map that churns could keep the walk
// going forever: it stops after max_entries + 1 keys. Keys added or removed meanwhile may be
// missed.
template <typename Visit>
void for_each_map_key(int map_fd, std::uint32_t key_size, std::uint32_t max_entries, Visit visit) {
  std::vector<std::uint8_t> key(key_size);
  std::vector<std::uint8_t> next(key_size);
  const void* previous = nullptr;
  std::uint64_t visited = 0;
  while (bpf_map_get_next_key(map_fd, previous, next.data()) == 0) {
    key.swap(next);
    previous = key.data();
    if (!visit(key.data()) || ++visited > max_entries) {
      return;
    }
  }
}

// Every key of the map at map_fd (see for_each_map_key()), typed.
template <typename Key>
std::vector<Key> read_map_keys(int map_fd, std::uint32_t max_entries) {
  std::vector<Key> keys;
  for_each_map_key(map_fd, sizeof(Key), max_entries, [&keys](const std::uint8_t* raw) {
    Key key{};
    std::memcpy(&key, raw, sizeof(Key));
    keys.push_back(key);
    return true;
  });
  return keys;
}

template <typename Key, typename Value>
class TypedMap {
 public:
  // Takes ownership of map_fd. For per-CPU maps, Value is the per-CPU element type.
  static Result<TypedMap> adopt(UniqueFd map_fd) {
    auto info = map_info(map_fd.get());
    if (!info) {
      return info.error();
    }
    if (info->key_size != sizeof(Key) || info->value_size != sizeof(Value)) {
      return make_error(
          EINVAL, "map " + info->name + " has key/value size " + std::to_string(info->key_size) +
                      "/" + std::to_string(info->value_size) + ", this build expects " +
                      std::to_string(sizeof(Key)) + "/" + std::to_string(sizeof(Value)) +
                      ": the pinned map is from another meshlane version; run "
                      "meshlaned --cleanup");
    }
    return TypedMap(std::move(map_fd), *info);
  }

  static Result<TypedMap> open_pin(const std::string& path) {
    auto fd = open_pinned(path);
    if (!fd) {
      return fd.error();
    }
    return adopt(std::move(fd.value()));
  }

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const MapSpec& info() const { return info_; }

  Status update(const Key& key, const Value& value, std::uint64_t flags = BPF_ANY) {
    if (bpf_map_update_elem(fd_.get(), &key, &value, flags) != 0) {
      return make_error(errno, "update of map " + info_.name + " failed");
    }
    return {};
  }

  [[nodiscard]] std::optional<Value> lookup(const Key& key) const {
    Value value{};
    if (bpf_map_lookup_elem(fd_.get(), &key, &value) != 0) {
      return std::nullopt;
    }
    return value;
  }

  // Reads one element of a per-CPU map: one Value per possible CPU.
  [[nodiscard]] Result<std::vector<Value>> lookup_percpu(const Key& key) const {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) {
      return make_error(-cpus, "cannot count possible CPUs");
    }
    std::vector<Value> values(static_cast<std::size_t>(cpus));
    if (bpf_map_lookup_elem(fd_.get(), &key, values.data()) != 0) {
      return make_error(errno, "lookup in map " + info_.name + " failed");
    }
    return values;
  }

  Status erase(const Key& key) {
    if (bpf_map_delete_elem(fd_.get(), &key) != 0 && errno != ENOENT) {
      return make_error(errno, "delete from map " + info_.name + " failed");
    }
    return {};
  }

  [[nodiscard]] std::vector<Key> keys() const {
    return read_map_keys<Key>(fd_.get(), info_.max_entries);
  }

 private:
  TypedMap(UniqueFd fd, MapSpec info) : fd_(std::move(fd)), info_(std::move(info)) {}

  UniqueFd fd_;
  MapSpec info_;
};

}  // namespace meshlane
