// Knobs that only the tests turn (tests/netns), compiled in only with -DMESHLANE_TEST_HOOKS=ON,
// read from the environment once by meshlaned's main and handed to the datapath code that acts on
// them, so the library itself never reads the environment. Each one logs a warning where it takes
// effect.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace meshlane {

struct TestHooks {
  // MESHLANE_TEST_VERIFIER_REJECT=1: ml_sk_msg is made invalid so the verifier rejects it.
  bool verifier_reject = false;
  // MESHLANE_TEST_FAST_SWEEP=1: sweeps every second, tc flows of any age checked.
  bool fast_sweep = false;
  // MESHLANE_TEST_MAP_MAX_ENTRIES="ml_a_v1=N,ml_b_v1=M": max_entries of the named maps (e.g.
  // to fill a map quickly), in the order given.
  std::vector<std::pair<std::string, std::uint32_t>> map_max_entries;
  // MESHLANE_TEST_MISSING_FEATURES="sk_msg,...": every kernel feature whose name contains one
  // of these is reported absent, to exercise the refuse/degrade paths on a complete kernel.
  std::vector<std::string> missing_features;

  // max_entries that MESHLANE_TEST_MAP_MAX_ENTRIES gives the map (its first mention), 0 when
  // it names it not.
  [[nodiscard]] std::uint32_t max_entries_override(const std::string& map_name) const;
};

// Whether this build reads the knobs: only with -DMESHLANE_TEST_HOOKS=ON (scripts/test.sh's
// build). A daemon built without them cannot be made to misbehave by a stray variable in its
// environment (docs/security.md, "Test knobs").
bool test_hooks_compiled_in();

// Reads the MESHLANE_TEST_* variables above; none set is the default TestHooks{}. Without
// test_hooks_compiled_in(), always the default, with a warning naming any such variable set.
TestHooks test_hooks_from_environment();

}  // namespace meshlane
