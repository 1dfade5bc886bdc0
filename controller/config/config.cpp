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

namespace meshlane {
namespace {

constexpr std::int64_t kMinPort = 1;
constexpr std::int64_t kMaxPort = 65535;
constexpr std::int64_t kMinSockhashEntries = 1;
constexpr std::int64_t kMaxUnreadBytesLimit = std::int64_t{1} << 30;
constexpr std::int64_t kMaxSockhashEntries = 16777216;  // 2^24: keeps map memory bounded
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

std::string join(std::span<const std::string_view> words) {
  std::string joined;
  for (std::string_view word : words) {
    if (!joined.empty()) {
      joined += ", ";
    }
    joined += word;
  }
  return joined;
}

std::string join_key(std::string_view prefix, std::string_view key) {
  std::string dotted(prefix);
  if (!dotted.empty()) {
    dotted += '.';
  }
  dotted += key;
  return dotted;
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// "<source>:<line>:<column>: <dotted.key>: <what>", the one shape of every config error.
// Values built in memory (parse_workload_json) have no position: line 0. Then the message is
// "[<source>: ]<dotted.key>: <what>".
Error config_error(const std::string& source_name, const toml::source_region& region,
                   std::string_view dotted_key, std::string_view what) {
  std::string context;
  if (region.begin.line != 0) {
    context = source_name + ":" + std::to_string(region.begin.line) + ":" +
              std::to_string(region.begin.column) + ": ";
  } else if (!source_name.empty()) {
    context = source_name + ": ";
  }
  if (!dotted_key.empty()) {
    context.append(dotted_key).append(": ");
  }
  context.append(what);
  return make_error(std::move(context));
}

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

// Dispatches every entry of `table` to the reader for its key; `noun` names what the
// entries are ("key", or "table" at the top level) in the unknown-entry message.
Status read_entries(const std::string& source_name, const toml::table& table,
                    std::string_view key_prefix, std::span<const KeyReader> readers,
                    std::string_view noun) {
  for (auto&& [key, value] : table) {
    const std::string_view name = key.str();  // clang < 16 cannot capture structured bindings
    const std::string dotted_key = join_key(key_prefix, name);
    const auto reader = std::find_if(readers.begin(), readers.end(),
                                     [name](const KeyReader& r) { return r.key == name; });
    if (reader == readers.end()) {
      std::vector<std::string_view> known;
      for (const KeyReader& r : readers) {
        known.push_back(r.key);
      }
      return config_error(source_name, key.source(), dotted_key,
                          "unknown " + std::string(noun) + " (known " + std::string(noun) +
                              "s: " + join(known) + ")");
    }
    if (Status status = reader->read(Field{source_name, dotted_key, value}); !status) {
      return status;
    }
  }
  return {};
}

Status read_table(const Field& field, std::span<const KeyReader> readers) {
  const toml::table* table = field.node.as_table();
  if (table == nullptr) {
    return field.wrong_type("a table");
  }
  return read_entries(field.source_name, *table, field.dotted_key, readers, "key");
}

// ---- Value readers --------------------------------------------------------------------------

Status read_string(const Field& field, std::string& out) {
  const auto* value = field.node.as_string();
  if (value == nullptr) {
    return field.wrong_type("a string");
  }
  out = value->get();
  return {};
}

Status read_bool(const Field& field, bool& out) {
  const auto* value = field.node.as_boolean();
  if (value == nullptr) {
    return field.wrong_type("a boolean (true or false)");
  }
  out = value->get();
  return {};
}

Status read_integer(const Field& field, std::int64_t min, std::int64_t max, std::int64_t& out) {
  const std::string allowed = std::to_string(min) + ".." + std::to_string(max);
  const auto* value = field.node.as_integer();
  if (value == nullptr) {
    return field.wrong_type("an integer " + allowed);
  }
  if (value->get() < min || value->get() > max) {
    return field.error(std::to_string(value->get()) + " is out of range (allowed " + allowed + ")");
  }
  out = value->get();
  return {};
}

Status read_port(const Field& field, std::uint16_t& out) {
  std::int64_t port = 0;
  if (Status status = read_integer(field, kMinPort, kMaxPort, port); !status) {
    return status;
  }
  out = static_cast<std::uint16_t>(port);
  return {};
}

Status read_address(const Field& field, IpAddress& out) {
  const auto* value = field.node.as_string();
  if (value == nullptr) {
    return field.wrong_type(R"(an address string, e.g. "10.0.0.5" or "fd00::5")");
  }
  const std::optional<IpAddress> address = parse_ip_address(value->get());
  if (!address) {
    return field.error("\"" + value->get() + "\" is not an IPv4 or IPv6 address");
  }
  out = *address;
  return {};
}

// Why parse_cidr() rejected `text`. Host bits set is the common slip ("10.0.0.1/8"), so that
// case names the network the user probably meant.
std::string cidr_problem(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  const std::optional<IpAddress> address = parse_ip_address(address_text);
  if (!address || slash == std::string_view::npos) {
    return quoted + R"( is not an address prefix (expected e.g. "10.0.0.0/8" or "fd00::/8"))";
  }
  // The same length on an all-zero address separates a bad length from bad host bits.
  const bool written_as_ipv6 = address_text.find(':') != std::string_view::npos;
  const std::string length(text.substr(slash + 1));
  const std::optional<Cidr> zero = parse_cidr((written_as_ipv6 ? "::/" : "0.0.0.0/") + length);
  if (!zero) {
    return quoted + ": the prefix length must be 0..32 for IPv4 or 0..128 for IPv6";
  }
  IpAddress network{address->bytes, !written_as_ipv6};
  for (std::size_t bit = zero->prefix_length; bit < 128; ++bit) {
    network.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return quoted + " has host bits set (every bit after the first " + length +
         " must be zero; the network is \"" + to_string(network) + "/" + length + "\")";
}

Status read_cidr(const Field& field, Cidr& out) {
  const auto* value = field.node.as_string();
  if (value == nullptr) {
    return field.wrong_type(R"(an address prefix string, e.g. "10.0.0.0/8" or "fd00::/8")");
  }
  const std::optional<Cidr> cidr = parse_cidr(value->get());
  if (!cidr) {
    return field.error(cidr_problem(value->get()));
  }
  out = *cidr;
  return {};
}

// Element naming for read_distinct_list().
std::string describe(std::uint16_t port) { return std::to_string(port); }
std::string describe(const IpAddress& address) { return to_string(address); }
std::string describe(const Cidr& cidr) { return to_string(cidr); }

// Reads an array of distinct values: a repeat is harmless to the datapath but usually a
// copy-paste slip in the file.
template <typename T>
Status read_distinct_list(const Field& field, std::string_view expected, std::string_view noun,
                          Status (*read_element)(const Field&, T&), std::vector<T>& out) {
  const toml::array* array = field.node.as_array();
  if (array == nullptr) {
    return field.wrong_type(expected);
  }
  std::vector<T> values;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const Field element = field.element(i, *array->get(i));
    T value{};
    if (Status status = read_element(element, value); !status) {
      return status;
    }
    // is_ipv4 follows from the bytes (and prefix length) of a parsed value, so == compares
    // what the datapath compares.
    if (std::find(values.begin(), values.end(), value) != values.end()) {
      return element.error("duplicate " + std::string(noun) + " " + describe(value) + " (each " +
                           std::string(noun) + " may be listed once)");
    }
    values.push_back(value);
  }
  out = std::move(values);
  return {};
}

Status read_ports(const Field& field, std::vector<std::uint16_t>& out) {
  return read_distinct_list(field, "an array of port numbers (integers 1..65535)", "port",
                            read_port, out);
}

Status read_cidrs(const Field& field, std::vector<Cidr>& out) {
  return read_distinct_list(field, "an array of address prefixes, e.g. [\"10.0.0.0/8\"]", "prefix",
                            read_cidr, out);
}

Status read_bpffs_dir(const Field& field, std::string& out) {
  std::string dir;
  if (Status status = read_string(field, dir); !status) {
    return status;
  }
  if (dir.empty()) {
    return field.error(
        "must not be empty (an absolute directory on bpffs is required, e.g. "
        "\"/sys/fs/bpf/meshlane\")");
  }
  if (dir.front() != '/') {
    return field.error("\"" + dir +
                       "\" is not an absolute path (an absolute directory on "
                       "bpffs is required, e.g. \"/sys/fs/bpf/meshlane\")");
  }
  out = std::move(dir);
  return {};
}

// An absolute path for daemon.socket / daemon.state_dir. `example` ends the messages.
Status read_absolute_path(const Field& field, std::string_view example, std::string& out) {
  std::string path;
  if (Status status = read_string(field, path); !status) {
    return status;
  }
  if (path.empty() || path.front() != '/') {
    return field.error("\"" + path + "\" is not an absolute path (e.g. \"" + std::string(example) +
                       "\")");
  }
  out = std::move(path);
  return {};
}

Status read_socket_path(const Field& field, std::string& out) {
  std::string path;
  if (Status status = read_absolute_path(field, kDefaultControlSocket, path); !status) {
    return status;
  }
  if (path.size() > kMaxSocketPathLength || path.back() == '/') {
    return field.error("\"" + path + "\" cannot name a Unix socket (at most " +
                       std::to_string(kMaxSocketPathLength) + " bytes, not ending in '/', e.g. \"" +
                       kDefaultControlSocket + "\")");
  }
  out = std::move(path);
  return {};
}

// Permission bits as an octal string ("0660", as systemd's SocketMode=) or an integer, which
// TOML lets one write in octal (0o660).
Status read_socket_mode(const Field& field, std::uint32_t& out) {
  const std::string allowed =
      " (allowed: permission bits 0..0777 as an octal string such as \"0660\" or a TOML octal "
      "integer such as 0o660)";
  if (const auto* text = field.node.as_string(); text != nullptr) {
    const std::string& value = text->get();
    const bool octal =
        !value.empty() && value.size() <= 4 &&
        std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '7'; });
    std::uint32_t mode = 0;
    for (char c : value) {
      mode = mode * 8 + static_cast<std::uint32_t>(c - '0');
    }
    if (!octal || mode > kMaxSocketMode) {
      return field.error("\"" + value + "\" is not a file mode" + allowed);
    }
    out = mode;
    return {};
  }
  const auto* number = field.node.as_integer();
  if (number == nullptr) {
    return field.wrong_type("a file mode, e.g. \"0660\" or 0o660");
  }
  if (number->get() < 0 || number->get() > kMaxSocketMode) {
    return field.error(std::to_string(number->get()) + " is not a file mode" + allowed);
  }
  out = static_cast<std::uint32_t>(number->get());
  return {};
}

// A group name as useradd/groupadd accept it, or a numeric gid.
Status read_socket_group(const Field& field, std::string& out) {
  std::string group;
  if (Status status = read_string(field, group); !status) {
    return status;
  }
  const bool allowed_chars = std::all_of(group.begin(), group.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
  if (group.size() > kMaxGroupNameLength || !allowed_chars ||
      (!group.empty() && group.front() == '-')) {
    return field.error("\"" + group +
                       "\" is not a group name or gid (\"\" for root only, or up to 32 "
                       "characters from A-Z a-z 0-9 _ . -, not starting with '-')");
  }
  out = std::move(group);
  return {};
}

Status read_log_level(const Field& field, std::string& out) {
  std::string level;
  if (Status status = read_string(field, level); !status) {
    return status;
  }
  if (std::find(kLogLevels.begin(), kLogLevels.end(), level) == kLogLevels.end()) {
    return field.error("unknown log level \"" + level + "\" (allowed: " + join(kLogLevels) + ")");
  }
  out = std::move(level);
  return {};
}

Status read_on_missing_feature(const Field& field, std::string& out) {
  std::string choice;
  if (Status status = read_string(field, choice); !status) {
    return status;
  }
  if (choice != "refuse" && choice != "degrade") {
    return field.error("unknown choice \"" + choice + "\" (allowed: \"refuse\", \"degrade\")");
  }
  out = std::move(choice);
  return {};
}

Status read_proxy_id(const Field& field, std::uint32_t& out) {
  std::int64_t id = 0;
  if (Status status = read_integer(field, 0, kMaxProxyId, id); !status) {
    return status;
  }
  out = static_cast<std::uint32_t>(id);
  return {};
}

Status read_workload_name(const Field& field, std::string& out) {
  std::string name;
  if (Status status = read_string(field, name); !status) {
    return status;
  }
  const bool allowed_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
  if (name.empty() || name.size() > kMaxWorkloadNameLength || !allowed_chars) {
    return field.error("\"" + name +
                       "\" is not a valid workload name (1..63 characters from A-Z a-z 0-9 _ . -)");
  }
  out = std::move(name);
  return {};
}

Status read_netns(const Field& field, std::string& out) {
  std::string path;
  if (Status status = read_string(field, path); !status) {
    return status;
  }
  if (path.empty() || path.front() != '/') {
    return field.error("\"" + path +
                       "\" is not an absolute path (the pod's network namespace file is "
                       "required, e.g. \"/var/run/netns/pod-a\")");
  }
  out = std::move(path);
  return {};
}

Status read_mesh(const Field& field, MeshKind& out) {
  std::string name;
  if (Status status = read_string(field, name); !status) {
    return status;
  }
  for (MeshKind mesh : kMeshKinds) {
    if (name == to_string(mesh)) {
      out = mesh;
      return {};
    }
  }
  return field.error("unknown mesh \"" + name + "\" (allowed: istio, linkerd, custom)");
}

Status read_ips(const Field& field, std::vector<IpAddress>& out) {
  std::vector<IpAddress> ips;
  Status status = read_distinct_list(field, "an array of address strings, e.g. [\"10.0.0.5\"]",
                                     "address", read_address, ips);
  if (!status) {
    return status;
  }
  if (ips.empty()) {
    return field.error("must list at least one address of the pod");
  }
  out = std::move(ips);
  return {};
}

// The addresses the inbound proxy binds for its upstream connection to the app. [] is allowed:
// it removes the preset's addresses. The datapath has room for kMaxPassthroughSources.
Status read_passthrough_sources(const Field& field, std::vector<IpAddress>& out) {
  std::vector<IpAddress> sources;
  Status status =
      read_distinct_list(field, R"(an array of address strings, e.g. ["127.0.0.6", "::6"])",
                         "address", read_address, sources);
  if (!status) {
    return status;
  }
  if (sources.size() > kMaxPassthroughSources) {
    return field.error("lists " + std::to_string(sources.size()) + " addresses (at most " +
                       std::to_string(kMaxPassthroughSources) +
                       " allowed, e.g. one IPv4 and one IPv6 address)");
  }
  out = std::move(sources);
  return {};
}

// A decimal port 1..65535 as written after the ':' of node_proxy; no sign, no leading zero.
std::optional<std::uint16_t> parse_port_text(std::string_view text) {
  if (text.empty() || text.size() > 5 || text.front() == '0') {
    return std::nullopt;
  }
  std::uint32_t port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port > static_cast<std::uint32_t>(kMaxPort)) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(port);
}

struct HostPort {
  std::string_view host;
  std::optional<std::string_view> port;
};

// "ADDR", "ADDR:PORT" (IPv4) or "[ADDR]:PORT" / "[ADDR]"; a bare IPv6 address (two or more
// colons) has no port, as in URLs.
std::optional<HostPort> split_host_port(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty()) {
      return HostPort{text.substr(1, close - 1), std::nullopt};
    }
    if (rest.front() != ':') {
      return std::nullopt;
    }
    return HostPort{text.substr(1, close - 1), rest.substr(1)};
  }
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    return HostPort{text.substr(0, colon), text.substr(colon + 1)};
  }
  return HostPort{text, std::nullopt};
}

Status read_node_proxy(const Field& field, WorkloadConfig& workload) {
  std::string text;
  if (Status status = read_string(field, text); !status) {
    return status;
  }
  const std::string forms =
      " (expected ADDR, ADDR:PORT or [IPv6]:PORT, e.g. \"10.0.0.1:15001\" "
      "or \"[fd00::1]:15001\")";
  const std::optional<HostPort> parts = split_host_port(text);
  const std::optional<IpAddress> address =
      parts ? parse_ip_address(parts->host) : std::optional<IpAddress>();
  if (!address) {
    return field.error("\"" + text + "\" does not start with an IPv4 or IPv6 address" + forms);
  }
  std::uint16_t port = 0;  // 0: the node proxy listens on outbound_port
  if (parts->port) {
    const std::optional<std::uint16_t> parsed = parse_port_text(*parts->port);
    if (!parsed) {
      return field.error("\"" + text + "\": port \"" + std::string(*parts->port) +
                         "\" is not an integer 1..65535" + forms);
    }
    port = *parsed;
  }
  workload.node_proxy_address = address;
  workload.node_proxy_port = port;
  return {};
}

// Label keys and values as policies select them (Kubernetes-like, without the prefix rules):
// keys 1..253 and values 0..63 characters from A-Z a-z 0-9 _ . - (keys also '/').
bool valid_label_text(std::string_view text, std::size_t min, std::size_t max, bool slash) {
  return text.size() >= min && text.size() <= max &&
         std::all_of(text.begin(), text.end(), [slash](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' || (slash && c == '/');
         });
}

}  // namespace

bool is_valid_label_key(std::string_view key) { return valid_label_text(key, 1, 253, true); }
bool is_valid_label_value(std::string_view value) { return valid_label_text(value, 0, 63, false); }

namespace {

Status read_labels(const Field& field, std::map<std::string, std::string>& out) {
  const toml::table* table = field.node.as_table();
  if (table == nullptr) {
    return field.wrong_type("a table of labels, e.g. labels = { app = \"web\" }");
  }
  std::map<std::string, std::string> labels;
  for (const auto& [key, node] : *table) {
    const Field entry{field.source_name, join_key(field.dotted_key, key.str()), node};
    std::string value;
    if (Status status = read_string(entry, value); !status) {
      return status;
    }
    if (!is_valid_label_key(key.str())) {
      return entry.error(
          "\"" + std::string(key.str()) +
          "\" is not a valid label key (1..253 characters from A-Z a-z 0-9 _ . - /)");
    }
    if (!is_valid_label_value(value)) {
      return entry.error("\"" + value +
                         "\" is not a valid label value (0..63 characters from A-Z a-z 0-9 _ . -)");
    }
    labels[std::string(key.str())] = std::move(value);
  }
  out = std::move(labels);
  return {};
}

// metrics.listen: "" (off), "ADDR:PORT" or "[IPv6]:PORT"; the port is required.
Status read_listen_address(const Field& field, MetricsConfig& metrics) {
  std::string text;
  if (Status status = read_string(field, text); !status) {
    return status;
  }
  if (text.empty()) {
    metrics.listen.clear();
    metrics.listen_address.reset();
    return {};
  }
  const std::string forms =
      " (expected ADDR:PORT or [IPv6]:PORT, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"; \"\" "
      "turns the endpoint off)";
  const std::optional<HostPort> parts = split_host_port(text);
  const std::optional<IpAddress> address =
      parts ? parse_ip_address(parts->host) : std::optional<IpAddress>();
  if (!address) {
    return field.error("\"" + text + "\" does not start with an IPv4 or IPv6 address" + forms);
  }
  const std::optional<std::uint16_t> port =
      parts->port ? parse_port_text(*parts->port) : std::optional<std::uint16_t>();
  if (!port) {
    return field.error("\"" + text + "\" has no port 1..65535" + forms);
  }
  metrics.listen = std::move(text);
  metrics.listen_address = ListenAddress{*address, *port};
  return {};
}

// The kernel's dev_valid_name(): what `ip link` would refuse can never match an interface.
Status read_interface(const Field& field, std::string& out) {
  std::string name;
  if (Status status = read_string(field, name); !status) {
    return status;
  }
  const bool bad_char = std::any_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || (c >= '\t' && c <= '\r');
  });
  if (name.empty() || name.size() > kMaxInterfaceNameLength || name == "." || name == ".." ||
      bad_char) {
    return field.error("\"" + name +
                       "\" is not a valid interface name (1..15 characters, no '/', ':' or "
                       "spaces, not \".\" or \"..\")");
  }
  out = std::move(name);
  return {};
}

// ---- Tables ---------------------------------------------------------------------------------

Status parse_daemon_table(const Field& field, DaemonConfig& daemon) {
  const std::array<KeyReader, 8> readers = {{
      {"bpffs_dir", [&](const Field& f) { return read_bpffs_dir(f, daemon.bpffs_dir); }},
      {"cgroup", [&](const Field& f) { return read_string(f, daemon.cgroup); }},
      {"log_level", [&](const Field& f) { return read_log_level(f, daemon.log_level); }},
      {"on_missing_feature",
       [&](const Field& f) { return read_on_missing_feature(f, daemon.on_missing_feature); }},
      {"socket", [&](const Field& f) { return read_socket_path(f, daemon.socket); }},
      {"socket_mode", [&](const Field& f) { return read_socket_mode(f, daemon.socket_mode); }},
      {"socket_group", [&](const Field& f) { return read_socket_group(f, daemon.socket_group); }},
      {"state_dir",
       [&](const Field& f) {
         return read_absolute_path(f, "/var/lib/meshlane", daemon.state_dir);
       }},
  }};
  return read_table(field, readers);
}

Status parse_acceleration_table(const Field& field, AccelerationConfig& acceleration) {
  const std::array<KeyReader, 7> readers = {{
      {"enabled", [&](const Field& f) { return read_bool(f, acceleration.enabled); }},
      {"adaptive_splicing",
       [&](const Field& f) { return read_bool(f, acceleration.adaptive_splicing); }},
      {"splice_blocking_sockets",
       [&](const Field& f) { return read_bool(f, acceleration.splice_blocking_sockets); }},
      {"sockhash_max_entries",
       [&](const Field& f) {
         std::int64_t entries = 0;
         Status status = read_integer(f, kMinSockhashEntries, kMaxSockhashEntries, entries);
         if (status) {
           acceleration.sockhash_max_entries = static_cast<std::uint32_t>(entries);
         }
         return status;
       }},
      {"include_ports", [&](const Field& f) { return read_ports(f, acceleration.include_ports); }},
      {"exclude_ports", [&](const Field& f) { return read_ports(f, acceleration.exclude_ports); }},
      {"max_unread_bytes",
       [&](const Field& f) {
         std::int64_t bytes = 0;
         Status status = read_integer(f, 0, kMaxUnreadBytesLimit, bytes);
         if (status) {
           acceleration.max_unread_bytes = static_cast<std::uint32_t>(bytes);
         }
         return status;
       }},
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

// Readers for every [[workload]] key, writing into `w`; the preset is already in `w`, so a
// key that is read replaces the preset's value (lists included) and one left out keeps it.
std::array<KeyReader, 23> workload_readers(WorkloadConfig& w) {
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
  return check_proxy_ports(field, *table, workload);
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
  const std::array<KeyReader, 4> tables = {{
      {"daemon", [&](const Field& f) { return parse_daemon_table(f, config.daemon); }},
      {"acceleration",
       [&](const Field& f) { return parse_acceleration_table(f, config.acceleration); }},
      {"metrics", [&](const Field& f) { return parse_metrics_table(f, config.metrics); }},
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
      break;
    case MeshKind::kCustom:
      preset.proxy_uid = 0;
      preset.proxy_gid = 0;
      preset.outbound_port = 0;
      preset.inbound_port = 0;
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
