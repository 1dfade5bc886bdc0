// The optional kernel features (probed in the kernel's BTF) and how they weigh in the
// refuse/degrade decision: never at all.
#include "datapath/kernel_features.hpp"

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <cstdio>
#include <string>
#include <vector>

namespace meshlane {
namespace {

// The running kernel's major.minor as one number (6.18 -> 618); 0 when it cannot be read.
int kernel_version() {
  utsname host{};
  int major = 0;
  int minor = 0;
  if (::uname(&host) != 0 || std::sscanf(host.release, "%d.%d", &major, &minor) != 2) {
    return 0;
  }
  return major * 100 + minor;
}

TEST(OptionalKernelFeatures, HaveTheirShape) {
  const std::vector<KernelFeature> features = probe_optional_features(TestHooks{});
  ASSERT_EQ(features.size(), 2u);
  EXPECT_EQ(features[0].needed_for, kForReaderLimits);
  EXPECT_NE(features[0].name.find("(kernel >= 6.2)"), std::string::npos) << features[0].name;
  EXPECT_EQ(features[1].needed_for, kForMapFullCheck);
  EXPECT_NE(features[1].name.find("bpf_map_sum_elem_count (kernel >= 6.6)"), std::string::npos)
      << features[1].name;
  for (const KernelFeature& feature : features) {
    EXPECT_TRUE(feature.optional) << feature.name;
    EXPECT_FALSE(feature.when_absent.empty()) << feature.name;
    EXPECT_FALSE(feature.pretended_absent) << feature.name;
  }
}

TEST(OptionalKernelFeatures, FoundOnAKernelThatHasThem) {
  if (kernel_version() < 606) {
    GTEST_SKIP() << "kernel older than 6.6: the features may rightly be absent";
  }
  for (const KernelFeature& feature : probe_optional_features(TestHooks{})) {
    EXPECT_TRUE(feature.present) << feature.name;
  }
}

TEST(OptionalKernelFeatures, TestHookPretendsThemAbsent) {
  TestHooks hooks;
  hooks.missing_features = {"bpf_map_sum_elem_count"};
  const std::vector<KernelFeature> features = probe_optional_features(hooks);
  ASSERT_EQ(features.size(), 2u);
  EXPECT_FALSE(features[1].present);
  EXPECT_TRUE(features[1].pretended_absent);
  EXPECT_FALSE(features[0].pretended_absent);
}

std::vector<KernelFeature> required_present() {
  return {{"program type sock_ops", kForBoth, true},
          {"program type sk_msg", kForSplicing, true},
          {"program type cgroup_sock_addr", kForInterception, true}};
}

TEST(OptionalKernelFeatures, AnAbsentOneIsNeitherMissingNorDegrading) {
  std::vector<KernelFeature> features = required_present();
  KernelFeature off{"kfunc bpf_map_sum_elem_count (kernel >= 6.6)", kForMapFullCheck, false};
  off.optional = true;
  off.when_absent = "no pre-check";
  features.push_back(off);

  EXPECT_TRUE(require_features(features));
  for (const char* mode : {"refuse", "degrade"}) {
    const Result<FeatureSupport> support = decide_features(features, mode);
    ASSERT_TRUE(support) << mode << ": " << support.error().message();
    EXPECT_TRUE(support->splicing) << mode;
    EXPECT_TRUE(support->interception) << mode;
  }
}

TEST(OptionalKernelFeatures, ARequiredOneStillRefuses) {
  std::vector<KernelFeature> features = required_present();
  features[1].present = false;
  const Status required = require_features(features);
  ASSERT_FALSE(required);
  EXPECT_NE(required.error().message().find("program type sk_msg"), std::string::npos);
  const Result<FeatureSupport> degraded = decide_features(features, "degrade");
  ASSERT_TRUE(degraded);
  EXPECT_FALSE(degraded->splicing);
  EXPECT_TRUE(degraded->interception);
}

}  // namespace
}  // namespace meshlane
