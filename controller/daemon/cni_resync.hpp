// Restart reconciliation on a Kubernetes node: the pods meshlane-cni would have enrolled while
// meshlaned was down (their ADD found no daemon and the failure policy let them start), or
// before meshlane was installed, are found in the runtime's CNI result cache and enrolled with
// the plugin's own decision (docs/kubernetes.md). Pods deleted meanwhile need nothing here: their
// network namespace is gone, and the registry drops a live workload it cannot resolve at start.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "workloads/registry.hpp"

namespace meshlane::daemon {

struct CniResyncReport {
  bool enabled = false;
  std::string results_dir;
  std::size_t entries = 0;    // cache files read
  std::size_t added = 0;      // workloads added or replaced
  std::size_t unchanged = 0;  // already registered as the plugin would have left them
  std::size_t skipped = 0;    // not for meshlane: no mesh, opted out, excluded, pod gone, ...
  std::size_t failed = 0;     // should be a workload and could not be (the log says why)
  std::vector<std::string> failures;  // the first few, for status
};

nlohmann::json to_json(const CniResyncReport& report);

// Reads <kubernetes.cni_cache_dir>/results and adds the workloads. Nothing when cni_cache_dir
// is "". Each entry's outcome is logged; one bad entry never stops the others.
CniResyncReport resync_from_cni_cache(const KubernetesConfig& kubernetes,
                                      workloads::WorkloadRegistry& workloads);

}  // namespace meshlane::daemon
