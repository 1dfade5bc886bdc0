// The daemon's entry points: run it, remove what it made, print its counters, check a config.
#pragma once

#include <string>

#include "config/config.hpp"
#include "datapath/test_hooks.hpp"

namespace meshlane::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitConfig = 1;  // the config file or a setting in it is wrong
inline constexpr int kExitRuntime = 2;

// Loads, pins and attaches the datapath, applies workloads and policies, serves the control
// socket (and metrics) until SIGTERM/SIGINT; SIGHUP re-reads the workloads from config_path.
// test_hooks: the tests' MESHLANE_TEST_* knobs, read by main (the libraries read no environment).
int run(const std::string& config_path, const Config& config, const TestHooks& test_hooks);

// meshlaned --cleanup: detaches and unpins everything under daemon.bpffs_dir, removes the tc
// filters and a stale control socket.
int cleanup(const Config& config);

// meshlaned --stats: the datapath counters as a table or JSON.
int print_stats(const Config& config, bool json);

// meshlaned --check-config: what start-up would refuse in a config that parsed (a socket group
// that does not exist, a cgroup that is not there), without touching the datapath. Prints "ok"
// or each problem (JSON: {"config", "ok", "problems": [...], "workloads"}); kExitOk or
// kExitConfig.
int check_config(const std::string& config_path, const Config& config, bool json);

// The same answer for a config that did not parse.
int report_unparsable_config(const std::string& config_path, const std::string& error, bool json);

}  // namespace meshlane::daemon
