// decide_pinned_map: what a restart does with each kind of pinned map (docs/reliability.md).
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/unique_fd.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/map_upgrade.hpp"
#include "meshlane/shared.h"

namespace meshlane {
namespace {

MapSpec spec(const char* name, std::uint32_t type, std::uint32_t value, std::uint32_t entries) {
  return {name, type, 8, value, entries, 0};
}

TEST(DecidePinnedMap, NothingPinnedIsCreated) {
  auto want = spec(ML_TC_FLOWS_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 8, 100);
  EXPECT_EQ(decide_pinned_map(want, nullptr, "/p")->action, PinAction::kCreate);
}

TEST(DecidePinnedMap, IdenticalIsReused) {
  auto want = spec(ML_TC_FLOWS_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 8, 100);
  EXPECT_EQ(decide_pinned_map(want, &want, "/p")->action, PinAction::kReuse);
}

TEST(DecidePinnedMap, OtherSizeSameLayoutIsMigrated) {
  auto want = spec(ML_TC_FLOWS_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 8, 100);
  auto have = spec(ML_TC_FLOWS_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 8, 50);
  auto decision = decide_pinned_map(want, &have, "/p");
  EXPECT_EQ(decision->action, PinAction::kMigrate);
  EXPECT_EQ(decision->why, "max_entries 50 (this build: 100)");
}

TEST(DecidePinnedMap, SockhashOfOtherSizeIsRecreated) {
  auto want = spec(ML_SOCKHASH_MAP_NAME, BPF_MAP_TYPE_SOCKHASH, 4, 100);
  auto have = spec(ML_SOCKHASH_MAP_NAME, BPF_MAP_TYPE_SOCKHASH, 4, 50);
  EXPECT_EQ(decide_pinned_map(want, &have, "/p")->action, PinAction::kRecreate);
}

TEST(DecidePinnedMap, RebuildableMapOfOtherLayoutIsRecreated) {
  auto want = spec(ML_PORT_RULES_MAP_NAME, BPF_MAP_TYPE_HASH, 1, 100);
  auto have = spec(ML_PORT_RULES_MAP_NAME, BPF_MAP_TYPE_HASH, 16, 100);
  EXPECT_EQ(decide_pinned_map(want, &have, "/p")->action, PinAction::kRecreate);
}

TEST(DecidePinnedMap, ConnectionStateOfOtherLayoutIsRefusedWithAdvice) {
  auto want = spec(ML_ORIG_DST_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 20, 100);
  auto have = spec(ML_ORIG_DST_MAP_NAME, BPF_MAP_TYPE_LRU_HASH, 24, 100);
  auto decision = decide_pinned_map(want, &have, "/sys/fs/bpf/x/ml_origdst_v1");
  ASSERT_FALSE(decision.ok());
  const std::string& message = decision.error().context;
  EXPECT_NE(message.find("/sys/fs/bpf/x/ml_origdst_v1 is incompatible with this build: value "
                         "size 24 (this build: 20)"),
            std::string::npos);
  EXPECT_NE(message.find("rm /sys/fs/bpf/x/ml_origdst_v1"), std::string::npos);
  EXPECT_NE(message.find("meshlaned --cleanup"), std::string::npos);
}

// The pinned side of decide_pinned_map() is what map_info() reads back from the kernel.
TEST(MapInfo, ReadsBackTheDefinitionAMapWasCreatedWith) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "creating a BPF map needs root (CAP_BPF)";
  }
  const MapSpec want{"ml_spec_test", BPF_MAP_TYPE_HASH, 8, 16, 32, BPF_F_NO_PREALLOC};
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = want.flags);
  UniqueFd fd(bpf_map_create(static_cast<bpf_map_type>(want.type), want.name.c_str(), want.key_size,
                             want.value_size, want.max_entries, &options));
  if (!fd) {
    GTEST_SKIP() << "cannot create a BPF map here: " << std::strerror(errno);
  }
  auto have = map_info(fd.get());
  ASSERT_TRUE(have) << have.error().message();
  EXPECT_EQ(have.value(), want);
  EXPECT_TRUE(map_id(fd.get()));
}

}  // namespace
}  // namespace meshlane
