// The TOML plumbing of the config parser: a value with the key path that led to it (Field), the
// table dispatcher (KeyReader, read_table) and one reader per kind of value, each with its
// checks and error messages. Internal to the config library (config.cpp and its tests of
// messages); nothing outside controller/config/ includes it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "config/config.hpp"

namespace meshlane::config_fields {

constexpr std::int64_t kMinPort = 1;
constexpr std::int64_t kMaxPort = 65535;
constexpr std::int64_t kMinSockhashEntries = 1;
constexpr std::int64_t kMaxUnreadBytesLimit = std::int64_t{1} << 30;
constexpr std::int64_t kMinSpinningReaderPerMille = 1;
constexpr std::int64_t kMaxSpinningReaderPerMille = 1000;
constexpr std::int64_t kMaxSockhashEntries = 16777216;  // 2^24: keeps map memory bounded
// The hash maps of [maps] are preallocated (their whole capacity is kernel memory from the
// start), so their upper bounds are lower. The flow maps keep an eighth free as headroom
// (bpf/include/meshlane/map_room.h): 16 leaves 14 usable entries.
constexpr std::int64_t kMinFlowMapEntries = 16;
constexpr std::int64_t kMaxFlowMapEntries = 4194304;  // 2^22
constexpr std::int64_t kMinWorkloadEntries = 1;
constexpr std::int64_t kMaxWorkloadEntries = 65536;
constexpr std::int64_t kMinPodAddressEntries = 1;
constexpr std::int64_t kMaxPodAddressEntries = 262144;
// (uid_t)-1 and (gid_t)-1 mean "no id" to the kernel, so they cannot name the proxy.
constexpr std::int64_t kMaxProxyId = 4294967294;
// Workload names end up in pin and log names; 63 keeps them short and path-safe.
constexpr std::size_t kMaxWorkloadNameLength = 63;
constexpr std::size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
constexpr std::size_t kMaxSocketPathLength = 107;    // sizeof(sockaddr_un::sun_path) - 1
constexpr std::int64_t kMaxSocketMode = 0777;
constexpr std::size_t kMaxGroupNameLength = 32;
constexpr std::array<MeshKind, 3> kMeshKinds = {MeshKind::kIstio, MeshKind::kLinkerd,
                                                MeshKind::kCustom};
constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};

std::string join(std::span<const std::string_view> words);
std::string join_key(std::string_view prefix, std::string_view key);
std::string_view type_name(toml::node_type type);
Error config_error(const std::string& source_name, const toml::source_region& region,
                   std::string_view dotted_key, std::string_view what);

// A value together with the key path that led to it, so readers can report errors.
struct Field {
  const std::string& source_name;
  std::string dotted_key;
  const toml::node& node;

  [[nodiscard]] Error error(std::string_view what) const {
    return config_error(source_name, node.source(), dotted_key, what);
  }
  [[nodiscard]] Error wrong_type(std::string_view expected) const {
    return error("expected " + std::string(expected) + ", got " +
                 std::string(type_name(node.type())));
  }
  [[nodiscard]] Field element(std::size_t index, const toml::node& element_node) const {
    return Field{source_name, dotted_key + "[" + std::to_string(index) + "]", element_node};
  }
};

struct KeyReader {
  std::string_view key;
  std::function<Status(const Field&)> read;
};

struct HostPort {
  std::string_view host;
  std::optional<std::string_view> port;
};

Status read_entries(const std::string& source_name, const toml::table& table,
                    std::string_view key_prefix, std::span<const KeyReader> readers,
                    std::string_view noun);
Status read_table(const Field& field, std::span<const KeyReader> readers);
Status read_string(const Field& field, std::string& out);
Status read_bool(const Field& field, bool& out);
Status read_integer(const Field& field, std::int64_t min, std::int64_t max, std::int64_t& out);
// read_integer into a 32-bit setting; min and max must lie within its range.
Status read_uint32(const Field& field, std::int64_t min, std::int64_t max, std::uint32_t& out);
Status read_port(const Field& field, std::uint16_t& out);
Status read_address(const Field& field, IpAddress& out);
std::string cidr_problem(std::string_view text);
Status read_cidr(const Field& field, Cidr& out);
std::string describe(std::uint16_t port);
std::string describe(const IpAddress& address);
std::string describe(const Cidr& cidr);
Status read_ports(const Field& field, std::vector<std::uint16_t>& out);
Status read_cidrs(const Field& field, std::vector<Cidr>& out);
Status read_bpffs_dir(const Field& field, std::string& out);
Status read_absolute_path(const Field& field, std::string_view example, std::string& out);
Status read_socket_path(const Field& field, std::string& out);
Status read_socket_mode(const Field& field, std::uint32_t& out);
Status read_socket_group(const Field& field, std::string& out);
Status read_log_level(const Field& field, std::string& out);
Status read_on_missing_feature(const Field& field, std::string& out);
// daemon.inbound_steering: "sk_lookup" or "tc".
Status read_inbound_steering(const Field& field, std::string& out);
Status read_proxy_id(const Field& field, std::uint32_t& out);
Status read_workload_name(const Field& field, std::string& out);
Status read_netns(const Field& field, std::string& out);
Status read_mesh(const Field& field, MeshKind& out);
Status read_ips(const Field& field, std::vector<IpAddress>& out);
Status read_passthrough_sources(const Field& field, std::vector<IpAddress>& out);
std::optional<std::uint16_t> parse_port_text(std::string_view text);
std::optional<HostPort> split_host_port(std::string_view text);
Status read_node_proxy(const Field& field, WorkloadConfig& workload);
bool valid_label_text(std::string_view text, std::size_t min, std::size_t max, bool slash);
Status read_labels(const Field& field, std::map<std::string, std::string>& out);
Status read_listen_address(const Field& field, MetricsConfig& metrics);
Status read_interface(const Field& field, std::string& out);

}  // namespace meshlane::config_fields
