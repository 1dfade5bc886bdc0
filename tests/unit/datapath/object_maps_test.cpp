// The pinned map names come from the BPF objects themselves (BuildMapNames in object_maps.hpp):
// these tests pin down what they must contain, so a map renamed in bpf/ without a new version is
// noticed, and the retired layouts the upgrade converts are never mistaken for this build's maps.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "datapath/object_maps.hpp"
#include "datapath/skeleton.hpp"
#include "meshlane/shared.h"
#include "sockops.skel.h"

namespace meshlane {
namespace {

// Every object's maps, as a run that opened none of them gets them.
Result<std::set<std::string>> pinned_map_names_of_build() {
  BuildMapNames maps;
  if (auto status = maps.add_unopened(); !status) {
    return status.error();
  }
  return maps.names();
}

TEST(PinnedMapNamesOfBuild, AreEveryMapTheObjectsDefine) {
  auto names = pinned_map_names_of_build();
  ASSERT_TRUE(names) << names.error().message();
  // The maps of bpf/include/meshlane/maps.bpf.h (tc_port_marks.bpf.h among them), counters.bpf.h,
  // events.bpf.h, listeners.bpf.h, port_use.bpf.h, reader_spin.bpf.h and dns_origin.bpf.h.
  const std::set<std::string> expected = {
      ML_SOCKHASH_MAP_NAME,        ML_SOCK_STATE_MAP_NAME,     ML_COUNTERS_MAP_NAME,
      ML_PORTS_MAP_NAME,           ML_ORIG_DST_MAP_NAME,       ML_WORKLOADS_MAP_NAME,
      ML_POD_IPS_MAP_NAME,         ML_PORT_RULES_MAP_NAME,     ML_CIDR_RULES_MAP_NAME,
      ML_TC_FLOWS_MAP_NAME,        ML_LISTENER_SOCKS_MAP_NAME, ML_POLICY_MAP_NAME,
      ML_WL_COUNTERS_MAP_NAME,     ML_EVENTS_MAP_NAME,         ML_MONITOR_MAP_NAME,
      ML_PAIRING_MAP_NAME,         ML_LISTEN_MODE_MAP_NAME,    ML_LISTENERS_MAP_NAME,
      ML_SERVER_LISTENER_MAP_NAME, ML_PORT_USE_MAP_NAME,       ML_SOCK_USE_MAP_NAME,
      ML_DNS_ORIGIN_MAP_NAME,      ML_TC_PORTS_MAP_NAME,       ML_READER_SPIN_MAP_NAME};
  EXPECT_EQ(names.value(), expected);
}

TEST(PinnedMapNamesOfBuild, LeaveOutTheRetiredLayouts) {
  auto names = pinned_map_names_of_build();
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(names->count(ML_TC_FLOWS_V1_MAP_NAME), 0U);
  EXPECT_EQ(names->count(ML_ORIG_DST_V1_MAP_NAME), 0U);
}

TEST(PinnedMapNamesOfBuild, AnObjectAddedOpenIsCompletedByTheOthers) {
  auto sockops = SockopsSkeleton::open();
  ASSERT_TRUE(sockops) << sockops.error().message();
  BuildMapNames maps;
  maps.add(BuildMapNames::Object::kSockops, sockops.value()->obj);
  EXPECT_EQ(maps.names().count(ML_SOCKHASH_MAP_NAME), 1U);
  ASSERT_TRUE(maps.add_unopened());
  auto all = pinned_map_names_of_build();
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(maps.names(), all.value());
}

}  // namespace
}  // namespace meshlane
