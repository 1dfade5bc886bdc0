// meshlaned configuration: the TOML file documented key by key in config/meshlane.toml.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meshlane/error.hpp"

namespace meshlane {

struct DaemonConfig {
  // Directory on bpffs that holds every pin meshlane makes (maps and links).
  std::string bpffs_dir = "/sys/fs/bpf/meshlane";
  // cgroup v2 to attach to: "" or "/" is the cgroup v2 root; a relative path or one starting
  // with "/" is taken below the discovered cgroup v2 mount; an absolute path that already
  // starts with the mount point is used as is.
  std::string cgroup;
  // spdlog level name: trace, debug, info, warn, error, critical, off.
  std::string log_level = "info";
};

struct AccelerationConfig {
  // Splice local TCP connections through the sockhash.
  bool enabled = true;
  // Capacity of the sockhash; when full, new sockets use the normal stack and are counted.
  std::uint32_t sockhash_max_entries = 65536;
  // When non-empty, only connections with either end's port in this list are spliced.
  std::vector<std::uint16_t> include_ports;
  // Connections with either end's port in this list are never spliced (wins over include).
  std::vector<std::uint16_t> exclude_ports;
};

struct Config {
  DaemonConfig daemon;
  AccelerationConfig acceleration;
};

// Parses TOML text; source_name (a file path) is used in error messages:
// "<source>:<line>:<column>: <key>: <what is wrong>".
// Unknown tables and keys are rejected, as are values of the wrong type or out of range.
Result<Config> parse_config(std::string_view toml_text, const std::string& source_name);

// Reads and parses a file. A missing or unreadable file is an error naming the path.
Result<Config> load_config_file(const std::string& path);

}  // namespace meshlane
