// test_hooks_from_environment(): the MESHLANE_TEST_* variables the netns tests set.
#include "datapath/test_hooks.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace meshlane {
namespace {

class TestHooksFromEnvironment : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
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
  EXPECT_EQ(hooks.max_entries_override("ml_tcflows_v2"), 0U);
}

TEST_F(TestHooksFromEnvironment, FlagsTakeOnlyOne) {
  ::setenv("MESHLANE_TEST_VERIFIER_REJECT", "1", 1);
  ::setenv("MESHLANE_TEST_FAST_SWEEP", "yes", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_TRUE(hooks.verifier_reject);
  EXPECT_FALSE(hooks.fast_sweep);
}

TEST_F(TestHooksFromEnvironment, MapMaxEntriesFirstMentionWins) {
  ::setenv("MESHLANE_TEST_MAP_MAX_ENTRIES", "ml_tcflows_v2=4,ml_origdst_v2=16,ml_tcflows_v2=9", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_EQ(hooks.max_entries_override("ml_tcflows_v2"), 4U);
  EXPECT_EQ(hooks.max_entries_override("ml_origdst_v2"), 16U);
  EXPECT_EQ(hooks.max_entries_override("ml_sockhash_v1"), 0U);
}

TEST_F(TestHooksFromEnvironment, MissingFeaturesSkipEmptyItems) {
  ::setenv("MESHLANE_TEST_MISSING_FEATURES", "sk_msg,,cgroup_sock_addr", 1);
  const TestHooks hooks = test_hooks_from_environment();
  EXPECT_EQ(hooks.missing_features, (std::vector<std::string>{"sk_msg", "cgroup_sock_addr"}));
}

}  // namespace
}  // namespace meshlane
