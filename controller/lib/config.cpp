// Parses meshlane.toml with toml++ into meshlane::Config.
//
// Each top-level table has one parse function, registered in parse_root(); each key has one
// reader. Unknown tables and keys are errors rather than warnings because a misspelt key
// would otherwise silently leave a default in force.

#include "meshlane/config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace meshlane {
namespace {

constexpr std::int64_t kMinPort = 1;
constexpr std::int64_t kMaxPort = 65535;
constexpr std::int64_t kMinSockhashEntries = 1;
constexpr std::int64_t kMaxSockhashEntries = 16777216;  // 2^24: keeps map memory bounded
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
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "<source>:<line>:<column>: <dotted.key>: <what>", the one shape of every config error.
Error config_error(const std::string& source_name, const toml::source_region& region,
                   std::string_view dotted_key, std::string_view what) {
  std::string context = source_name + ":" + std::to_string(region.begin.line) + ":" +
                        std::to_string(region.begin.column) + ": ";
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

Status read_ports(const Field& field, std::vector<std::uint16_t>& out) {
  const toml::array* array = field.node.as_array();
  if (array == nullptr) {
    return field.wrong_type("an array of port numbers (integers 1..65535)");
  }
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const Field element = field.element(i, *array->get(i));
    std::int64_t port = 0;
    if (Status status = read_integer(element, kMinPort, kMaxPort, port); !status) {
      return status;
    }
    // A repeated port is harmless to the datapath but usually a copy-paste slip in the file.
    if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
      return element.error("duplicate port " + std::to_string(port) +
                           " (each port may be listed once)");
    }
    ports.push_back(static_cast<std::uint16_t>(port));
  }
  out = std::move(ports);
  return {};
}

Status read_bpffs_dir(const Field& field, std::string& out) {
  std::string dir;
  if (Status status = read_string(field, dir); !status) {
    return status;
  }
  if (dir.empty()) {
    return field.error("must not be empty (an absolute directory on bpffs is required, e.g. "
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

// ---- Tables ---------------------------------------------------------------------------------

Status parse_daemon_table(const Field& field, DaemonConfig& daemon) {
  const std::array<KeyReader, 3> readers = {{
      {"bpffs_dir", [&](const Field& f) { return read_bpffs_dir(f, daemon.bpffs_dir); }},
      {"cgroup", [&](const Field& f) { return read_string(f, daemon.cgroup); }},
      {"log_level", [&](const Field& f) { return read_log_level(f, daemon.log_level); }},
  }};
  return read_table(field, readers);
}

Status parse_acceleration_table(const Field& field, AccelerationConfig& acceleration) {
  const std::array<KeyReader, 4> readers = {{
      {"enabled", [&](const Field& f) { return read_bool(f, acceleration.enabled); }},
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
  }};
  return read_table(field, readers);
}

// The top level holds only tables; add new ones (e.g. [[workload]]) here.
Status parse_root(const std::string& source_name, const toml::table& root, Config& config) {
  const std::array<KeyReader, 2> tables = {{
      {"daemon", [&](const Field& f) { return parse_daemon_table(f, config.daemon); }},
      {"acceleration",
       [&](const Field& f) { return parse_acceleration_table(f, config.acceleration); }},
  }};
  return read_entries(source_name, root, "", tables, "table");
}

}  // namespace

Result<Config> parse_config(std::string_view toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
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
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(errno, "cannot read config file " + path);
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      const int read_errno = errno;
      ::close(fd);
      return make_error(read_errno, "cannot read config file " + path);
    }
    if (count == 0) {
      break;
    }
    text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace meshlane
