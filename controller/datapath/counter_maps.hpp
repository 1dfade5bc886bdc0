// The pinned per-CPU counter maps: the node's (ml_counters_v1) and each workload's
// (ml_wlcounters_v1), read and summed over CPUs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "observe/counters.hpp"

namespace meshlane {

// Reads the pinned counter map <bpffs_dir>/ml_counters_v1 and sums every CPU's slots.
Result<Counters> read_counters(const std::string& bpffs_dir);

// One workload's counters (ml_wlcounters_v1), by its netns cookie. ENOENT when the workload
// has no entry (not applied).
Result<Counters> read_workload_counters(const std::string& bpffs_dir, std::uint64_t netns_cookie);

// Makes ml_wlcounters_v1 hold exactly one entry per cookie: new workloads start at zero,
// existing ones keep counting, entries of workloads gone are removed.
Status sync_workload_counters(const std::string& bpffs_dir,
                              const std::vector<std::uint64_t>& netns_cookies);

}  // namespace meshlane
