// Arming the tc programs' port filter (controller/datapath/tc_port_filter.cpp) on maps of the
// pinned layouts: every flow's ports are marked, marks already set stay, and a map of another
// layout is refused. inbound_tc_prog_test.cpp checks the programs against the same maps.
#include "datapath/tc_port_filter.hpp"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/unique_fd.hpp"

extern "C" {
#include "meshlane/tc_flow_types.h"
#include "meshlane/tc_port_marks.h"
}

namespace meshlane {
namespace {

class TcPortFilter : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "creating BPF maps needs root (CAP_BPF)";
    }
    LIBBPF_OPTS(bpf_map_create_opts, mmapable, .map_flags = BPF_F_MMAPABLE);
    marks_.reset(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ml_tcports_test", sizeof(std::uint32_t),
                                sizeof(std::uint64_t), ML_TC_PORTS_SLOTS, &mmapable));
    ASSERT_TRUE(marks_) << "cannot create the marks map: " << std::strerror(errno);
    flows_.reset(bpf_map_create(BPF_MAP_TYPE_HASH, "ml_tcflows_test", sizeof(ml_tc_flow_key),
                                sizeof(ml_tc_flow), 8192, nullptr));
    ASSERT_TRUE(flows_) << "cannot create the flow map: " << std::strerror(errno);
  }

  void file_flow(std::uint16_t client_port, std::uint16_t orig_port, std::uint16_t inbound_port) {
    ml_tc_flow_key key{};
    key.remote_ip6[0] = 0xfd;  // only the port varies: fd.. and 198.18/15 are test ranges
    key.remote_port = client_port;
    ml_tc_flow value{};
    value.orig_port = orig_port;
    value.inbound_port = inbound_port;
    ASSERT_EQ(bpf_map_update_elem(flows_.get(), &key, &value, BPF_NOEXIST), 0);
  }
  std::uint64_t slot(std::uint32_t index) {
    std::uint64_t word = 0;
    EXPECT_EQ(bpf_map_lookup_elem(marks_.get(), &index, &word), 0);
    return word;
  }
  bool marked(ml_tc_port_set set, std::uint16_t port) {
    return (slot(ml_tc_port_slot(set, port)) & ml_tc_port_bit(port)) != 0;
  }

  UniqueFd marks_;
  UniqueFd flows_;
};

TEST_F(TcPortFilter, MarksEveryFlowsPortsInTheirOwnSetAndArms) {
  // More flows than one batch of the walk (1,024), on ports in several words of both sets.
  for (std::uint16_t i = 0; i < 3000; ++i) {
    file_flow(static_cast<std::uint16_t>(20000 + i), static_cast<std::uint16_t>(8000 + i % 100),
              i % 2 == 0 ? 15006 : 15106);
  }

  auto report = arm_tc_port_filter(marks_.get(), flows_.get());

  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->flows, 3000u);
  EXPECT_EQ(report->app_ports, 100u);
  EXPECT_EQ(report->inbound_ports, 2u);
  for (std::uint16_t port = 8000; port < 8100; ++port) {
    EXPECT_TRUE(marked(ML_TC_PORTS_APP, port)) << port;
    EXPECT_FALSE(marked(ML_TC_PORTS_INBOUND, port)) << port;
  }
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, 7999));
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, 8100));
  EXPECT_TRUE(marked(ML_TC_PORTS_INBOUND, 15006));
  EXPECT_TRUE(marked(ML_TC_PORTS_INBOUND, 15106));
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, 15006));
  EXPECT_EQ(slot(ML_TC_PORTS_ARMED_SLOT), 1u);
}

TEST_F(TcPortFilter, KeepsMarksAlreadySetAndArmsWithNoFlows) {
  const std::uint32_t index = ml_tc_port_slot(ML_TC_PORTS_APP, 443);
  const std::uint64_t word = ml_tc_port_bit(443);
  ASSERT_EQ(bpf_map_update_elem(marks_.get(), &index, &word, BPF_ANY), 0);

  auto report = arm_tc_port_filter(marks_.get(), flows_.get());

  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->flows, 0u);
  EXPECT_EQ(report->app_ports, 1u);
  EXPECT_TRUE(marked(ML_TC_PORTS_APP, 443));
  EXPECT_EQ(slot(ML_TC_PORTS_ARMED_SLOT), 1u);

  ASSERT_TRUE(disarm_tc_port_filter(marks_.get()));
  EXPECT_EQ(slot(ML_TC_PORTS_ARMED_SLOT), 0u);
  EXPECT_TRUE(marked(ML_TC_PORTS_APP, 443));
}

TEST_F(TcPortFilter, RefusesAMapOfAnotherLayout) {
  LIBBPF_OPTS(bpf_map_create_opts, mmapable, .map_flags = BPF_F_MMAPABLE);
  UniqueFd small(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ml_tcports_old", sizeof(std::uint32_t),
                                sizeof(std::uint64_t), 16, &mmapable));
  ASSERT_TRUE(small) << std::strerror(errno);

  auto report = arm_tc_port_filter(small.get(), flows_.get());

  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message().find("ml_tcports_v1"), std::string::npos)
      << report.error().message();
  EXPECT_FALSE(disarm_tc_port_filter(small.get()));
}

}  // namespace
}  // namespace meshlane
