#include "config/toml_fields.hpp"

#include <algorithm>
#include <cerrno>
#include <initializer_list>
#include <limits>
#include <utility>

#include "common/addresses.hpp"

namespace meshlane::config_fields {

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

Status read_uint32(const Field& field, std::int64_t min, std::int64_t max, std::uint32_t& out) {
  std::int64_t value = 0;
  Status status = read_integer(field, min, max, value);
  if (status) {
    out = static_cast<std::uint32_t>(value);
  }
  return status;
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

namespace {

// A string that must be one of `allowed`.
Status read_choice(const Field& field, std::initializer_list<const char*> allowed,
                   std::string& out) {
  std::string choice;
  if (Status status = read_string(field, choice); !status) {
    return status;
  }
  std::string listed;
  for (const char* name : allowed) {
    if (choice == name) {
      out = std::move(choice);
      return {};
    }
    listed += std::string(listed.empty() ? "" : ", ") + "\"" + name + "\"";
  }
  return field.error("unknown choice \"" + choice + "\" (allowed: " + listed + ")");
}

}  // namespace

Status read_on_missing_feature(const Field& field, std::string& out) {
  return read_choice(field, {"refuse", "degrade"}, out);
}

Status read_inbound_steering(const Field& field, std::string& out) {
  return read_choice(field, {"sk_lookup", "tc"}, out);
}

Status read_proxy_id(const Field& field, std::uint32_t& out) {
  // The proxy's own connects are never intercepted: with id 0 every process running as root in
  // the pod would bypass the mesh.
  if (const auto* value = field.node.as_integer(); value != nullptr && value->get() == 0) {
    return field.error(
        "0 (root) cannot be the proxy's id: every root process of the pod would bypass the mesh; "
        "give the uid/gid the sidecar runs as (istio 1337, linkerd 2102)");
  }
  std::int64_t id = 0;
  if (Status status = read_integer(field, 1, kMaxProxyId, id); !status) {
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

}  // namespace meshlane::config_fields
