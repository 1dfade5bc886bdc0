// Probes the running kernel for what the datapath needs, so a missing feature is named at
// start instead of surfacing as a cryptic load failure.
#pragma once

#include <string>
#include <vector>

#include "meshlane/error.hpp"

namespace meshlane {

struct KernelFeature {
  std::string name;        // e.g. "program type sk_msg"
  std::string needed_for;  // e.g. "local TCP splicing"
  bool present = false;
};

// Every feature the splicing datapath uses, probed with libbpf.
std::vector<KernelFeature> probe_splice_features();

// Error naming every missing feature, or success.
Status require_features(const std::vector<KernelFeature>& features);

}  // namespace meshlane
