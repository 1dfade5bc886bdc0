#include "datapath/policy_map.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <vector>

#include "common/unique_fd.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

namespace {

constexpr std::uint32_t kSlot = 0;

Result<UniqueFd> create_trie() {
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_NO_PREALLOC);
  const int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "ml_policy_gen", sizeof(ml_policy_key),
                                sizeof(ml_policy_value), ML_POLICY_MAX_ENTRIES, &options);
  if (fd < 0) {
    return make_error(errno, "cannot create a policy map (LPM trie of " +
                                 std::to_string(ML_POLICY_MAX_ENTRIES) +
                                 " entries); check RLIMIT_MEMLOCK / the memory cgroup");
  }
  return UniqueFd(fd);
}

Result<UniqueFd> open_slot_map(const std::string& bpffs_dir) {
  const PinLayout pins{bpffs_dir};
  auto fd = open_pinned(pins.map(ML_POLICY_MAP_NAME));
  if (!fd) {
    return make_error(fd.error().errnum,
                      fd.error().context + " (the policy map; is the datapath loaded?)");
  }
  return fd;
}

}  // namespace

Result<PolicyInstallReport> install_policy(const std::string& bpffs_dir,
                                           const policy::CompiledPolicy& compiled) {
  auto slots = open_slot_map(bpffs_dir);
  if (!slots) {
    return slots.error();
  }
  PolicyInstallReport report;
  if (compiled.entries.empty()) {
    if (bpf_map_delete_elem(slots->get(), &kSlot) != 0 && errno != ENOENT) {
      return make_error(errno,
                        "cannot clear the policy slot of " + std::string(ML_POLICY_MAP_NAME));
    }
    report.cleared = true;
    return report;
  }
  const auto started = std::chrono::steady_clock::now();
  auto trie = create_trie();
  if (!trie) {
    return trie.error();
  }
  for (const auto& [key, value] : compiled.entries) {
    if (bpf_map_update_elem(trie->get(), &key, &value, BPF_ANY) != 0) {
      return make_error(errno, "cannot fill the new policy map (entry " +
                                   std::to_string(&key - &compiled.entries.front().first) + " of " +
                                   std::to_string(compiled.entries.size()) + ")");
    }
  }
  report.fill_time = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  // The switch: one update of the slot. The trie stays alive through the slot's reference.
  const auto trie_fd = static_cast<std::uint32_t>(trie->get());
  if (bpf_map_update_elem(slots->get(), &kSlot, &trie_fd, BPF_ANY) != 0) {
    return make_error(errno, "cannot switch " + std::string(ML_POLICY_MAP_NAME) +
                                 " to the new policy (the old one stays in force)");
  }
  report.entries = compiled.entries.size();
  return report;
}

Result<std::size_t> installed_policy_entries(const std::string& bpffs_dir) {
  auto slots = open_slot_map(bpffs_dir);
  if (!slots) {
    return slots.error();
  }
  std::uint32_t trie_id = 0;
  if (bpf_map_lookup_elem(slots->get(), &kSlot, &trie_id) != 0) {
    return errno == ENOENT ? Result<std::size_t>(std::size_t{0})
                           : Result<std::size_t>(make_error(errno, "cannot read the policy slot"));
  }
  UniqueFd trie(bpf_map_get_fd_by_id(trie_id));
  if (!trie) {
    return make_error(errno,
                      "cannot open the policy map in force (id " + std::to_string(trie_id) + ")");
  }
  auto info = map_info(trie.get());
  if (!info) {
    return info.error();
  }
  std::size_t count = 0;
  for_each_map_key(trie.get(), sizeof(ml_policy_key), info->max_entries,
                   [&count](const std::uint8_t*) {
                     ++count;
                     return true;
                   });
  return count;
}

}  // namespace meshlane
