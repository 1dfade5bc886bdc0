#include "observe/connections.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <tuple>

#include "meshlane/sock_key.h"

namespace meshlane::control {

namespace {

std::string key_bytes(const ml_sock_key& key) {
  return {reinterpret_cast<const char*>(&key), sizeof key};
}

nlohmann::json owner(const WorkloadIndex& index, const __u32 ip6[4], std::uint64_t scope) {
  if (auto found = index.by_address.find(address_bytes(ip6)); found != index.by_address.end()) {
    return found->second;
  }
  if (scope != 0) {
    if (auto found = index.by_netns_cookie.find(scope); found != index.by_netns_cookie.end()) {
      return found->second;
    }
  }
  return nullptr;
}

// The traits of the workload owning this address (never by loopback scope); nullptr if none.
const WorkloadTraits* traits_by_address(const WorkloadIndex& index, const __u32 ip6[4],
                                        std::string& name) {
  const auto owner = index.by_address.find(address_bytes(ip6));
  if (owner == index.by_address.end()) {
    return nullptr;
  }
  const auto traits = index.by_name.find(owner->second);
  if (traits == index.by_name.end()) {
    return nullptr;
  }
  name = owner->second;
  return &traits->second;
}

bool is_proxy_port(const WorkloadTraits& traits, std::uint16_t port) {
  return port == traits.outbound_port || port == traits.inbound_port;
}

bool listed(const std::vector<std::uint16_t>& ports, std::uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

// Whether a connection from `client` to `server`'s port could have taken the fast path
// (ml_fast_path_applies in bpf/include/meshlane/intercept.h).
bool fast_path_port(const WorkloadIndex& index, const WorkloadTraits& client,
                    const WorkloadTraits& server, std::uint16_t port) {
  if (is_proxy_port(server, port) || listed(server.exclude_inbound_ports, port) ||
      (!server.include_inbound_ports.empty() && !listed(server.include_inbound_ports, port)) ||
      listed(client.fast_path_exclude_ports, port) ||
      listed(server.fast_path_exclude_ports, port)) {
    return false;
  }
  return !index.listening || index.listening(server.netns_cookie, port);
}

auto sort_key(const ml_sock_key& key) {
  return std::make_tuple(address_bytes(key.local_ip6), key.local_port,
                         address_bytes(key.remote_ip6), key.remote_port, key.scope, key.local_seq);
}

}  // namespace

void WorkloadIndex::add(const WorkloadConfig& workload, std::uint64_t netns_cookie) {
  for (const IpAddress& address : workload.ips) {
    by_address.emplace(address.bytes, workload.name);
  }
  if (netns_cookie != 0) {
    by_netns_cookie.emplace(netns_cookie, workload.name);
  }
  by_name.emplace(workload.name,
                  WorkloadTraits{workload.fast_path, workload.outbound_port, workload.inbound_port,
                                 netns_cookie, workload.fast_path_exclude_ports,
                                 workload.include_inbound_ports, workload.exclude_inbound_ports});
}

const char* connection_kind(const ml_sock_key& key, const WorkloadIndex& index) {
  std::string local_name;
  std::string remote_name;
  const WorkloadTraits* local = traits_by_address(index, key.local_ip6, local_name);
  const WorkloadTraits* remote = traits_by_address(index, key.remote_ip6, remote_name);
  if (local == nullptr || remote == nullptr || local_name == remote_name || !local->fast_path ||
      !remote->fast_path) {
    return "other";
  }
  // Either end may be the server (the key does not say which).
  const bool local_serves = !is_proxy_port(*remote, key.remote_port) &&
                            fast_path_port(index, *remote, *local, key.local_port);
  const bool remote_serves = !is_proxy_port(*local, key.local_port) &&
                             fast_path_port(index, *local, *remote, key.remote_port);
  return local_serves || remote_serves ? "fastpath" : "other";
}

std::string endpoint_text(const __u32 ip6[4], std::uint16_t port) {
  IpAddress address{address_bytes(ip6), ml_ip6_is_mapped_v4(ip6) != 0};
  const std::string host = to_string(address);
  return (address.is_ipv4 ? host : "[" + host + "]") + ":" + std::to_string(port);
}

ml_sock_key peer_key(const ml_sock_key& key) {
  ml_sock_key peer{};
  peer.scope = key.scope;
  std::memcpy(peer.local_ip6, key.remote_ip6, sizeof peer.local_ip6);
  std::memcpy(peer.remote_ip6, key.local_ip6, sizeof peer.remote_ip6);
  peer.local_seq = key.remote_seq;
  peer.remote_seq = key.local_seq;
  peer.local_port = key.remote_port;
  peer.remote_port = key.local_port;
  peer.pad = 0;
  return peer;
}

nlohmann::json describe_connections(const std::vector<ml_sock_key>& keys,
                                    const WorkloadIndex& index, std::size_t limit) {
  std::set<std::string> present;
  for (const ml_sock_key& key : keys) {
    present.insert(key_bytes(key));
  }
  std::vector<const ml_sock_key*> sorted;
  sorted.reserve(keys.size());
  for (const ml_sock_key& key : keys) {
    sorted.push_back(&key);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return sort_key(*a) < sort_key(*b); });
  nlohmann::json connections = nlohmann::json::array();
  for (const ml_sock_key* key : sorted) {
    if (connections.size() >= limit) {
      break;
    }
    connections.push_back({
        {"local", endpoint_text(key->local_ip6, key->local_port)},
        {"remote", endpoint_text(key->remote_ip6, key->remote_port)},
        {"scope", key->scope},
        {"workload", owner(index, key->local_ip6, key->scope)},
        {"remote_workload", owner(index, key->remote_ip6, key->scope)},
        {"kind", connection_kind(*key, index)},
        {"peer_in_map", present.count(key_bytes(peer_key(*key))) != 0},
    });
  }
  return {{"connections", connections},
          {"total", keys.size()},
          {"shown", connections.size()},
          {"truncated", connections.size() < keys.size()}};
}

}  // namespace meshlane::control
