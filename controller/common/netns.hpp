// Network namespace handles: entering one on the calling thread, and what the daemon needs to
// know about a pod's namespace (its cookie, an interface's index).
#pragma once

#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace meshlane {

// Moves the calling thread into a network namespace until destroyed, then back.
class NetnsEntry {
 public:
  static Result<NetnsEntry> enter(const std::string& netns_path);

  NetnsEntry(NetnsEntry&&) noexcept = default;
  NetnsEntry& operator=(NetnsEntry&&) = delete;
  NetnsEntry(const NetnsEntry&) = delete;
  NetnsEntry& operator=(const NetnsEntry&) = delete;
  ~NetnsEntry();

 private:
  explicit NetnsEntry(UniqueFd original) : original_(std::move(original)) {}
  UniqueFd original_;
};

// The namespace's cookie, as bpf_get_netns_cookie() reports it (SO_NETNS_COOKIE, Linux 5.14+).
Result<std::uint64_t> netns_cookie_of(const std::string& netns_path);

// Index of an interface inside the namespace.
Result<int> interface_index_in(const std::string& netns_path, const std::string& interface);

}  // namespace meshlane
