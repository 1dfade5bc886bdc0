// test_hooks_from_environment(): the MESHLANE_TEST_* variables the netns tests set, read only in
// a build with -DMESHLANE_TEST_HOOKS=ON (scripts/test.sh's); any other build ignores them.
#include "datapath/test_hooks.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace meshlane {
namespace {

class TestHooksFromEnvironment : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  // The tests of how the knobs are read: only where they are read at all.
  static bool skip_without_hooks() { return !test_hooks_compiled_in(); }
  void TearDown() override { clear(); }
  static void clear() {
    for (const char* name : {"MESHLANE_TEST_VERIFIER_REJECT", "MESHLANE_TEST_FAST_SWEEP",
                             "MESHLANE_TEST_MAP_MAX_ENTRIES", "MESHLANE_TEST_MISSING_FEATURES"}) {
      ::unsetenv(name);
    }
  }
};

TEST_F(TestHooksFromEnvironment, NoneSetIsTheDefault) {
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_FALSE(hooks.verifier_reject);
  EXPECT_FALSE(hooks.fast_sweep);
  EXPECT_TRUE(hooks.map_max_entries.empty());
  EXPECT_TRUE(hooks.missing_features.empty());
  EXPECT_EQ(hooks.max_entries_override("ml_tcflows_v3"), 0U);
}

TEST_F(TestHooksFromEnvironment, FlagsTakeOnlyOne) {
  if (skip_without_hooks()) {
    GTEST_SKIP() << "built without -DMESHLANE_TEST_HOOKS=ON";
  }
  ::setenv("MESHLANE_TEST_VERIFIER_REJECT", "1", 1);
  ::setenv("MESHLANE_TEST_FAST_SWEEP", "yes", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_TRUE(hooks.verifier_reject);
  EXPECT_FALSE(hooks.fast_sweep);
}

TEST_F(TestHooksFromEnvironment, MapMaxEntriesFirstMentionWins) {
  if (skip_without_hooks()) {
    GTEST_SKIP() << "built without -DMESHLANE_TEST_HOOKS=ON";
  }
  ::setenv("MESHLANE_TEST_MAP_MAX_ENTRIES", "ml_tcflows_v3=4,ml_origdst_v2=16,ml_tcflows_v3=9", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_EQ(hooks.max_entries_override("ml_tcflows_v3"), 4U);
  EXPECT_EQ(hooks.max_entries_override("ml_origdst_v2"), 16U);
  EXPECT_EQ(hooks.max_entries_override("ml_sockhash_v1"), 0U);
}

TEST_F(TestHooksFromEnvironment, MissingFeaturesSkipEmptyItems) {
  if (skip_without_hooks()) {
    GTEST_SKIP() << "built without -DMESHLANE_TEST_HOOKS=ON";
  }
  ::setenv("MESHLANE_TEST_MISSING_FEATURES", "sk_msg,,cgroup_sock_addr", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_EQ(hooks.missing_features, (std::vector<std::string>{"sk_msg", "cgroup_sock_addr"}));
}

TEST_F(TestHooksFromEnvironment, IgnoredWithoutTheBuildOption) {
  if (test_hooks_compiled_in()) {
    GTEST_SKIP() << "built with -DMESHLANE_TEST_HOOKS=ON";
  }
  ::setenv("MESHLANE_TEST_VERIFIER_REJECT", "1", 1);
  ::setenv("MESHLANE_TEST_FAST_SWEEP", "1", 1);
  ::setenv("MESHLANE_TEST_MAP_MAX_ENTRIES", "ml_tcflows_v3=4", 1);
  ::setenv("MESHLANE_TEST_MISSING_FEATURES", "sk_msg", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_FALSE(hooks.verifier_reject);
  EXPECT_FALSE(hooks.fast_sweep);
  EXPECT_TRUE(hooks.map_max_entries.empty());
  EXPECT_TRUE(hooks.missing_features.empty());
}

TEST(TestHooksBuild, MatchesTheBuildOption) {
#if defined(MESHLANE_EXPECT_TEST_HOOKS)
  EXPECT_TRUE(test_hooks_compiled_in());
#else
  EXPECT_FALSE(test_hooks_compiled_in());
#endif
}

}  // namespace
}  // namespace meshlane
