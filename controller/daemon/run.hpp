// The daemon's three entry points: run it, remove what it made, print its counters.
#pragma once

#include <string>

#include "config/config.hpp"

namespace meshlane::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitConfig = 1;  // the config file or a setting in it is wrong
inline constexpr int kExitRuntime = 2;

// Loads, pins and attaches the datapath, applies workloads and policies, serves the control
// socket (and metrics) until SIGTERM/SIGINT; SIGHUP re-reads the workloads from config_path.
int run(const std::string& config_path, const Config& config);

// meshlaned --cleanup: detaches and unpins everything under daemon.bpffs_dir, removes the tc
// filters and a stale control socket.
int cleanup(const Config& config);

// meshlaned --stats: the datapath counters as a table or JSON.
int print_stats(const Config& config, bool json);

}  // namespace meshlane::daemon
