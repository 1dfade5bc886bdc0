// Spliced connections as the control protocol's "conns" method reports them: the keys of the
// pinned sockhash (one per spliced socket), with their addresses and the workloads they belong
// to.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/config.hpp"
#include "meshlane/shared.h"

namespace meshlane::control {

// A datapath address (struct fields of four network-order words: IPv6 or v4-mapped) as the
// 16 bytes the indexes below and IpAddress key on.
inline std::array<std::uint8_t, 16> address_bytes(const __u32 ip6[4]) {
  std::array<std::uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), ip6, bytes.size());
  return bytes;
}

// The all-zero address: what an event's end holds when the datapath did not know it.
inline bool is_unspecified(const __u32 ip6[4]) { return (ip6[0] | ip6[1] | ip6[2] | ip6[3]) == 0; }

// What conns needs to know of a workload to tell a connection's kind.
struct WorkloadTraits {
  bool fast_path = false;
  std::uint16_t outbound_port = 0;
  std::uint16_t inbound_port = 0;
  std::uint64_t netns_cookie = 0;
  std::vector<std::uint16_t> fast_path_exclude_ports;
  std::vector<std::uint16_t> include_inbound_ports;
  std::vector<std::uint16_t> exclude_inbound_ports;
};

// Which workload an address or a loopback scope (netns cookie) belongs to, and its traits.
struct WorkloadIndex {
  std::map<std::array<std::uint8_t, 16>, std::string> by_address;  // v4-mapped or IPv6 bytes
  std::map<std::uint64_t, std::string> by_netns_cookie;
  std::map<std::string, WorkloadTraits> by_name;
  // Whether a listener of the cgroup exists in a namespace on a port (the datapath's record);
  // tells a connection's server end from its client end. Unset: not consulted.
  std::function<bool(std::uint64_t netns_cookie, std::uint16_t port)> listening;

  void add(const WorkloadConfig& workload, std::uint64_t netns_cookie);
};

// "198.18.0.10:8080" or "[fd00::10]:8080" (v4-mapped addresses shown as IPv4).
std::string endpoint_text(const __u32 ip6[4], std::uint16_t port);

// The peer socket's key: what sock_ops stored as ml_sock_state.peer for this socket.
ml_sock_key peer_key(const ml_sock_key& key);

// The kind of a spliced socket's connection, told from the workloads' settings the way the
// datapath decides (the sockhash keeps no hop kind): "fastpath" when its two addresses belong
// to two different workloads that both have fast_path on, and one end (the server: a listener
// of the cgroup exists there, when index.listening is set) is on a port the fast path takes: not
// a proxy port of the server's workload, intercepted inbound there, and excepted by neither
// workload; "other" for everything else, sidecar hops included. Connections made before a
// switch are told by the settings now.
const char* connection_kind(const ml_sock_key& key, const WorkloadIndex& index);

// {"connections":[{"local","remote","scope","workload","remote_workload","kind",
//  "peer_in_map"}...], "total":N,"shown":M,"truncated":bool}, at most `limit` entries, sorted
// by local then remote. A side belongs to a workload when its address is one of the workload's,
// or, for loopback sockets (scope != 0), when the scope is the workload's netns cookie. "kind"
// is connection_kind().
nlohmann::json describe_connections(const std::vector<ml_sock_key>& keys,
                                    const WorkloadIndex& index, std::size_t limit);

}  // namespace meshlane::control
