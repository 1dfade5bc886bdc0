// Network namespace handles: opening a namespace file without trusting its path, entering one on
// the calling thread, and what the daemon needs to know about a pod's namespace (its identity,
// cookie, an interface's index).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace meshlane {

// Which namespace a file is: its nsfs inode (and device), as fstat and `ls -iL` report it. The
// same namespace has the same id through every path (/proc/PID/ns/net, a bind mount under
// /var/run/netns) for as long as it exists.
struct NetnsId {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const NetnsId&) const = default;
};

// Opens `netns_path` as a network namespace, trusting nothing about the path: it is looked up
// with O_PATH (opening nothing, so a FIFO cannot block the caller and a device node is not
// opened), must be on nsfs and be a network namespace (NS_GET_NSTYPE), and is then reopened
// through the O_PATH handle with O_RDONLY | O_NONBLOCK | O_CLOEXEC. Errors name the path, what
// it is instead, and what to give. Symlinks to a namespace file are followed.
Result<UniqueFd> open_network_namespace(const std::string& netns_path);

// The id of an open namespace file.
Result<NetnsId> netns_id_of(int netns_fd, const std::string& netns_path);

// A namespace opened by open_network_namespace(), with its id.
struct OpenNetns {
  UniqueFd fd;
  NetnsId id;
};
Result<OpenNetns> open_network_namespace_with_id(const std::string& netns_path);

// Whether a workload may name the host's network namespace.
enum class HostNetns { kRefuse, kAllow };

// Refuses the daemon's own network namespace and PID 1's (the host's): a workload there
// would put tc steering on the host's interfaces and intercept the node's own connections.
// daemon.allow_host_netns turns this into kAllow.
Status check_not_host_netns(const NetnsId& id, const std::string& netns_path);

// What the daemon needs of a workload's namespace, read through one checked handle.
struct NetnsInfo {
  NetnsId id;
  std::uint64_t cookie = 0;  // bpf_get_netns_cookie()
};
Result<NetnsInfo> inspect_workload_netns(const std::string& netns_path, HostNetns host);

// Moves the calling thread into a network namespace until destroyed, then back.
class NetnsEntry {
 public:
  // Opens the path with open_network_namespace() first.
  static Result<NetnsEntry> enter(const std::string& netns_path);
  static Result<NetnsEntry> enter(int netns_fd, const std::string& netns_path);

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
