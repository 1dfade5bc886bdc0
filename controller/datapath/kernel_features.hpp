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
// What the optional features are for.
inline constexpr const char* kForReaderLimits =
    "acceleration.max_unread_bytes (back-pressure), acceleration.leave_spinning_readers and "
    "the other end following a socket that left the splice";
inline constexpr const char* kForMapFullCheck = "the map-full pre-check before interception";

struct KernelFeature {
  std::string name;        // e.g. "program type sk_msg"
  std::string needed_for;  // kForSplicing, kForInterception or kForBoth; for optional ones, what
  bool present = false;
  bool pretended_absent = false;  // MESHLANE_TEST_MISSING_FEATURES named it (tests only)
  // Optional: the datapath runs without it, only one refinement is off (when_absent says what
  // happens instead). Never a missing feature: neither refused nor degraded for.
  bool optional = false;
  std::string when_absent;
};

// Every feature the splicing datapath uses, probed with libbpf.
std::vector<KernelFeature> probe_splice_features();

// Every feature interception uses (cgroup connect and getsockopt programs, tc, their maps).
std::vector<KernelFeature> probe_interception_features();

// Features of newer kernels the datapath uses when present and does without otherwise (their
// kfuncs are weak in the BPF programs): looked up in the kernel's BTF (/sys/kernel/btf/vmlinux).
// Each has optional = true. For tests only, hooks.missing_features marks them absent too (the
// programs are not changed by that: only what status reports).
std::vector<KernelFeature> probe_optional_features(const TestHooks& hooks);

// The required lists. For tests only: hooks.missing_features (MESHLANE_TEST_MISSING_FEATURES, a
// comma-separated list of substrings) marks every feature whose name contains one of them as
// absent, so that a test can exercise the refuse/degrade paths on a kernel that has it all.
std::vector<KernelFeature> probe_all_features(const TestHooks& hooks);

// Error naming every missing feature (optional ones are never missing), or success.
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
