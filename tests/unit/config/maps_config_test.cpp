// The [maps] table: the capacities of the datapath's maps besides the sockhash. Defaults equal
// the sizes the BPF objects declare (what meshlane used before they were settings), each key
// is bounded, and a bad value is an error naming the key, its range and the file position.

#include <gtest/gtest.h>

#include <string>

#include "config/config.hpp"

#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::parse_error;
using test::parse_ok;

TEST(MapsConfig, DefaultsAreTheBuiltInSizes) {
  const MapsConfig maps = parse_ok("").maps;
  // bpf/include/meshlane/orig_dst.bpf.h, tc_flow.bpf.h, rules.bpf.h.
  EXPECT_EQ(maps.orig_dst_max_entries, 65536u);
  EXPECT_EQ(maps.tc_flow_max_entries, 65536u);
  EXPECT_EQ(maps.workload_max_entries, 4096u);
  EXPECT_EQ(maps.pod_address_max_entries, 8192u);
  EXPECT_EQ(parse_ok("[maps]\n").maps, MapsConfig{});
}

TEST(MapsConfig, EveryKeyIsRead) {
  const MapsConfig maps = parse_ok(R"(
[maps]
orig_dst_max_entries = 16
tc_flow_max_entries = 4194304
workload_max_entries = 1
pod_address_max_entries = 262144
)")
                              .maps;
  EXPECT_EQ(maps.orig_dst_max_entries, 16u);
  EXPECT_EQ(maps.tc_flow_max_entries, 4194304u);
  EXPECT_EQ(maps.workload_max_entries, 1u);
  EXPECT_EQ(maps.pod_address_max_entries, 262144u);
}

TEST(MapsConfig, OutOfRangeValuesNameTheKeyAndTheRange) {
  EXPECT_TRUE(contains(parse_error("[maps]\norig_dst_max_entries = 15\n"),
                       "meshlane.toml:2:24: maps.orig_dst_max_entries: 15 is out of range "
                       "(allowed 16..4194304)"));
  EXPECT_TRUE(contains(parse_error("[maps]\ntc_flow_max_entries = 4194305\n"),
                       "maps.tc_flow_max_entries: 4194305 is out of range (allowed 16..4194304)"));
  EXPECT_TRUE(contains(parse_error("[maps]\nworkload_max_entries = 0\n"),
                       "maps.workload_max_entries: 0 is out of range (allowed 1..65536)"));
  EXPECT_TRUE(contains(parse_error("[maps]\nworkload_max_entries = 65537\n"),
                       "maps.workload_max_entries: 65537 is out of range (allowed 1..65536)"));
  EXPECT_TRUE(contains(parse_error("[maps]\npod_address_max_entries = -1\n"),
                       "maps.pod_address_max_entries: -1 is out of range (allowed 1..262144)"));
}

TEST(MapsConfig, WrongTypesAreRejected) {
  EXPECT_TRUE(contains(parse_error("[maps]\norig_dst_max_entries = \"many\"\n"),
                       "maps.orig_dst_max_entries: expected an integer 16..4194304, got string"));
  EXPECT_TRUE(contains(parse_error("[maps]\ntc_flow_max_entries = 1024.0\n"),
                       "maps.tc_flow_max_entries: expected an integer 16..4194304, got float"));
  EXPECT_TRUE(contains(parse_error("maps = 3\n"), "maps: expected a table, got integer"));
}

TEST(MapsConfig, UnknownKeyListsTheKnownOnes) {
  EXPECT_TRUE(contains(parse_error("[maps]\nsockhash_max_entries = 1024\n"),
                       "maps.sockhash_max_entries: unknown key (known keys: "
                       "orig_dst_max_entries, tc_flow_max_entries, workload_max_entries, "
                       "pod_address_max_entries)"));
}

}  // namespace
}  // namespace meshlane
