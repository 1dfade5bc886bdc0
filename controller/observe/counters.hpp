// The datapath's event counters (summed over CPUs) and their names: what `stats`, `status`
// and the metrics show. Reading them from the pinned maps is datapath/counter_maps.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "meshlane/shared.h"

namespace meshlane {

struct Counters {
  std::array<std::uint64_t, ML_CTR_MAX> values{};

  [[nodiscard]] std::uint64_t operator[](ml_counter counter) const { return values.at(counter); }
};

// Stable snake_case name of a counter, used in JSON output and tables.
const char* counter_name(ml_counter counter);

// Whether the programs count this counter per workload too (ml_count_workload and the helpers
// over it in bpf/: count_socket, count_spliced_hop, count_tc, the connect verdicts, the
// fast-path bytes). The others are node-wide only: the sk_msg program's per-message counters
// (a per-workload lookup on every send would cost the hot path), the getsockopt answers and
// the listener counters. Their per-workload entries stay 0.
bool counted_per_workload(ml_counter counter);

nlohmann::json counters_to_json(const Counters& counters);
// One workload's counters: only those counted per workload (the others would always be 0).
nlohmann::json workload_counters_to_json(const Counters& counters);

// Two aligned columns: name and value.
std::string counters_to_table(const Counters& counters);

}  // namespace meshlane
