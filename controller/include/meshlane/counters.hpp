// The datapath's per-CPU event counters, summed over CPUs.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "meshlane/error.hpp"
#include "meshlane/shared.h"

namespace meshlane {

struct Counters {
  std::array<std::uint64_t, ML_CTR_MAX> values{};

  [[nodiscard]] std::uint64_t operator[](ml_counter counter) const { return values.at(counter); }
};

// Stable snake_case name of a counter, used in JSON output and tables.
const char* counter_name(ml_counter counter);

// Reads the pinned counter map <bpffs_dir>/ml_counters_v1 and sums every CPU's slots.
Result<Counters> read_counters(const std::string& bpffs_dir);

// One workload's counters (ml_wlcounters_v1), by its netns cookie. ENOENT when the workload
// has no entry (not applied).
Result<Counters> read_workload_counters(const std::string& bpffs_dir, std::uint64_t netns_cookie);

// Makes ml_wlcounters_v1 hold exactly one entry per cookie: new workloads start at zero,
// existing ones keep counting, entries of workloads gone are removed.
Status sync_workload_counters(const std::string& bpffs_dir,
                              const std::vector<std::uint64_t>& netns_cookies);

nlohmann::json counters_to_json(const Counters& counters);

// Two aligned columns: name and value.
std::string counters_to_table(const Counters& counters);

}  // namespace meshlane
