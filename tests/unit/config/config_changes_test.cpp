// Which keys a SIGHUP reload finds changed, and that every key of config/meshlane.toml outside
// [[workload]] is one changed_keys() knows: a key added to a table and forgotten there would be
// silently ignored by a reload.

#include "config/config_changes.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include <toml++/toml.h>

#include "test_support.hpp"

namespace meshlane {
namespace {

using test::parse_ok;

// One changed value per key (each differs from the default).
const std::map<std::string, std::string> kChangedValue = {
    {"daemon.bpffs_dir", "\"/sys/fs/bpf/other\""},
    {"daemon.cgroup", "\"meshlane-test\""},
    {"daemon.log_level", "\"debug\""},
    {"daemon.on_missing_feature", "\"degrade\""},
    {"daemon.socket", "\"/run/other.sock\""},
    {"daemon.socket_mode", "\"0600\""},
    {"daemon.socket_read_group", "\"0\""},
    {"daemon.socket_write_group", "\"0\""},
    {"daemon.state_dir", "\"/var/lib/other\""},
    {"daemon.allow_host_netns", "true"},
    {"daemon.decision_log", "4096"},
    {"daemon.inbound_steering", "\"tc\""},
    {"acceleration.enabled", "false"},
    {"acceleration.sockhash_max_entries", "1024"},
    {"acceleration.include_ports", "[8080]"},
    {"acceleration.exclude_ports", "[8080]"},
    {"acceleration.splice_blocking_sockets", "true"},
    {"acceleration.max_unread_bytes", "65536"},
    {"acceleration.adaptive_splicing", "false"},
    {"acceleration.leave_spinning_readers", "false"},
    {"acceleration.spinning_reader_per_mille", "5"},
    {"maps.orig_dst_max_entries", "1024"},
    {"maps.tc_flow_max_entries", "1024"},
    {"maps.workload_max_entries", "64"},
    {"maps.pod_address_max_entries", "128"},
    {"metrics.listen", "\"127.0.0.1:9464\""},
    {"metrics.allow_non_loopback", "true"},
    {"kubernetes.cni_cache_dir", "\"/var/lib/cni\""},
    {"kubernetes.cni_conf_dir", "\"/host/net.d\""},
};

TEST(ChangedKeys, NoneForTheSameConfig) {
  EXPECT_TRUE(changed_keys(parse_ok(""), parse_ok("")).empty());
}

TEST(ChangedKeys, EachKeyIsNamedWhenItAloneChanges) {
  const Config defaults = parse_ok("");
  for (const auto& [key, value] : kChangedValue) {
    const std::string table = key.substr(0, key.find('.'));
    const std::string name = key.substr(key.find('.') + 1);
    const Config changed = parse_ok("[" + table + "]\n" + name + " = " + value + "\n");
    EXPECT_EQ(changed_keys(defaults, changed), std::vector<std::string>{key}) << key;
  }
}

TEST(ChangedKeys, WorkloadsAreNotAmongThem) {
  const Config with_workload = parse_ok(
      "[[workload]]\nname = \"a\"\nnetns = \"/var/run/netns/a\"\nips = [\"198.18.0.1\"]\n");
  EXPECT_TRUE(changed_keys(parse_ok(""), with_workload).empty());
}

TEST(ChangedKeys, OnlyTheLogLevelIsAppliedOnReload) {
  for (const auto& [key, value] : kChangedValue) {
    EXPECT_EQ(applied_on_reload(key), key == "daemon.log_level") << key;
  }
}

TEST(ChangedKeys, EveryDocumentedKeyIsCovered) {
  const toml::table documented =
      toml::parse_file(MESHLANE_FIXTURE_DIR "/../../config/meshlane.toml");
  std::set<std::string> keys;
  for (const auto& [table, node] : documented) {
    if (table.str() == "workload" || !node.is_table()) {
      continue;
    }
    for (const auto& [key, value] : *node.as_table()) {
      keys.insert(std::string(table.str()) + "." + std::string(key.str()));
    }
  }
  ASSERT_FALSE(keys.empty());
  for (const std::string& key : keys) {
    EXPECT_EQ(kChangedValue.count(key), 1U)
        << key << " is in config/meshlane.toml but not in this test (nor, probably, in "
        << "changed_keys())";
  }
}

}  // namespace
}  // namespace meshlane
