// The start-up scan of the runtime's CNI result cache: which cached pods become workloads, which
// are skipped and why, and that one bad file (garbage, a FIFO) does not stop the others.

#include "daemon/cni_resync.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/addresses.hpp"

#include "temp_dir.hpp"
#include "test_files.hpp"

namespace meshlane::daemon {
namespace {

using nlohmann::json;

const json kPrimaryOnly = json::parse(R"({"cniVersion":"1.0.0","name":"podnet","plugins":[
  {"type":"bridge","bridge":"cni0"}]})");
json with_meshlane(json conflist) {
  conflist["plugins"].push_back({{"type", "meshlane-cni"},
                                 {"exclude_namespaces", {"kube-system"}},
                                 {"capabilities", {{"io.kubernetes.cri.pod-annotations", true}}}});
  return conflist;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class CniResyncTest : public ::testing::Test {
 protected:
  CniResyncTest()
      : registry_(
            [this](const std::vector<WorkloadConfig>& all) {
              applied_ = all;
              return Status();
            },
            [](const std::vector<WorkloadConfig>&) { return Status(); }) {
    std::filesystem::create_directories(results());
    std::filesystem::create_directories(conf_dir());
    std::filesystem::create_directories(netns_dir());
    (void)registry_.start({}, {}, [](const WorkloadConfig&) { return Status(); });
    settings_.cni_cache_dir = dir_.path() + "/cache";
    settings_.cni_conf_dir = conf_dir();
  }

  [[nodiscard]] std::string results() const { return dir_.path() + "/cache/results"; }
  [[nodiscard]] std::string conf_dir() const { return dir_.path() + "/net.d"; }
  [[nodiscard]] std::string netns_dir() const { return dir_.path() + "/netns"; }

  // A pod's cache entry, as containerd's libcni writes it. alive: its netns file exists.
  void cache_pod(const std::string& pod, const json& annotations, const json& ran_conflist,
                 bool alive = true) {
    const std::string netns = netns_dir() + "/" + pod;
    if (alive) {
      write(netns, "");
    }
    const json entry = {
        {"kind", "cniCacheV1"},
        {"containerId", "id-" + pod},
        {"config", test::base64(ran_conflist.dump())},
        {"ifName", "eth0"},
        {"networkName", "podnet"},
        {"netns", netns},
        {"cniArgs", json::array({json::array({"K8S_POD_NAMESPACE", "shop"}),
                                 json::array({"K8S_POD_NAME", pod})})},
        {"capabilityArgs", {{"io.kubernetes.cri.pod-annotations", annotations}}},
        {"result",
         {{"cniVersion", "1.0.0"},
          {"interfaces", json::array({{{"name", "eth0"}, {"sandbox", netns}}})},
          {"ips", json::array({{{"address", "198.18.0." + std::to_string(++next_ip_) + "/24"},
                                {"interface", 0}}})}}}};
    write(results() + "/podnet-id-" + pod + "-eth0", entry.dump());
  }

  [[nodiscard]] std::vector<std::string> applied_names() const {
    std::vector<std::string> names;
    for (const WorkloadConfig& workload : applied_) {
      names.push_back(workload.name);
    }
    return names;
  }

  test::TempDir dir_{"cni-resync"};
  KubernetesConfig settings_;
  std::vector<WorkloadConfig> applied_;
  workloads::WorkloadRegistry registry_;
  int next_ip_ = 0;
  const json istio_ = {{"sidecar.istio.io/status", "{}"}};
};

TEST_F(CniResyncTest, OffWhenNoCacheDirIsConfigured) {
  cache_pod("cart", istio_, with_meshlane(kPrimaryOnly));
  const CniResyncReport report = resync_from_cni_cache(KubernetesConfig{}, registry_);
  EXPECT_FALSE(report.enabled);
  EXPECT_EQ(to_json(report), (json{{"enabled", false}}));
  EXPECT_TRUE(applied_names().empty());
}

TEST_F(CniResyncTest, EnrollsMeshPodsAddedWhileTheDaemonWasDown) {
  cache_pod("cart", istio_, with_meshlane(kPrimaryOnly));
  cache_pod("plain", json::object(), with_meshlane(kPrimaryOnly));
  cache_pod("deleted", istio_, with_meshlane(kPrimaryOnly), /*alive=*/false);
  cache_pod("optout", {{"sidecar.istio.io/status", "{}"}, {"meshlane.io/enabled", "false"}},
            with_meshlane(kPrimaryOnly));
  const CniResyncReport report = resync_from_cni_cache(settings_, registry_);
  EXPECT_TRUE(report.enabled);
  EXPECT_EQ(report.entries, 4U);
  EXPECT_EQ(report.added, 1U);
  EXPECT_EQ(report.skipped, 3U);
  EXPECT_EQ(report.failed, 0U);
  EXPECT_EQ(applied_names(), std::vector<std::string>{"shop.cart"});
  const auto entry = registry_.find("shop.cart");
  ASSERT_NE(entry.workload, nullptr);
  EXPECT_EQ(entry.workload->netns, netns_dir() + "/cart");
  ASSERT_EQ(entry.workload->ips.size(), 1U);
  EXPECT_EQ(to_string(entry.workload->ips[0]), "198.18.0.1");

  // A second start finds it registered already.
  const CniResyncReport again = resync_from_cni_cache(settings_, registry_);
  EXPECT_EQ(again.added, 0U);
  EXPECT_EQ(again.unchanged, 1U);
}

TEST_F(CniResyncTest, PodsFromBeforeTheInstallAreDecidedWithTheConflistOfToday) {
  cache_pod("early", istio_, kPrimaryOnly);
  // Without meshlane-cni in the node's conflist, nothing is enrolled.
  write(conf_dir() + "/10-podnet.conflist", kPrimaryOnly.dump());
  CniResyncReport report = resync_from_cni_cache(settings_, registry_);
  EXPECT_EQ(report.skipped, 1U);
  EXPECT_TRUE(applied_names().empty());
  // After install-cni, it is.
  write(conf_dir() + "/10-podnet.conflist", with_meshlane(kPrimaryOnly).dump());
  report = resync_from_cni_cache(settings_, registry_);
  EXPECT_EQ(report.added, 1U);
  EXPECT_EQ(applied_names(), std::vector<std::string>{"shop.early"});
}

TEST_F(CniResyncTest, BadFilesAreReportedAndTheOthersStillEnrolled) {
  write(results() + "/garbage", "{not json");
  ASSERT_EQ(::mkfifo((results() + "/fifo").c_str(), 0600), 0);
  std::filesystem::create_symlink("/etc/hostname", results() + "/link");
  cache_pod("cart", istio_, with_meshlane(kPrimaryOnly));
  const CniResyncReport report = resync_from_cni_cache(settings_, registry_);
  EXPECT_EQ(report.added, 1U);
  EXPECT_EQ(report.failed, 3U);
  ASSERT_EQ(report.failures.size(), 3U);
  EXPECT_NE(report.failures[1].find("garbage"), std::string::npos);
  EXPECT_EQ(applied_names(), std::vector<std::string>{"shop.cart"});
  EXPECT_EQ(to_json(report).at("failed"), 3);
}

TEST_F(CniResyncTest, AMissingResultsDirectoryIsAnEmptyCache) {
  std::filesystem::remove_all(results());
  const CniResyncReport report = resync_from_cni_cache(settings_, registry_);
  EXPECT_TRUE(report.enabled);
  EXPECT_EQ(report.entries, 0U);
  EXPECT_EQ(report.failed, 0U);
}

}  // namespace
}  // namespace meshlane::daemon
