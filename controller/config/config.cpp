// Parses meshlane.toml with toml++ into meshlane::Config.
//
// Each top-level table has one parse function, registered in parse_root(); each key has one
// reader. Unknown tables and keys are errors rather than warnings because a misspelt key
// would otherwise silently leave a default in force.

#include "config/config.hpp"
#include "common/text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "config/toml_fields.hpp"

namespace meshlane {

bool is_valid_label_key(std::string_view key) {
  return config_fields::valid_label_text(key, 1, 253, true);
}
bool is_valid_label_value(std::string_view value) {
  return config_fields::valid_label_text(value, 0, 63, false);
}

namespace {

using namespace config_fields;  // NOLINT(google-build-using-namespace): this library's readers

// ---- Tables ---------------------------------------------------------------------------------

Status parse_daemon_table(const Field& field, DaemonConfig& daemon) {
  const toml::node* socket_group_node = nullptr;
  const std::array<KeyReader, 13> readers = {{
      {"bpffs_dir", [&](const Field& f) { return read_bpffs_dir(f, daemon.bpffs_dir); }},
      {"cgroup", [&](const Field& f) { return read_string(f, daemon.cgroup); }},
      {"log_level", [&](const Field& f) { return read_log_level(f, daemon.log_level); }},
      {"on_missing_feature",
       [&](const Field& f) { return read_on_missing_feature(f, daemon.on_missing_feature); }},
      {"socket", [&](const Field& f) { return read_socket_path(f, daemon.socket); }},
      {"socket_mode", [&](const Field& f) { return read_socket_mode(f, daemon.socket_mode); }},
      {"socket_read_group",
       [&](const Field& f) { return read_socket_group(f, daemon.socket_read_group); }},
      {"socket_write_group",
       [&](const Field& f) { return read_socket_group(f, daemon.socket_write_group); }},
      {"socket_group",
       [&](const Field& f) {
         socket_group_node = &f.node;
         return read_socket_group(f, daemon.socket_group);
       }},
      {"state_dir",
       [&](const Field& f) {
         return read_absolute_path(f, "/var/lib/meshlane", daemon.state_dir);
       }},
      {"allow_host_netns", [&](const Field& f) { return read_bool(f, daemon.allow_host_netns); }},
      {"decision_log",
       [&](const Field& f) { return read_uint32(f, 0, kMaxDecisionLog, daemon.decision_log); }},
      {"inbound_steering",
       [&](const Field& f) { return read_inbound_steering(f, daemon.inbound_steering); }},
  }};
  if (Status status = read_table(field, readers); !status) {
    return status;
  }
  // The deprecated alias: it granted every method, which is what the write group grants now.
  // Checked once the whole table is read: the keys may come in any order.
  if (!daemon.socket_group.empty() && socket_group_node != nullptr) {
    if (!daemon.socket_write_group.empty()) {
      return Field{field.source_name, join_key(field.dotted_key, "socket_group"),
                   *socket_group_node}
          .error(
              "the old name of daemon.socket_write_group, which is set too: keep only "
              "socket_write_group (and socket_read_group for read-only callers)");
    }
    daemon.socket_write_group = daemon.socket_group;
  }
  return {};
}

Status parse_acceleration_table(const Field& field, AccelerationConfig& acceleration) {
  const std::array<KeyReader, 9> readers = {{
      {"enabled", [&](const Field& f) { return read_bool(f, acceleration.enabled); }},
      {"adaptive_splicing",
       [&](const Field& f) { return read_bool(f, acceleration.adaptive_splicing); }},
      {"leave_spinning_readers",
       [&](const Field& f) { return read_bool(f, acceleration.leave_spinning_readers); }},
      {"spinning_reader_per_mille",
       [&](const Field& f) {
         return read_uint32(f, kMinSpinningReaderPerMille, kMaxSpinningReaderPerMille,
                            acceleration.spinning_reader_per_mille);
       }},
      {"splice_blocking_sockets",
       [&](const Field& f) { return read_bool(f, acceleration.splice_blocking_sockets); }},
      {"sockhash_max_entries",
       [&](const Field& f) {
         return read_uint32(f, kMinSockhashEntries, kMaxSockhashEntries,
                            acceleration.sockhash_max_entries);
       }},
      {"include_ports", [&](const Field& f) { return read_ports(f, acceleration.include_ports); }},
      {"exclude_ports", [&](const Field& f) { return read_ports(f, acceleration.exclude_ports); }},
      {"max_unread_bytes",
       [&](const Field& f) {
         return read_uint32(f, 0, kMaxUnreadBytesLimit, acceleration.max_unread_bytes);
       }},
  }};
  return read_table(field, readers);
}

Status parse_maps_table(const Field& field, MapsConfig& maps) {
  auto entries = [](std::int64_t min, std::int64_t max, std::uint32_t& out) {
    return [min, max, &out](const Field& f) { return read_uint32(f, min, max, out); };
  };
  const std::array<KeyReader, 4> readers = {{
      {"orig_dst_max_entries",
       entries(kMinFlowMapEntries, kMaxFlowMapEntries, maps.orig_dst_max_entries)},
      {"tc_flow_max_entries",
       entries(kMinFlowMapEntries, kMaxFlowMapEntries, maps.tc_flow_max_entries)},
      {"workload_max_entries",
       entries(kMinWorkloadEntries, kMaxWorkloadEntries, maps.workload_max_entries)},
      {"pod_address_max_entries",
       entries(kMinPodAddressEntries, kMaxPodAddressEntries, maps.pod_address_max_entries)},
  }};
  return read_table(field, readers);
}

Status parse_metrics_table(const Field& field, MetricsConfig& metrics) {
  const toml::node* listen_node = nullptr;
  const std::array<KeyReader, 2> readers = {{
      {"listen",
       [&](const Field& f) {
         listen_node = &f.node;
         return read_listen_address(f, metrics);
       }},
      {"allow_non_loopback",
       [&](const Field& f) { return read_bool(f, metrics.allow_non_loopback); }},
  }};
  if (Status status = read_table(field, readers); !status) {
    return status;
  }
  // Checked once the whole table is read: the keys may come in any order.
  if (metrics.listen_address && !is_loopback(metrics.listen_address->address) &&
      !metrics.allow_non_loopback && listen_node != nullptr) {
    return Field{field.source_name, join_key(field.dotted_key, "listen"), *listen_node}.error(
        "\"" + metrics.listen +
        "\" is not a loopback address, and the metrics endpoint has no authentication: listen "
        "on 127.0.0.1 or ::1, or set metrics.allow_non_loopback = true to serve it there anyway");
  }
  return {};
}

Status parse_kubernetes_table(const Field& field, KubernetesConfig& kubernetes) {
  // "" switches the cache scan off; any other value is a directory the daemon reads as root.
  auto read_optional_path = [](const Field& f, std::string_view example, std::string& out) {
    if (f.node.is_string() && f.node.as_string()->get().empty()) {
      out.clear();
      return Status{};
    }
    return read_absolute_path(f, example, out);
  };
  const std::array<KeyReader, 2> readers = {{
      {"cni_cache_dir",
       [&](const Field& f) {
         return read_optional_path(f, "/var/lib/cni", kubernetes.cni_cache_dir);
       }},
      {"cni_conf_dir",
       [&](const Field& f) {
         return read_absolute_path(f, "/etc/cni/net.d", kubernetes.cni_conf_dir);
       }},
  }};
  return read_table(field, readers);
}

// Readers for every [[workload]] key, writing into `w`; the preset is already in `w`, so a
// key that is read replaces the preset's value (lists included) and one left out keeps it.
std::array<KeyReader, 25> workload_readers(WorkloadConfig& w) {
  return {{
      {"name", [&](const Field& f) { return read_workload_name(f, w.name); }},
      {"netns", [&](const Field& f) { return read_netns(f, w.netns); }},
      {"ips", [&](const Field& f) { return read_ips(f, w.ips); }},
      {"mesh", [&](const Field& f) { return read_mesh(f, w.mesh); }},
      {"proxy_uid", [&](const Field& f) { return read_proxy_id(f, w.proxy_uid); }},
      {"proxy_gid", [&](const Field& f) { return read_proxy_id(f, w.proxy_gid); }},
      {"outbound_port", [&](const Field& f) { return read_port(f, w.outbound_port); }},
      {"inbound_port", [&](const Field& f) { return read_port(f, w.inbound_port); }},
      {"inbound_passthrough_sources",
       [&](const Field& f) { return read_passthrough_sources(f, w.inbound_passthrough_sources); }},
      {"include_outbound_ports",
       [&](const Field& f) { return read_ports(f, w.include_outbound_ports); }},
      {"exclude_outbound_ports",
       [&](const Field& f) { return read_ports(f, w.exclude_outbound_ports); }},
      {"include_inbound_ports",
       [&](const Field& f) { return read_ports(f, w.include_inbound_ports); }},
      {"exclude_inbound_ports",
       [&](const Field& f) { return read_ports(f, w.exclude_inbound_ports); }},
      {"include_outbound_cidrs",
       [&](const Field& f) { return read_cidrs(f, w.include_outbound_cidrs); }},
      {"exclude_outbound_cidrs",
       [&](const Field& f) { return read_cidrs(f, w.exclude_outbound_cidrs); }},
      {"exclude_inbound_cidrs",
       [&](const Field& f) { return read_cidrs(f, w.exclude_inbound_cidrs); }},
      {"node_proxy", [&](const Field& f) { return read_node_proxy(f, w); }},
      {"interface", [&](const Field& f) { return read_interface(f, w.interface); }},
      {"labels", [&](const Field& f) { return read_labels(f, w.labels); }},
      {"acceleration", [&](const Field& f) { return read_bool(f, w.acceleration); }},
      {"exclude_acceleration_ports",
       [&](const Field& f) { return read_ports(f, w.exclude_acceleration_ports); }},
      {"fast_path", [&](const Field& f) { return read_bool(f, w.fast_path); }},
      {"fast_path_exclude_ports",
       [&](const Field& f) { return read_ports(f, w.fast_path_exclude_ports); }},
      {"dns_capture", [&](const Field& f) { return read_bool(f, w.dns_capture); }},
      {"dns_proxy_port", [&](const Field& f) { return read_port(f, w.dns_proxy_port); }},
  }};
}

// A key absent from the table is reported at the table's header, the nearest place to add it.
Status require_keys(const Field& field, const toml::table& table,
                    std::span<const std::string_view> keys, std::string_view what) {
  for (std::string_view key : keys) {
    if (!table.contains(key)) {
      return config_error(field.source_name, table.source(), join_key(field.dotted_key, key), what);
    }
  }
  return {};
}

Status check_required_workload_keys(const Field& field, const toml::table& table, MeshKind mesh) {
  constexpr std::array<std::string_view, 3> kAlways = {"name", "netns", "ips"};
  if (Status status = require_keys(field, table, kAlways, "required"); !status) {
    return status;
  }
  // A custom mesh has no preset to fall back on, and 0 is never a sensible port or proxy id.
  constexpr std::array<std::string_view, 4> kForCustom = {"proxy_uid", "proxy_gid", "outbound_port",
                                                          "inbound_port"};
  if (mesh == MeshKind::kCustom) {
    return require_keys(field, table, kForCustom, "required when mesh = \"custom\"");
  }
  return {};
}

// With one port for both directions the proxy could not tell outbound from inbound.
Status check_proxy_ports(const Field& field, const toml::table& table,
                         const WorkloadConfig& workload) {
  if (workload.outbound_port != workload.inbound_port) {
    return {};
  }
  const std::string_view key = table.contains("inbound_port") ? "inbound_port" : "outbound_port";
  const toml::node* node = table.get(key);
  return config_error(field.source_name, node != nullptr ? node->source() : table.source(),
                      join_key(field.dotted_key, key),
                      "outbound_port and inbound_port are both " +
                          std::to_string(workload.inbound_port) + " (they must differ)");
}

// Capture needs somewhere to send the queries: a mesh without a DNS proxy (linkerd's preset
// has dns_proxy_port = 0) cannot capture.
Status check_dns_capture(const Field& field, const toml::table& table,
                         const WorkloadConfig& workload) {
  if (!workload.dns_capture || workload.dns_proxy_port != 0) {
    return {};
  }
  const toml::node* node = table.get("dns_capture");
  return config_error(field.source_name, node != nullptr ? node->source() : table.source(),
                      join_key(field.dotted_key, "dns_capture"),
                      std::string("dns_capture = true needs a DNS proxy: dns_proxy_port is 0") +
                          (workload.mesh == MeshKind::kLinkerd ? " (linkerd has none)" : ""));
}

Status parse_workload_table(const Field& field, WorkloadConfig& workload) {
  const toml::table* table = field.node.as_table();
  if (table == nullptr) {
    return field.wrong_type("a table");
  }
  // toml++ iterates keys sorted by name, not in file order: read the mesh first so that its
  // preset is in place before any explicit key that overrides it.
  MeshKind mesh = MeshKind::kIstio;
  if (const toml::node* node = table->get("mesh"); node != nullptr) {
    const Field mesh_field{field.source_name, join_key(field.dotted_key, "mesh"), *node};
    if (Status status = read_mesh(mesh_field, mesh); !status) {
      return status;
    }
  }
  workload = workload_preset(mesh);
  if (Status status = read_table(field, workload_readers(workload)); !status) {
    return status;
  }
  if (Status status = check_required_workload_keys(field, *table, mesh); !status) {
    return status;
  }
  if (Status status = check_proxy_ports(field, *table, workload); !status) {
    return status;
  }
  return check_dns_capture(field, *table, workload);
}

// Names identify workloads in logs, pins and the control API, so they must be unique.
Status check_unique_name(const Field& element, std::span<const WorkloadConfig> earlier,
                         const std::string& name) {
  for (std::size_t i = 0; i < earlier.size(); ++i) {
    if (earlier[i].name == name) {
      const toml::node& name_node = *element.node.as_table()->get("name");
      return config_error(element.source_name, name_node.source(),
                          join_key(element.dotted_key, "name"),
                          "duplicate workload name \"" + name + "\" (also used by workload[" +
                              std::to_string(i) + "])");
    }
  }
  return {};
}

Status parse_workloads(const Field& field, std::vector<WorkloadConfig>& out) {
  const toml::array* array = field.node.as_array();
  if (array == nullptr) {
    return field.wrong_type("an array of tables (write each workload as a [[workload]] section)");
  }
  std::vector<WorkloadConfig> workloads;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const Field element = field.element(i, *array->get(i));
    WorkloadConfig workload;
    if (Status status = parse_workload_table(element, workload); !status) {
      return status;
    }
    if (Status status = check_unique_name(element, workloads, workload.name); !status) {
      return status;
    }
    workloads.push_back(std::move(workload));
  }
  out = std::move(workloads);
  return {};
}

// The top level holds only tables; add new ones here.
Status parse_root(const std::string& source_name, const toml::table& root, Config& config) {
  const std::array<KeyReader, 6> tables = {{
      {"daemon", [&](const Field& f) { return parse_daemon_table(f, config.daemon); }},
      {"acceleration",
       [&](const Field& f) { return parse_acceleration_table(f, config.acceleration); }},
      {"maps", [&](const Field& f) { return parse_maps_table(f, config.maps); }},
      {"metrics", [&](const Field& f) { return parse_metrics_table(f, config.metrics); }},
      {"kubernetes", [&](const Field& f) { return parse_kubernetes_table(f, config.kubernetes); }},
      {"workload", [&](const Field& f) { return parse_workloads(f, config.workloads); }},
  }};
  return read_entries(source_name, root, "", tables, "table");
}

// ---- JSON input (control socket, state file) -------------------------------------------------

// Converts JSON into the equivalent TOML value so that the readers above check it. TOML has no
// null, and integers above INT64_MAX cannot be represented: both are reported here.
Status json_to_toml(const nlohmann::json& value, const std::string& source_name,
                    const std::string& dotted_key, const std::function<void(toml::node&&)>& emit,
                    int depth);

Error json_error(const std::string& source_name, const std::string& dotted_key,
                 std::string_view what) {
  return config_error(source_name, toml::source_region{}, dotted_key, what);
}

Status json_to_toml(const nlohmann::json& value, const std::string& source_name,
                    const std::string& dotted_key, const std::function<void(toml::node&&)>& emit,
                    int depth) {
  // No workload key nests; the limit only keeps hostile input from exhausting the stack.
  constexpr int kMaxDepth = 8;
  if (depth > kMaxDepth) {
    return json_error(source_name, dotted_key, "nested too deeply");
  }
  switch (value.type()) {
    case nlohmann::json::value_t::string: {
      toml::value<std::string> node(value.get<std::string>());
      emit(std::move(node));
      return {};
    }
    case nlohmann::json::value_t::boolean: {
      toml::value<bool> node(value.get<bool>());
      emit(std::move(node));
      return {};
    }
    case nlohmann::json::value_t::number_integer: {
      toml::value<std::int64_t> node(value.get<std::int64_t>());
      emit(std::move(node));
      return {};
    }
    case nlohmann::json::value_t::number_unsigned: {
      const auto number = value.get<std::uint64_t>();
      if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return json_error(source_name, dotted_key, std::to_string(number) + " is out of range");
      }
      toml::value<std::int64_t> node(static_cast<std::int64_t>(number));
      emit(std::move(node));
      return {};
    }
    case nlohmann::json::value_t::number_float: {
      toml::value<double> node(value.get<double>());
      emit(std::move(node));
      return {};
    }
    case nlohmann::json::value_t::array: {
      toml::array array;
      for (std::size_t i = 0; i < value.size(); ++i) {
        Status status = json_to_toml(
            value[i], source_name, dotted_key + "[" + std::to_string(i) + "]",
            [&](toml::node&& element) { array.push_back(std::move(element)); }, depth + 1);
        if (!status) {
          return status;
        }
      }
      emit(std::move(array));
      return {};
    }
    case nlohmann::json::value_t::object: {
      toml::table table;
      for (const auto& item : value.items()) {
        const std::string& key = item.key();
        Status status = json_to_toml(
            item.value(), source_name, join_key(dotted_key, key),
            [&](toml::node&& node) { table.insert_or_assign(key, std::move(node)); }, depth + 1);
        if (!status) {
          return status;
        }
      }
      emit(std::move(table));
      return {};
    }
    case nlohmann::json::value_t::null:
      return json_error(source_name, dotted_key,
                        "null is not allowed (leave the key out to keep its default)");
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded: break;
  }
  return json_error(source_name, dotted_key, "unsupported JSON value");
}

}  // namespace

Result<WorkloadConfig> parse_workload_json(const nlohmann::json& object,
                                           const std::string& source_name,
                                           const std::string& key_prefix) {
  if (!object.is_object()) {
    return json_error(source_name, key_prefix,
                      std::string("expected a JSON object, got ") + object.type_name());
  }
  toml::table table;
  Status converted = json_to_toml(
      object, source_name, key_prefix,
      [&](toml::node&& node) {
        if (auto* converted_table = node.as_table(); converted_table != nullptr) {
          table = std::move(*converted_table);
        }
      },
      0);
  if (!converted) {
    return converted.error();
  }
  WorkloadConfig workload;
  if (Status status = parse_workload_table(Field{source_name, key_prefix, table}, workload);
      !status) {
    return status.error();
  }
  return workload;
}

const char* to_string(MeshKind mesh) {
  switch (mesh) {
    case MeshKind::kIstio: return "istio";
    case MeshKind::kLinkerd: return "linkerd";
    case MeshKind::kCustom: return "custom";
  }
  return "unknown";  // only reachable through a cast from an out-of-range integer
}

// Values from istio-iptables and linkerd's proxy-init defaults (see the field notes).
WorkloadConfig workload_preset(MeshKind mesh) {
  WorkloadConfig preset;  // the struct's defaults are Istio's ports and ids
  preset.mesh = mesh;
  switch (mesh) {
    case MeshKind::kIstio:
      preset.proxy_uid = 1337;
      preset.proxy_gid = 1337;
      preset.outbound_port = 15001;
      preset.inbound_port = 15006;
      preset.dns_proxy_port = 15053;  // the agent's DNS proxy (capture is opt-in, as in Istio)
      // HBONE, health (agent and Envoy) and Prometheus ports are served by the sidecar itself.
      preset.exclude_inbound_ports = {15008, 15020, 15021, 15090};
      // Envoy binds these for its upstream connection to the app (inbound passthrough).
      preset.inbound_passthrough_sources = {
          IpAddress{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 6}, true},  // 127.0.0.6
          IpAddress{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6}, false},         // ::6
      };
      break;
    case MeshKind::kLinkerd:
      preset.proxy_uid = 2102;
      preset.proxy_gid = 2102;
      preset.outbound_port = 4140;
      preset.inbound_port = 4143;
      preset.exclude_inbound_ports = {4190, 4191};  // tap and admin
      preset.dns_proxy_port = 0;                    // linkerd has no DNS proxy
      break;
    case MeshKind::kCustom:
      preset.proxy_uid = 0;
      preset.proxy_gid = 0;
      preset.outbound_port = 0;
      preset.inbound_port = 0;
      preset.dns_proxy_port = 0;
      break;
  }
  return preset;
}

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable() -- undefined behaviour, in practice a
// crash or a wrong parse -- when it asks whether certain non-ASCII characters (U+00A1..U+0499
// and a few other ranges: accented Latin, Greek, Cyrillic, ...) are whitespace (upstream
// issues #190 and #295, fixed after 3.3). It asks that wherever whitespace may appear, and
// while reading ahead on its error paths, even through what would be a string. So toml++ is
// only ever given ASCII: a non-ASCII character in a double-quoted string becomes its \uXXXX
// escape (the same value), one in a comment becomes '?'; anywhere else it is a syntax error
// (TOML 1.0 allows them nowhere else, except in single-quoted strings, which have no escapes).
// Columns toml++ reports after an escaped character on the same line shift by its escape's
// length. Found by tests/fuzz/fuzz_config.
namespace {

// The code point of the UTF-8 sequence at text[at], and its length; nullopt when invalid
// (truncated, overlong, a surrogate, beyond U+10FFFF).
std::optional<std::pair<std::uint32_t, std::size_t>> decode_utf8(std::string_view text,
                                                                 std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  std::size_t length = 0;
  std::uint32_t code_point = 0;
  std::uint32_t smallest = 0;
  if ((byte(0) & 0xE0) == 0xC0) {
    length = 2, code_point = byte(0) & 0x1Fu, smallest = 0x80;
  } else if ((byte(0) & 0xF0) == 0xE0) {
    length = 3, code_point = byte(0) & 0x0Fu, smallest = 0x800;
  } else if ((byte(0) & 0xF8) == 0xF0) {
    length = 4, code_point = byte(0) & 0x07u, smallest = 0x10000;
  } else {
    return std::nullopt;
  }
  if (at + length > text.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) {
      return std::nullopt;
    }
    code_point = (code_point << 6) | (byte(i) & 0x3Fu);
  }
  if (code_point < smallest || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return std::nullopt;
  }
  return std::pair{code_point, length};
}

std::string unicode_escape(std::uint32_t code_point) {
  std::array<char, 16> text{};
  std::snprintf(text.data(), text.size(), code_point <= 0xFFFF ? "\\u%04X" : "\\U%08X", code_point);
  return text.data();
}

Result<std::string> ascii_only_toml(std::string_view text, const std::string& source_name) {
  enum class State { kBare, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  // Line and column (in characters, as toml++ counts them) of the byte at `offset`.
  auto error = [&](std::size_t offset, std::string_view what) {
    const std::string_view before = text.substr(0, offset);
    const std::size_t line_start = before.rfind('\n') + 1;  // npos + 1 == 0
    toml::source_region where;
    where.begin.line =
        static_cast<toml::source_index>(1 + std::count(before.begin(), before.end(), '\n'));
    where.begin.column = static_cast<toml::source_index>(
        1 +
        std::count_if(before.begin() + static_cast<std::ptrdiff_t>(line_start), before.end(),
                      [](char byte) { return (static_cast<unsigned char>(byte) & 0xC0) != 0x80; }));
    return config_error(source_name, where, "", "TOML syntax error: " + std::string(what));
  };
  // The run of quote characters `quote` starting at i (a multi-line string may end with up to
  // two quotes of content before its closing three).
  auto quote_run = [&](std::size_t i, char quote) {
    const std::size_t end = text.find_first_not_of(quote, i);
    return (end == std::string_view::npos ? text.size() : end) - i;
  };

  std::string out;
  out.reserve(text.size());
  State state = State::kBare;
  // toml++ skips a UTF-8 byte order mark.
  for (std::size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const auto decoded = decode_utf8(text, i);
      if (!decoded) {
        return error(i, "the file is not valid UTF-8");
      }
      if (state == State::kBasic || state == State::kMultiBasic) {
        out += unicode_escape(decoded->first);
      } else if (state == State::kComment) {
        out += '?';
      } else if (state == State::kLiteral || state == State::kMultiLiteral) {
        return error(i,
                     "a non-ASCII character in a single-quoted string (not supported: use a "
                     "double-quoted string)");
      } else {
        return error(i,
                     "a non-ASCII character outside a quoted string or a comment (keys and "
                     "non-string values are ASCII)");
      }
      i += decoded->second - 1;
      continue;
    }
    out += c;
    switch (state) {
      case State::kBare:
        if (c == '#') {
          state = State::kComment;
        } else if (c == '"' || c == '\'') {
          const bool multi = quote_run(i, c) >= 3;
          if (multi) {
            out.append(2, c);
            i += 2;
          }
          state = c == '"' ? (multi ? State::kMultiBasic : State::kBasic)
                           : (multi ? State::kMultiLiteral : State::kLiteral);
        }
        break;
      case State::kComment: state = c == '\n' ? State::kBare : state; break;
      case State::kBasic:
      case State::kMultiBasic:
        if (c == '\\') {
          // An escape, or a line-ending backslash in a multi-line string: the next character is
          // never the closing quote, and no escape starts with a non-ASCII character.
          if (i + 1 < text.size()) {
            if (static_cast<unsigned char>(text[i + 1]) >= 0x80) {
              return error(i + 1,
                           "a backslash before a non-ASCII character (not a TOML escape; write "
                           "the character itself or \\uXXXX)");
            }
            out += text[++i];
          }
        } else if (state == State::kBasic && (c == '"' || c == '\n')) {
          state = State::kBare;  // a newline ends it too: toml++ reports that error
        } else if (state == State::kMultiBasic && c == '"' && quote_run(i, c) >= 3) {
          const std::size_t run = quote_run(i, c);
          out.append(run - 1, c);
          i += run - 1;
          state = State::kBare;
        }
        break;
      case State::kLiteral: state = c == '\'' || c == '\n' ? State::kBare : state; break;
      case State::kMultiLiteral:
        if (c == '\'' && quote_run(i, c) >= 3) {
          const std::size_t run = quote_run(i, c);
          out.append(run - 1, c);
          i += run - 1;
          state = State::kBare;
        }
        break;
    }
  }
  return out;
}

}  // namespace

Result<Config> parse_config(std::string_view toml_text, const std::string& source_name) {
  const Result<std::string> ascii = ascii_only_toml(toml_text, source_name);
  if (!ascii) {
    return ascii.error();
  }
  toml::table root;
  try {
    root = toml::parse(std::string_view(ascii.value()), source_name);
  } catch (const toml::parse_error& error) {
    return config_error(source_name, error.source(), "",
                        "TOML syntax error: " + std::string(error.description()));
  }
  Config config;
  if (Status status = parse_root(source_name, root, config); !status) {
    return status.error();
  }
  return config;
}

Result<Config> load_config_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) {
    return make_error(text.error().errnum, "cannot read config file " + path);
  }
  return parse_config(text.value(), path);
}

}  // namespace meshlane
