// What a SIGHUP reload can and cannot change: the keys outside [[workload]] that differ between
// the running configuration and the file read again. Workloads are reloaded live; of the other
// keys only daemon.log_level is applied live; every other one takes effect at the next start
// (docs/reliability.md "Reload"), and the daemon says which.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace meshlane {

// The dotted names ("acceleration.enabled", "daemon.log_level", ...) of the keys outside
// [[workload]] whose effective values differ, in file order.
std::vector<std::string> changed_keys(const Config& was, const Config& now);

// Whether a SIGHUP applies the key without a restart.
bool applied_on_reload(const std::string& dotted_key);

}  // namespace meshlane
