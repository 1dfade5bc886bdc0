// meshlanectl monitor: subscribes to live datapath events and prints them as they come, until
// Ctrl-C or --count events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "meshlanectl/cli.hpp"

namespace meshlane::cli {

struct MonitorOptions {
  std::vector<std::string> types;
  std::string workload;
  std::optional<std::int64_t> port;
  std::string ip;
  std::optional<std::int64_t> count;
};

int monitor(const Globals& globals, const MonitorOptions& options);

}  // namespace meshlane::cli
