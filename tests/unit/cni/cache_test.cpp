// The runtime's CNI result cache as meshlaned reads it at start: libcni's cniCacheV1 files, the
// configuration inside them, and the plugin's decision made again from what they hold.

#include "cni/cache.hpp"

#include <gtest/gtest.h>

#include <string>

#include "test_files.hpp"

namespace meshlane::cni {
namespace {

using nlohmann::json;

// The conflist's bytes as libcni caches them.
std::string encoded_conflist(const json& conflist) { return test::base64(conflist.dump()); }

const json kConflist = json::parse(R"({"cniVersion":"1.0.0","name":"podnet","plugins":[
  {"type":"bridge","bridge":"cni0"},
  {"type":"meshlane-cni","exclude_namespaces":["kube-system"],
   "capabilities":{"io.kubernetes.cri.pod-annotations":true}}]})");

const json kResult = json::parse(R"({"cniVersion":"1.0.0",
  "interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],
  "ips":[{"address":"198.18.0.5/24","interface":1},{"address":"fd00::5/64","interface":1}]})");

// What containerd's libcni writes after a successful ADD.
json cache_file(const json& annotations, const std::string& pod_namespace = "shop") {
  return json{{"kind", "cniCacheV1"},
              {"containerId", "c0ffee"},
              {"config", encoded_conflist(kConflist)},
              {"ifName", "eth0"},
              {"networkName", "podnet"},
              {"netns", "/var/run/netns/cni-1"},
              {"cniArgs", json::array({json::array({"IgnoreUnknown", "1"}),
                                       json::array({"K8S_POD_NAMESPACE", pod_namespace}),
                                       json::array({"K8S_POD_NAME", "cart-1"})})},
              {"capabilityArgs", {{"io.kubernetes.cri.pod-annotations", annotations}}},
              {"result", kResult}};
}

TEST(Base64, DecodesWithAndWithoutPaddingAndRejectsOtherText) {
  EXPECT_EQ(decode_base64("aGVsbG8=").value(), "hello");
  EXPECT_EQ(decode_base64("aGVsbG8").value(), "hello");
  EXPECT_EQ(decode_base64("").value(), "");
  EXPECT_EQ(decode_base64(encoded_conflist(kConflist)).value(), kConflist.dump());
  EXPECT_FALSE(decode_base64("aGV*bG8=").ok());
  EXPECT_FALSE(decode_base64("a").ok());
}

TEST(CacheEntry, ReadsEveryFieldLibcniWrites) {
  auto entry = parse_cache_entry(cache_file({{"sidecar.istio.io/status", "{}"}}).dump());
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->container_id, "c0ffee");
  EXPECT_EQ(entry->network_name, "podnet");
  EXPECT_EQ(entry->ifname, "eth0");
  EXPECT_EQ(entry->netns, "/var/run/netns/cni-1");
  EXPECT_EQ(entry->cni_args.at("K8S_POD_NAME"), "cart-1");
  EXPECT_EQ(entry->result, kResult);
  ASSERT_TRUE(entry->config.has_value());
  EXPECT_EQ(*entry->config, kConflist);
}

TEST(CacheEntry, KeysMatchInAnyCaseAsInGo) {
  json file = cache_file(json::object());
  file["containerID"] = file["containerId"];
  file.erase("containerId");
  auto entry = parse_cache_entry(file.dump());
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->container_id, "c0ffee");
}

TEST(CacheEntry, RejectsLegacyAndMalformedFiles) {
  // A result-only file (libcni before 0.8).
  EXPECT_FALSE(parse_cache_entry(kResult.dump()).ok());
  EXPECT_FALSE(parse_cache_entry("not json").ok());
  json no_ifname = cache_file(json::object());
  no_ifname.erase("ifName");
  EXPECT_NE(parse_cache_entry(no_ifname.dump()).error().message().find("ifName"),
            std::string::npos);
  json bad_args = cache_file(json::object());
  bad_args["cniArgs"] = json::array({json::array({"K8S_POD_NAME"})});
  EXPECT_FALSE(parse_cache_entry(bad_args.dump()).ok());
  // An undecodable configuration is not an error: the network's current conflist is used.
  json bad_config = cache_file(json::object());
  bad_config["config"] = "***";
  auto entry = parse_cache_entry(bad_config.dump());
  ASSERT_TRUE(entry.ok());
  EXPECT_FALSE(entry->config.has_value());
}

TEST(PluginConfig, FindsOurEntryWithTheListsVersionAndName) {
  auto conf = plugin_config(kConflist);
  ASSERT_TRUE(conf.has_value());
  EXPECT_EQ(conf->at("type"), "meshlane-cni");
  EXPECT_EQ(conf->at("cniVersion"), "1.0.0");
  EXPECT_EQ(conf->at("name"), "podnet");
  json without = kConflist;
  without["plugins"].erase(1);
  EXPECT_FALSE(plugin_config(without).has_value());
  EXPECT_FALSE(plugin_config(json::parse(R"({"type":"bridge"})")).has_value());
  EXPECT_TRUE(plugin_config(json::parse(R"({"type":"meshlane-cni"})")).has_value());
}

TEST(DecideCached, AnIstioPodIsEnrolledAsTheAddWouldHaveDone) {
  auto entry = parse_cache_entry(cache_file({{"sidecar.istio.io/status", "{}"}}).dump());
  ASSERT_TRUE(entry.ok());
  auto decision = decide_cached(entry.value(), plugin_config(kConflist).value());
  ASSERT_TRUE(decision.ok()) << decision.error().msg;
  EXPECT_TRUE(decision->enroll);
  EXPECT_EQ(decision->name, "shop.cart-1");
  EXPECT_EQ(decision->params.at("netns"), "/var/run/netns/cni-1");
  EXPECT_EQ(decision->params.at("ips"), json::array({"198.18.0.5", "fd00::5"}));
  EXPECT_EQ(decision->params.at("labels").at("meshlane.io/container-id"), "c0ffee");
}

TEST(DecideCached, SkipsWhatThePluginSkips) {
  auto plain = parse_cache_entry(cache_file(json::object()).dump());
  EXPECT_FALSE(decide_cached(plain.value(), plugin_config(kConflist).value())->enroll);
  auto opted_out = parse_cache_entry(
      cache_file({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/enabled", "false"}}).dump());
  EXPECT_FALSE(decide_cached(opted_out.value(), plugin_config(kConflist).value())->enroll);
  auto system =
      parse_cache_entry(cache_file({{"sidecar.istio.io/status", "{}"}}, "kube-system").dump());
  EXPECT_FALSE(decide_cached(system.value(), plugin_config(kConflist).value())->enroll);
}

TEST(DecideCached, AnnotationsReachTheDecisionOnlyWhenTheEntryDeclaresTheCapability) {
  auto entry = parse_cache_entry(cache_file({{"sidecar.istio.io/status", "{}"}}).dump());
  json conf = plugin_config(kConflist).value();
  conf.erase("capabilities");
  EXPECT_FALSE(decide_cached(entry.value(), conf)->enroll);
}

TEST(DecideCached, UnusableInputIsAnError) {
  auto bad_annotation = parse_cache_entry(
      cache_file({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/fast-path", "maybe"}}).dump());
  EXPECT_FALSE(decide_cached(bad_annotation.value(), plugin_config(kConflist).value()).ok());
  json conf = plugin_config(kConflist).value();
  conf["failure_policy"] = "sometimes";
  auto entry = parse_cache_entry(cache_file({{"sidecar.istio.io/status", "{}"}}).dump());
  EXPECT_FALSE(decide_cached(entry.value(), conf).ok());
}

}  // namespace
}  // namespace meshlane::cni
