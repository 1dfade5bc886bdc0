// Probes the running kernel for what the datapath needs, so a missing feature is named at
// start instead of surfacing as a cryptic load failure.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "datapath/test_hooks.hpp"

namespace meshlane {

inline constexpr const char* kForSplicing = "local TCP splicing";
inline constexpr const char* kForInterception = "interception";
inline constexpr const char* kForBoth = "splicing and interception";

struct KernelFeature {
  std::string name;        // e.g. "program type sk_msg"
  std::string needed_for;  // kForSplicing, kForInterception or kForBoth
  bool present = false;
  bool pretended_absent = false;  // MESHLANE_TEST_MISSING_FEATURES named it (tests only)
};

// Every feature the splicing datapath uses, probed with libbpf.
std::vector<KernelFeature> probe_splice_features();

// Every feature interception uses (cgroup connect and getsockopt programs, tc, their maps).
std::vector<KernelFeature> probe_interception_features();

// Both lists. For tests only: hooks.missing_features (MESHLANE_TEST_MISSING_FEATURES, a
// comma-separated list of substrings) marks every feature whose name contains one of them as
// absent, so that a test can exercise the refuse/degrade paths on a kernel that has it all.
std::vector<KernelFeature> probe_all_features(const TestHooks& hooks);

// Error naming every missing feature, or success.
Status require_features(const std::vector<KernelFeature>& features);

// What runs, given the probed features and daemon.on_missing_feature.
struct FeatureSupport {
  bool splicing = true;
  bool interception = true;
};

// "refuse": an error naming every missing feature. "degrade": the areas whose features are all
// present; an error only when nothing at all would work.
Result<FeatureSupport> decide_features(const std::vector<KernelFeature>& features,
                                       const std::string& on_missing_feature);

}  // namespace meshlane
