// Events and workloads the monitor tests share: two pods, the records the kernel would send.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "observe/events.hpp"
#include "observe/monitor_hub.hpp"

namespace meshlane::monitor::fixtures {

inline void set_address(__u32 out[4], const std::string& text) {
  IpAddress address = parse_ip_address(text).value();
  std::memcpy(out, address.bytes.data(), 16);
}

constexpr std::uint64_t kCookieA = 4242;
constexpr std::uint64_t kCookieB = 4343;
constexpr std::int64_t kNoon = 1795608000LL * 1000000000LL + 123456789;  // 2026-11-25T12:00:00Z

// pod-a: 198.18.0.10 / fd00::10 in netns kCookieA; pod-b: 198.18.0.11 in netns kCookieB.
inline control::WorkloadIndex index() {
  control::WorkloadIndex index;
  WorkloadConfig a = workload_preset(MeshKind::kIstio);
  a.name = "pod-a";
  a.ips = {parse_ip_address("198.18.0.10").value(), parse_ip_address("fd00::10").value()};
  index.add(a, kCookieA);
  WorkloadConfig b = workload_preset(MeshKind::kIstio);
  b.name = "pod-b";
  b.ips = {parse_ip_address("198.18.0.11").value()};
  index.add(b, kCookieB);
  return index;
}

// pod-a's app connects to pod-b:8080 and is sent to its sidecar 127.0.0.1:15001.
inline ml_event intercepted_outbound() {
  ml_event raw{};
  raw.type = ML_EVENT_INTERCEPTED;
  raw.netns_cookie = kCookieA;
  raw.workload_id = 1;
  set_address(raw.dst_ip6, "127.0.0.1");
  raw.dst_port = 15001;
  set_address(raw.orig_dst_ip6, "198.18.0.11");
  raw.orig_dst_port = 8080;
  raw.reason = ML_REASON_OUTBOUND;
  raw.hop = ML_HOP_APP_TO_PROXY;
  return raw;
}

// pod-a's sidecar's socket to pod-b's inbound proxy, spliced, seen from the given end.
inline ml_event spliced_proxy_to_proxy(bool client) {
  ml_event raw{};
  raw.type = ML_EVENT_SPLICED;
  raw.netns_cookie = client ? kCookieA : kCookieB;
  set_address(raw.src_ip6, client ? "198.18.0.10" : "198.18.0.11");
  raw.src_port = client ? 40000 : 15006;
  set_address(raw.dst_ip6, client ? "198.18.0.11" : "198.18.0.10");
  raw.dst_port = client ? 15006 : 40000;
  raw.side = client ? ML_SIDE_CLIENT : ML_SIDE_SERVER;
  raw.hop = client ? ML_HOP_PROXY_TO_PROXY : ML_HOP_OTHER;
  return raw;
}

// pod-a's connect to pod-b 198.18.0.11:5432 refused by policy rule `rule`.
inline ml_event denied_by_rule(std::uint32_t rule) {
  ml_event raw{};
  raw.type = ML_EVENT_DENIED;
  raw.netns_cookie = kCookieA;
  set_address(raw.dst_ip6, "198.18.0.11");
  raw.dst_port = 5432;
  set_address(raw.orig_dst_ip6, "198.18.0.11");
  raw.orig_dst_port = 5432;
  raw.reason = ML_REASON_POLICY;
  raw.detail = rule;
  return raw;
}

inline Event event(const ml_event& raw) { return make_event(raw, kNoon, index()); }

// Records every kernel gate mask the hub sets.
struct GateLog {
  std::vector<std::uint64_t> masks;
  Hub::GateFn fn() {
    return [this](std::uint64_t mask) { masks.push_back(mask); };
  }
};

}  // namespace meshlane::monitor::fixtures
