// From workload configs to the contents of the workload, pod address, port rule and CIDR rule
// maps (controller/datapath/workload_maps.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "datapath/workload_maps.hpp"

namespace meshlane {
namespace {

using Bytes = std::array<std::uint8_t, 16>;

IpAddress address(std::string_view text) {
  const std::optional<IpAddress> parsed = parse_ip_address(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress{});
}

Cidr cidr(std::string_view text) {
  const std::optional<Cidr> parsed = parse_cidr(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Cidr{});
}

Bytes bytes_of(const __u32 words[4]) {
  Bytes out{};
  std::memcpy(out.data(), words, out.size());
  return out;
}

Bytes bytes_of(std::string_view text) { return address(text).bytes; }

ResolvedWorkload istio_workload(std::uint32_t id, std::uint64_t cookie,
                                std::vector<IpAddress> ips) {
  ResolvedWorkload resolved;
  resolved.config = workload_preset(MeshKind::kIstio);
  resolved.config.name = "pod" + std::to_string(id);
  resolved.config.netns = "/var/run/netns/pod" + std::to_string(id);
  resolved.config.ips = std::move(ips);
  resolved.id = id;
  resolved.netns_cookie = cookie;
  return resolved;
}

ResolvedWorkload pod_a() {
  return istio_workload(3, 4242, {address("10.0.0.5"), address("fd00::5")});
}

std::optional<std::uint8_t> port_rule(const WorkloadMaps& maps, std::uint32_t id,
                                      std::uint16_t port, std::uint8_t direction) {
  std::optional<std::uint8_t> found;
  for (const auto& [key, rule] : maps.port_rules) {
    if (key.workload_id == id && key.port == port && key.direction == direction) {
      EXPECT_FALSE(found.has_value()) << "port " << port << " has two rules";
      found = rule;
    }
  }
  return found;
}

std::size_t port_rule_count(const WorkloadMaps& maps, std::uint32_t id, std::uint8_t direction) {
  std::size_t count = 0;
  for (const auto& [key, rule] : maps.port_rules) {
    count += key.workload_id == id && key.direction == direction ? 1 : 0;
  }
  return count;
}

// ---- make_kernel_workload -------------------------------------------------------------------

TEST(KernelWorkload, IstioPresetFields) {
  const ml_workload kernel = make_kernel_workload(pod_a());
  EXPECT_EQ(kernel.id, 3u);
  EXPECT_EQ(kernel.netns_cookie, 4242u);
  EXPECT_EQ(kernel.proxy_uid, 1337u);
  EXPECT_EQ(kernel.proxy_gid, 1337u);
  EXPECT_EQ(kernel.outbound_port, 15001);
  EXPECT_EQ(kernel.inbound_port, 15006);
  EXPECT_EQ(kernel.flags, 0u) << "no node proxy, no include lists";
  ASSERT_EQ(kernel.passthrough_count, 2u);
  EXPECT_EQ(bytes_of(kernel.passthrough_ip6[0]), bytes_of("127.0.0.6"));
  EXPECT_EQ(bytes_of(kernel.passthrough_ip6[1]), bytes_of("::6"));
  EXPECT_EQ(bytes_of(kernel.node_proxy_ip6), Bytes{});
  EXPECT_EQ(kernel.node_proxy_port, 0);
  EXPECT_EQ(kernel.dns_proxy_port, 0) << "no DNS capture: the former padding stays 0";
  EXPECT_EQ(kernel.pad32, 0u);
}

TEST(KernelWorkload, PassthroughAddressesAreV4MappedInNetworkOrder) {
  const ml_workload kernel = make_kernel_workload(pod_a());
  EXPECT_EQ(kernel.passthrough_ip6[0][0], 0u);
  EXPECT_EQ(kernel.passthrough_ip6[0][1], 0u);
  EXPECT_EQ(kernel.passthrough_ip6[0][2], htonl(0xffff));
  EXPECT_EQ(kernel.passthrough_ip6[0][3], htonl(0x7f000006));
  EXPECT_EQ(kernel.passthrough_ip6[1][3], htonl(6));
}

TEST(KernelWorkload, CustomUidsPortsAndNoPassthrough) {
  ResolvedWorkload w = istio_workload(7, 99, {address("10.0.0.9")});
  w.config = workload_preset(MeshKind::kLinkerd);
  w.config.ips = {address("10.0.0.9")};
  w.config.proxy_gid = 2103;
  const ml_workload kernel = make_kernel_workload(w);
  EXPECT_EQ(kernel.id, 7u);
  EXPECT_EQ(kernel.netns_cookie, 99u);
  EXPECT_EQ(kernel.proxy_uid, 2102u);
  EXPECT_EQ(kernel.proxy_gid, 2103u);
  EXPECT_EQ(kernel.outbound_port, 4140);
  EXPECT_EQ(kernel.inbound_port, 4143);
  EXPECT_EQ(kernel.passthrough_count, 0u);
  EXPECT_EQ(bytes_of(kernel.passthrough_ip6[0]), Bytes{});
}

TEST(KernelWorkload, MoreThanTwoPassthroughSourcesAreCappedAtTheKernelArray) {
  ResolvedWorkload w = pod_a();
  w.config.inbound_passthrough_sources.push_back(address("127.0.0.7"));
  const ml_workload kernel = make_kernel_workload(w);
  EXPECT_EQ(kernel.passthrough_count, static_cast<__u32>(ML_MAX_PASSTHROUGH));
}

TEST(KernelWorkload, NodeProxy) {
  ResolvedWorkload w = pod_a();
  w.config.node_proxy_address = address("192.0.2.1");
  w.config.node_proxy_port = 15008;
  const ml_workload kernel = make_kernel_workload(w);
  EXPECT_EQ(kernel.flags, ML_WL_NODE_PROXY);
  EXPECT_EQ(bytes_of(kernel.node_proxy_ip6), bytes_of("::ffff:192.0.2.1"));
  EXPECT_EQ(kernel.node_proxy_port, 15008);

  w.config.node_proxy_address = address("fd00::1");
  w.config.node_proxy_port = 0;
  const ml_workload v6 = make_kernel_workload(w);
  EXPECT_EQ(v6.flags, ML_WL_NODE_PROXY);
  EXPECT_EQ(bytes_of(v6.node_proxy_ip6), bytes_of("fd00::1"));
  EXPECT_EQ(v6.node_proxy_port, 0) << "0: the datapath uses outbound_port";
}

TEST(KernelWorkload, NodeProxyPortWithoutAddressIsNotANodeProxy) {
  ResolvedWorkload w = pod_a();
  w.config.node_proxy_port = 15008;
  const ml_workload kernel = make_kernel_workload(w);
  EXPECT_EQ(kernel.flags & ML_WL_NODE_PROXY, 0u);
  EXPECT_EQ(kernel.node_proxy_port, 0);
}

TEST(KernelWorkload, IncludeListsSetTheirFlagsIndependently) {
  ResolvedWorkload w = pod_a();
  w.config.include_outbound_ports = {80};
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_INCLUDE_OUT_PORTS);

  w = pod_a();
  w.config.include_inbound_ports = {8080};
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_INCLUDE_IN_PORTS);

  w = pod_a();
  w.config.include_outbound_cidrs = {cidr("10.96.0.0/12")};
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_INCLUDE_OUT_CIDRS);

  // Exclude lists never set an include flag.
  w = pod_a();
  w.config.exclude_outbound_ports = {22};
  w.config.exclude_outbound_cidrs = {cidr("169.254.0.0/16")};
  w.config.exclude_inbound_cidrs = {cidr("fd00:1::/64")};
  EXPECT_EQ(make_kernel_workload(w).flags, 0u);

  w = pod_a();
  w.config.include_outbound_ports = {80};
  w.config.include_inbound_ports = {8080};
  w.config.include_outbound_cidrs = {cidr("10.96.0.0/12")};
  w.config.node_proxy_address = address("192.0.2.1");
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_NODE_PROXY | ML_WL_INCLUDE_OUT_PORTS |
                                               ML_WL_INCLUDE_IN_PORTS | ML_WL_INCLUDE_OUT_CIDRS);
}

TEST(KernelWorkload, DnsCaptureFlagAndPort) {
  ResolvedWorkload w = pod_a();
  EXPECT_EQ(make_kernel_workload(w).flags & ML_WL_DNS_CAPTURE, 0u) << "off by default";
  EXPECT_EQ(make_kernel_workload(w).dns_proxy_port, 0) << "no port without capture";

  w.config.dns_capture = true;
  w.config.dns_proxy_port = 15053;
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_DNS_CAPTURE);
  EXPECT_EQ(make_kernel_workload(w).dns_proxy_port, 15053);

  // The config refuses capture without a port; should one get here, nothing is captured.
  w.config.dns_proxy_port = 0;
  EXPECT_EQ(make_kernel_workload(w).flags & ML_WL_DNS_CAPTURE, 0u);
}

TEST(KernelWorkload, FastPathFlags) {
  ResolvedWorkload w = pod_a();
  EXPECT_EQ(make_kernel_workload(w).flags & (ML_WL_FAST_PATH | ML_WL_FAST_PATH_PORT_RULES), 0u)
      << "off by default";

  w.config.fast_path = true;
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_FAST_PATH);

  w.config.fast_path_exclude_ports = {9443};
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_FAST_PATH | ML_WL_FAST_PATH_PORT_RULES);

  // Like the acceleration exclusions, the rules flag follows the list, whatever the switch.
  w.config.fast_path = false;
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_FAST_PATH_PORT_RULES);

  // Independent of the acceleration settings.
  w = pod_a();
  w.config.acceleration = false;
  w.config.exclude_acceleration_ports = {6379};
  EXPECT_EQ(make_kernel_workload(w).flags, ML_WL_NO_ACCEL | ML_WL_ACCEL_PORT_RULES);
  w.config.fast_path = true;
  EXPECT_EQ(make_kernel_workload(w).flags,
            ML_WL_NO_ACCEL | ML_WL_ACCEL_PORT_RULES | ML_WL_FAST_PATH);
}

// ---- build_workload_maps --------------------------------------------------------------------

TEST(WorkloadMaps, OneWorkloadEntryPerWorkloadKeyedByCookie) {
  const ResolvedWorkload a = pod_a();
  const ResolvedWorkload b = istio_workload(4, 4343, {address("10.0.0.6")});
  const WorkloadMaps maps = build_workload_maps({a, b});
  ASSERT_EQ(maps.workloads.size(), 2u);
  EXPECT_EQ(maps.workloads[0].first, 4242u);
  EXPECT_EQ(maps.workloads[0].second.id, 3u);
  EXPECT_EQ(maps.workloads[1].first, 4343u);
  EXPECT_EQ(maps.workloads[1].second.id, 4u);
  const ml_workload expected = make_kernel_workload(a);
  EXPECT_EQ(std::memcmp(&maps.workloads[0].second, &expected, sizeof(expected)), 0);
}

TEST(WorkloadMaps, OnePodAddressEntryPerAddressCarryingTheWorkload) {
  const ResolvedWorkload a = pod_a();
  const ResolvedWorkload b = istio_workload(4, 4343, {address("10.0.0.6")});
  const WorkloadMaps maps = build_workload_maps({a, b});
  ASSERT_EQ(maps.pod_ips.size(), 3u);
  EXPECT_EQ(bytes_of(maps.pod_ips[0].first.ip6), bytes_of("::ffff:10.0.0.5"));
  EXPECT_EQ(bytes_of(maps.pod_ips[1].first.ip6), bytes_of("fd00::5"));
  EXPECT_EQ(bytes_of(maps.pod_ips[2].first.ip6), bytes_of("::ffff:10.0.0.6"));
  const ml_workload kernel_a = make_kernel_workload(a);
  const ml_workload kernel_b = make_kernel_workload(b);
  EXPECT_EQ(std::memcmp(&maps.pod_ips[0].second, &kernel_a, sizeof(kernel_a)), 0);
  EXPECT_EQ(std::memcmp(&maps.pod_ips[1].second, &kernel_a, sizeof(kernel_a)), 0);
  EXPECT_EQ(std::memcmp(&maps.pod_ips[2].second, &kernel_b, sizeof(kernel_b)), 0);
  // The datapath tells a pod's own address by this cookie.
  EXPECT_EQ(maps.pod_ips[1].second.netns_cookie, 4242u);
  EXPECT_EQ(maps.pod_ips[2].second.netns_cookie, 4343u);
}

TEST(WorkloadMaps, IstioPresetExcludesItsInboundPorts) {
  const WorkloadMaps maps = build_workload_maps({pod_a()});
  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_INBOUND), 4u);
  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_OUTBOUND), 0u);
  for (std::uint16_t port : {15008, 15020, 15021, 15090}) {
    EXPECT_EQ(port_rule(maps, 3, port, ML_DIR_INBOUND),
              std::optional<std::uint8_t>(ML_RULE_EXCLUDE))
        << port;
  }
  for (const auto& [key, rule] : maps.port_rules) {
    EXPECT_EQ(key.pad, 0);
  }
}

TEST(WorkloadMaps, PortRulesPerDirectionAndExcludeWinsOverInclude) {
  ResolvedWorkload w = pod_a();
  w.config.include_outbound_ports = {80, 443, 5432};
  w.config.exclude_outbound_ports = {5432, 22};
  w.config.include_inbound_ports = {8080, 9090};
  w.config.exclude_inbound_ports = {9090};
  const WorkloadMaps maps = build_workload_maps({w});

  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_OUTBOUND), 4u);
  EXPECT_EQ(port_rule(maps, 3, 80, ML_DIR_OUTBOUND), std::optional<std::uint8_t>(ML_RULE_INCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 443, ML_DIR_OUTBOUND), std::optional<std::uint8_t>(ML_RULE_INCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 5432, ML_DIR_OUTBOUND),
            std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 22, ML_DIR_OUTBOUND), std::optional<std::uint8_t>(ML_RULE_EXCLUDE));

  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_INBOUND), 2u);
  EXPECT_EQ(port_rule(maps, 3, 8080, ML_DIR_INBOUND), std::optional<std::uint8_t>(ML_RULE_INCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 9090, ML_DIR_INBOUND), std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  // Directions do not leak into each other.
  EXPECT_EQ(port_rule(maps, 3, 8080, ML_DIR_OUTBOUND), std::nullopt);
  EXPECT_EQ(port_rule(maps, 3, 80, ML_DIR_INBOUND), std::nullopt);
}

TEST(WorkloadMaps, FastPathExcludedPortsAreExcludeRulesOfTheirOwnDirection) {
  ResolvedWorkload a = pod_a();
  a.config.fast_path = true;
  a.config.fast_path_exclude_ports = {9443, 5432};
  a.config.exclude_acceleration_ports = {5432};
  a.config.exclude_outbound_ports = {9443};
  ResolvedWorkload b = istio_workload(4, 4343, {address("10.0.0.6")});
  b.config.fast_path = true;
  const WorkloadMaps maps = build_workload_maps({a, b});

  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_FAST_PATH), 2u);
  EXPECT_EQ(port_rule(maps, 3, 9443, ML_DIR_FAST_PATH),
            std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 5432, ML_DIR_FAST_PATH),
            std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  // The same ports in the other lists keep their own rules, in their own directions.
  EXPECT_EQ(port_rule(maps, 3, 5432, ML_DIR_ACCEL), std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 9443, ML_DIR_OUTBOUND),
            std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  EXPECT_EQ(port_rule(maps, 3, 9443, ML_DIR_ACCEL), std::nullopt);
  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_ACCEL), 1u);
  // A fast-path workload without exclusions has no rules in that direction.
  EXPECT_EQ(port_rule_count(maps, 4, ML_DIR_FAST_PATH), 0u);
  // The flags reach both the workload map and the pod address map.
  ASSERT_EQ(maps.workloads.size(), 2u);
  EXPECT_EQ(maps.workloads[0].second.flags,
            ML_WL_FAST_PATH | ML_WL_FAST_PATH_PORT_RULES | ML_WL_ACCEL_PORT_RULES);
  EXPECT_EQ(maps.workloads[1].second.flags, ML_WL_FAST_PATH);
  ASSERT_EQ(maps.pod_ips.size(), 3u);
  EXPECT_EQ(maps.pod_ips[2].second.flags, ML_WL_FAST_PATH);
  EXPECT_NE(maps.pod_ips[0].second.flags & ML_WL_FAST_PATH, 0u);
}

TEST(WorkloadMaps, NoFastPathRulesByDefault) {
  const WorkloadMaps maps = build_workload_maps({pod_a()});
  EXPECT_EQ(port_rule_count(maps, 3, ML_DIR_FAST_PATH), 0u);
}

TEST(WorkloadMaps, PortRulesAreScopedByWorkloadId) {
  ResolvedWorkload a = pod_a();
  a.config.exclude_outbound_ports = {22};
  ResolvedWorkload b = istio_workload(4, 4343, {address("10.0.0.6")});
  b.config.include_outbound_ports = {22};
  const WorkloadMaps maps = build_workload_maps({a, b});
  EXPECT_EQ(port_rule(maps, 3, 22, ML_DIR_OUTBOUND), std::optional<std::uint8_t>(ML_RULE_EXCLUDE));
  EXPECT_EQ(port_rule(maps, 4, 22, ML_DIR_OUTBOUND), std::optional<std::uint8_t>(ML_RULE_INCLUDE));
}

const ml_cidr_rule_key* find_cidr(const WorkloadMaps& maps, std::uint32_t list,
                                  std::uint8_t* rule) {
  const ml_cidr_rule_key* found = nullptr;
  for (const auto& [key, value] : maps.cidr_rules) {
    if (key.list == htonl(list)) {
      EXPECT_EQ(found, nullptr) << "list " << list << " has two entries";
      found = &key;
      *rule = value;
    }
  }
  return found;
}

TEST(WorkloadMaps, CidrRuleKeys) {
  ResolvedWorkload w = pod_a();
  w.config.include_outbound_cidrs = {cidr("10.96.0.0/12")};
  w.config.exclude_outbound_cidrs = {cidr("169.254.169.254/32")};
  w.config.exclude_inbound_cidrs = {cidr("fd00:1::/64")};
  const WorkloadMaps maps = build_workload_maps({w});
  ASSERT_EQ(maps.cidr_rules.size(), 3u);

  std::uint8_t rule = 0;
  const ml_cidr_rule_key* include = find_cidr(maps, ML_CIDR_LIST_OUT_INCLUDE, &rule);
  ASSERT_NE(include, nullptr);
  EXPECT_EQ(rule, ML_RULE_INCLUDE);
  EXPECT_EQ(include->prefixlen, 64u + 96u + 12u);
  EXPECT_EQ(include->workload_id, htonl(3));
  EXPECT_EQ(include->list, htonl(ML_CIDR_LIST_OUT_INCLUDE));
  EXPECT_EQ(bytes_of(include->ip6), bytes_of("::ffff:10.96.0.0"));
  // Big-endian id and list: the trie compares the key bytewise, most significant first.
  const auto* raw = reinterpret_cast<const std::uint8_t*>(include);
  EXPECT_EQ(raw[4], 0);
  EXPECT_EQ(raw[7], 3);
  EXPECT_EQ(raw[8], 0);
  EXPECT_EQ(raw[11], ML_CIDR_LIST_OUT_INCLUDE);

  const ml_cidr_rule_key* exclude_out = find_cidr(maps, ML_CIDR_LIST_OUT_EXCLUDE, &rule);
  ASSERT_NE(exclude_out, nullptr);
  EXPECT_EQ(rule, ML_RULE_EXCLUDE);
  EXPECT_EQ(exclude_out->prefixlen, 64u + 128u);
  EXPECT_EQ(exclude_out->workload_id, htonl(3));
  EXPECT_EQ(bytes_of(exclude_out->ip6), bytes_of("::ffff:169.254.169.254"));

  const ml_cidr_rule_key* exclude_in = find_cidr(maps, ML_CIDR_LIST_IN_EXCLUDE, &rule);
  ASSERT_NE(exclude_in, nullptr);
  EXPECT_EQ(rule, ML_RULE_EXCLUDE);
  EXPECT_EQ(exclude_in->prefixlen, 64u + 64u);
  EXPECT_EQ(exclude_in->workload_id, htonl(3));
  EXPECT_EQ(bytes_of(exclude_in->ip6), bytes_of("fd00:1::"));
}

TEST(WorkloadMaps, CidrRulesForEveryPrefixAndWorkload) {
  ResolvedWorkload a = pod_a();
  a.config.exclude_outbound_cidrs = {cidr("10.0.0.0/8"), cidr("192.168.0.0/16"), cidr("::/0")};
  ResolvedWorkload b = istio_workload(4, 4343, {address("10.0.0.6")});
  b.config.exclude_outbound_cidrs = {cidr("0.0.0.0/0")};
  const WorkloadMaps maps = build_workload_maps({a, b});
  ASSERT_EQ(maps.cidr_rules.size(), 4u);
  EXPECT_EQ(maps.cidr_rules[0].first.prefixlen, 64u + 104u);
  EXPECT_EQ(maps.cidr_rules[1].first.prefixlen, 64u + 112u);
  EXPECT_EQ(bytes_of(maps.cidr_rules[1].first.ip6), bytes_of("::ffff:192.168.0.0"));
  EXPECT_EQ(maps.cidr_rules[2].first.prefixlen, 64u);
  EXPECT_EQ(bytes_of(maps.cidr_rules[2].first.ip6), Bytes{});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(maps.cidr_rules[i].first.workload_id, htonl(3)) << i;
    EXPECT_EQ(maps.cidr_rules[i].first.list, htonl(ML_CIDR_LIST_OUT_EXCLUDE)) << i;
  }
  // IPv4 0.0.0.0/0 is ::ffff:0:0/96: it must not cover IPv6 destinations.
  EXPECT_EQ(maps.cidr_rules[3].first.workload_id, htonl(4));
  EXPECT_EQ(maps.cidr_rules[3].first.prefixlen, 64u + 96u);
  EXPECT_EQ(bytes_of(maps.cidr_rules[3].first.ip6), bytes_of("::ffff:0.0.0.0"));
}

TEST(WorkloadMaps, NoWorkloadsNoEntries) {
  const WorkloadMaps maps = build_workload_maps({});
  EXPECT_TRUE(maps.workloads.empty());
  EXPECT_TRUE(maps.pod_ips.empty());
  EXPECT_TRUE(maps.port_rules.empty());
  EXPECT_TRUE(maps.cidr_rules.empty());
}

// ---- Resolution: a vanished pod blocks nothing, a new bad one blocks its change ----------------

namespace resolution {

WorkloadConfig pod(const std::string& name) {
  WorkloadConfig config = workload_preset(MeshKind::kIstio);
  config.name = name;
  config.netns = "/var/run/netns/" + name;
  config.ips = {address("198.18.0.10")};
  return config;
}

// Namespaces that exist, by path, with their cookies; any other path is gone (ENOENT).
ResolveNetnsFn existing(std::map<std::string, std::uint64_t> cookies) {
  return [cookies](const WorkloadConfig& config) -> Result<NetnsInfo> {
    auto found = cookies.find(config.netns);
    if (found == cookies.end()) {
      return make_error(
          ENOENT, "workload " + config.name + ": cannot open network namespace " + config.netns);
    }
    return NetnsInfo{{1, found->second}, found->second};
  };
}

TEST(ResolveWorkloads, AllResolveWithIdsBySortedName) {
  auto resolution = resolve_workloads(
      {pod("b"), pod("a")}, existing({{"/var/run/netns/a", 11}, {"/var/run/netns/b", 12}}),
      [](const WorkloadConfig&) { return false; });
  ASSERT_TRUE(resolution.ok());
  ASSERT_EQ(resolution->resolved.size(), 2u);
  EXPECT_EQ(resolution->resolved[0].config.name, "a");
  EXPECT_EQ(resolution->resolved[0].id, 1u);
  EXPECT_EQ(resolution->resolved[0].netns_cookie, 11u);
  EXPECT_EQ(resolution->resolved[0].netns_id.inode, 11u);
  EXPECT_EQ(resolution->resolved[1].id, 2u);
  EXPECT_TRUE(resolution->unavailable.empty());
}

TEST(ResolveWorkloads, AVanishedPodThatWasInForceIsKeptAsUnavailable) {
  // a's namespace was deleted after a was applied; c is being added.
  auto resolution = resolve_workloads(
      {pod("a"), pod("b"), pod("c")},
      existing({{"/var/run/netns/b", 12}, {"/var/run/netns/c", 13}}),
      [](const WorkloadConfig& config) { return config.name == "a" || config.name == "b"; });
  ASSERT_TRUE(resolution.ok()) << resolution.error().message();
  ASSERT_EQ(resolution->resolved.size(), 2u);
  EXPECT_EQ(resolution->resolved[0].config.name, "b");
  EXPECT_EQ(resolution->resolved[0].id, 1u);  // ids stay dense: they scope the rule maps
  EXPECT_EQ(resolution->resolved[1].config.name, "c");
  ASSERT_EQ(resolution->unavailable.count("a"), 1u);
  const UnavailableWorkload& a = resolution->unavailable.at("a");
  EXPECT_EQ(a.netns, "/var/run/netns/a");
  EXPECT_EQ(a.interface, "eth0");
  EXPECT_NE(a.reason.find("cannot open network namespace /var/run/netns/a"), std::string::npos);
}

TEST(ResolveWorkloads, ANewWorkloadThatDoesNotResolveFailsTheChange) {
  auto resolution =
      resolve_workloads({pod("a"), pod("new")}, existing({{"/var/run/netns/a", 11}}),
                        [](const WorkloadConfig& config) { return config.name == "a"; });
  ASSERT_FALSE(resolution.ok());
  EXPECT_EQ(resolution.error().errnum, ENOENT);
  EXPECT_NE(resolution.error().context.find("workload new: "), std::string::npos);
}

TEST(ResolveWorkloads, TwoWorkloadsInOneNamespaceAreRefused) {
  WorkloadConfig twin = pod("b");
  twin.netns = "/var/run/netns/a";
  auto resolution = resolve_workloads({pod("a"), twin}, existing({{"/var/run/netns/a", 11}}),
                                      [](const WorkloadConfig&) { return true; });
  ASSERT_FALSE(resolution.ok());
  EXPECT_EQ(resolution.error().context,
            "workload b: netns /var/run/netns/a is already the namespace of workload a "
            "(/var/run/netns/a)");
}

TEST(ResolveWorkloads, TwoPathsToOneNamespaceAreRefused) {
  // A bind mount or /proc/PID/ns/net of a process in the pod: another path, the same cookie.
  WorkloadConfig twin = pod("b");
  twin.netns = "/proc/77/ns/net";
  auto resolution = resolve_workloads({pod("a"), twin},
                                      existing({{"/var/run/netns/a", 11}, {"/proc/77/ns/net", 11}}),
                                      [](const WorkloadConfig&) { return true; });
  ASSERT_FALSE(resolution.ok());
  EXPECT_EQ(resolution.error().context,
            "workload b: netns /proc/77/ns/net is already the namespace of workload a "
            "(/var/run/netns/a)");
}

}  // namespace resolution

}  // namespace
}  // namespace meshlane
