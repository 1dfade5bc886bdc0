// The pod side: its addresses in prevResult, its workload name, and what its annotations make
// of it (skip, or a workload.add request with the mesh's preset and the pod's exceptions).

#include "cni/pod.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

namespace meshlane::cni {
namespace {

using nlohmann::json;

// A bridge plugin's 1.0.0 result: the bridge and host veth (no sandbox), the pod's eth0 and a
// second pod interface net1; eth0 has an IPv4 and an IPv6 address.
const json kBridgeResult = json::parse(R"({
  "cniVersion":"1.0.0",
  "interfaces":[{"name":"cni0","mac":"aa:aa:aa:aa:aa:aa"},
                {"name":"veth12","mac":"bb:bb:bb:bb:bb:bb"},
                {"name":"eth0","mac":"cc:cc:cc:cc:cc:cc","sandbox":"/var/run/netns/p"},
                {"name":"net1","sandbox":"/var/run/netns/p"},
                {"name":"eth0","mac":"dd:dd:dd:dd:dd:dd"}],
  "ips":[{"address":"198.18.0.5/24","gateway":"198.18.0.1","interface":2},
         {"address":"fd00::5/64","gateway":"fd00::1","interface":2},
         {"address":"198.18.1.7/24","interface":3},
         {"address":"198.18.0.1/24","interface":0},
         {"address":"198.18.9.9/24","interface":4}],
  "dns":{}})");

TEST(PodAddresses, TakesV4AndV6OfTheSandboxInterfaceOnly) {
  auto addresses = pod_addresses(kBridgeResult, "eth0");
  ASSERT_TRUE(addresses.ok()) << addresses.error().message();
  EXPECT_EQ(addresses.value(), (std::vector<std::string>{"198.18.0.5", "fd00::5"}));
  auto second = pod_addresses(kBridgeResult, "net1");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), std::vector<std::string>{"198.18.1.7"});
  auto none = pod_addresses(kBridgeResult, "eth9");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(PodAddresses, Reads040ResultsAndResultsWithoutInterfaces) {
  const json old = json::parse(R"({"cniVersion":"0.4.0",
    "interfaces":[{"name":"eth0","sandbox":"/proc/42/ns/net"}],
    "ips":[{"version":"4","address":"198.18.0.9/16","interface":0},
           {"version":"6","address":"fd00::9/64","interface":0}]})");
  EXPECT_EQ(pod_addresses(old, "eth0").value(),
            (std::vector<std::string>{"198.18.0.9", "fd00::9"}));
  const json bare = json::parse(R"({"cniVersion":"1.0.0","ips":[{"address":"198.18.0.3/32"}]})");
  EXPECT_EQ(pod_addresses(bare, "eth0").value(), std::vector<std::string>{"198.18.0.3"});
}

TEST(PodAddresses, MalformedResultsAreErrors) {
  EXPECT_FALSE(pod_addresses(json::parse(R"({"ips":{}})"), "eth0").ok());
  EXPECT_FALSE(pod_addresses(json::parse(R"({"ips":[{"interface":0}]})"), "eth0").ok());
  EXPECT_FALSE(pod_addresses(json::parse(R"({"ips":[{"address":"bogus/24"}]})"), "eth0").ok());
  EXPECT_FALSE(pod_addresses(json::parse(R"({"interfaces":"eth0"})"), "eth0").ok());
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 63) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

TEST(WorkloadName, NamespaceDotPodIsStable) {
  const PodIdentity pod{"default", "web-0", "c0ffee"};
  EXPECT_EQ(workload_name(pod), "default.web-0");
  EXPECT_EQ(workload_name(pod), workload_name(PodIdentity{"default", "web-0", "other-sandbox"}));
  EXPECT_NE(workload_name(pod), workload_name(PodIdentity{"default", "web-1", "c0ffee"}));
}

TEST(WorkloadName, LongNamesAreTruncatedWithAHashAndStayDistinct) {
  const std::string long_pod(200, 'a');
  const std::string a = workload_name({"team-payments", long_pod + "-x", "c"});
  const std::string b = workload_name({"team-payments", long_pod + "-y", "c"});
  EXPECT_TRUE(valid_name(a)) << a;
  EXPECT_TRUE(valid_name(b)) << b;
  EXPECT_EQ(a.size(), 63u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, workload_name({"team-payments", long_pod + "-x", "c"}));
  EXPECT_EQ(a.substr(0, 14), "team-payments.");
}

TEST(WorkloadName, OddCharactersAreReplacedAndHashed) {
  const std::string name = workload_name({"ns", "a:b/c", "c"});
  EXPECT_TRUE(valid_name(name)) << name;
  EXPECT_NE(name, workload_name({"ns", "a_b_c", "c"}));  // no collision with the plain name
}

TEST(WorkloadName, FallsBackToTheContainerId) {
  const std::string id(64, 'f');
  const std::string name = workload_name({"", "", id});
  EXPECT_TRUE(valid_name(name)) << name;
  EXPECT_EQ(name.substr(0, 4), "cni-");
  EXPECT_EQ(workload_name({"", "", "abc"}), "cni-abc");
  EXPECT_EQ(workload_name({"default", "", "abc"}), "cni-abc");
}

TEST(LabelValue, KeepsTheFirst63Characters) {
  const std::string id(64, 'e');
  EXPECT_EQ(label_value(id), id.substr(0, 63));
  EXPECT_EQ(label_value("a/b"), "a_b");
}

Environment add_env() {
  Environment env;
  env.command = Command::kAdd;
  env.container_id = "0123456789abcdef";
  env.netns = "/var/run/netns/p";
  env.ifname = "eth0";
  env.args = {{"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "cart-7d9f"}};
  return env;
}

const std::vector<std::string> kAddresses = {"198.18.0.5", "fd00::5"};

Decision decide_ok(const std::map<std::string, std::string>& annotations,
                   const Settings& settings = Settings{}) {
  auto decision = decide(settings, add_env(), annotations, kAddresses);
  EXPECT_TRUE(decision.ok()) << (decision.ok() ? "" : decision.error().details);
  return decision.ok() ? decision.value() : Decision{};
}

CniError decide_error(const std::map<std::string, std::string>& annotations) {
  auto decision = decide(Settings{}, add_env(), annotations, kAddresses);
  EXPECT_FALSE(decision.ok());
  return decision.ok() ? CniError{} : decision.error();
}

TEST(Decide, IstioPodIsEnrolledWithItsIdentity) {
  const Decision decision = decide_ok({{"sidecar.istio.io/status", R"({"version":"x"})"}});
  ASSERT_TRUE(decision.enroll);
  EXPECT_EQ(decision.mesh, Mesh::kIstio);
  EXPECT_EQ(decision.name, "shop.cart-7d9f");
  EXPECT_EQ(decision.params, json::parse(R"({
    "name":"shop.cart-7d9f","netns":"/var/run/netns/p","ips":["198.18.0.5","fd00::5"],
    "mesh":"istio","interface":"eth0",
    "labels":{"meshlane.io/managed-by":"meshlane-cni","meshlane.io/container-id":"0123456789abcdef",
              "meshlane.io/k8s-namespace":"shop","meshlane.io/k8s-pod":"cart-7d9f"}})"));
}

TEST(Decide, LinkerdPodIsEnrolledAsLinkerd) {
  const Decision decision = decide_ok({{"linkerd.io/proxy-version", "stable-2.14"}});
  ASSERT_TRUE(decision.enroll);
  EXPECT_EQ(decision.mesh, Mesh::kLinkerd);
  EXPECT_EQ(decision.params["mesh"], "linkerd");
}

TEST(Decide, SkipsPodsWithoutSidecarOptedOutOrInExcludedNamespaces) {
  EXPECT_FALSE(decide_ok({}).enroll);
  EXPECT_FALSE(decide_ok({{"app", "web"}}).enroll);
  EXPECT_FALSE(
      decide_ok({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/enabled", "false"}}).enroll);
  EXPECT_TRUE(
      decide_ok({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/enabled", "true"}}).enroll);
  Settings settings;
  settings.exclude_namespaces = {"kube-system", "shop"};
  const Decision excluded = decide_ok({{"sidecar.istio.io/status", "{}"}}, settings);
  EXPECT_FALSE(excluded.enroll);
  EXPECT_NE(excluded.reason.find("exclude_namespaces"), std::string::npos);
  // The name is known for skipped pods too (DEL computes it without annotations).
  EXPECT_EQ(excluded.name, "shop.cart-7d9f");
  Environment system = add_env();
  system.args["K8S_POD_NAMESPACE"] = "kube-system";
  auto decision = decide(Settings{}, system, {{"sidecar.istio.io/status", "{}"}}, kAddresses);
  ASSERT_TRUE(decision.ok());
  EXPECT_FALSE(decision->enroll);
}

TEST(Decide, FastPathAnnotation) {
  EXPECT_EQ(decide_ok({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/fast-path", "true"}})
                .params["fast_path"],
            true);
  EXPECT_FALSE(decide_ok({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/fast-path", "false"}})
                   .params.contains("fast_path"));
  EXPECT_EQ(
      decide_error({{"sidecar.istio.io/status", "{}"}, {"meshlane.io/fast-path", "yes"}}).code,
      ErrorCode::kInvalidAnnotation);
}

TEST(Decide, IstioPortAndRangeAnnotationsKeepThePresetsPorts) {
  const Decision decision =
      decide_ok({{"sidecar.istio.io/status", "{}"},
                 {"traffic.sidecar.istio.io/excludeInboundPorts", "8081, 15020"},
                 {"traffic.sidecar.istio.io/excludeOutboundPorts", "5432,6379"},
                 {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.96.0.0/12, fd00:1::/64"},
                 {"traffic.sidecar.istio.io/includeOutboundIPRanges", "*"},
                 {"traffic.sidecar.istio.io/includeInboundPorts", "*"}});
  EXPECT_EQ(decision.params["exclude_inbound_ports"],
            json::parse("[15008,15020,15021,15090,8081]"));
  EXPECT_EQ(decision.params["exclude_outbound_ports"], json::parse("[5432,6379]"));
  EXPECT_EQ(decision.params["exclude_outbound_cidrs"],
            json::parse(R"(["10.96.0.0/12","fd00:1::/64"])"));
  EXPECT_FALSE(decision.params.contains("include_outbound_cidrs"));
  EXPECT_FALSE(decision.params.contains("include_inbound_ports"));
}

TEST(Decide, IstioIncludeRanges) {
  const Decision listed =
      decide_ok({{"sidecar.istio.io/status", "{}"},
                 {"traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8"},
                 {"traffic.sidecar.istio.io/includeInboundPorts", "8080,9090"}});
  EXPECT_EQ(listed.params["include_outbound_cidrs"], json::parse(R"(["10.0.0.0/8"])"));
  EXPECT_EQ(listed.params["include_inbound_ports"], json::parse("[8080,9090]"));
  // Istio: an empty include list redirects nothing in that direction.
  const Decision none = decide_ok({{"sidecar.istio.io/status", "{}"},
                                   {"traffic.sidecar.istio.io/includeOutboundIPRanges", ""},
                                   {"traffic.sidecar.istio.io/includeInboundPorts", ""}});
  EXPECT_EQ(none.params["exclude_outbound_cidrs"], json::parse(R"(["0.0.0.0/0","::/0"])"));
  EXPECT_EQ(none.params["exclude_inbound_cidrs"], json::parse(R"(["0.0.0.0/0","::/0"])"));
}

TEST(Decide, LinkerdSkipPortsWithRangesAndSubnets) {
  const Decision decision = decide_ok({{"linkerd.io/proxy-version", "stable"},
                                       {"config.linkerd.io/skip-inbound-ports", "25,8000-8002"},
                                       {"config.linkerd.io/skip-outbound-ports", "3306"},
                                       {"config.linkerd.io/skip-subnets", "198.18.4.0/24"},
                                       // Istio's keys mean nothing to a Linkerd pod.
                                       {"traffic.sidecar.istio.io/excludeOutboundPorts", "1"}});
  EXPECT_EQ(decision.params["exclude_inbound_ports"], json::parse("[4190,4191,25,8000,8001,8002]"));
  EXPECT_EQ(decision.params["exclude_outbound_ports"], json::parse("[3306]"));
  EXPECT_EQ(decision.params["exclude_outbound_cidrs"], json::parse(R"(["198.18.4.0/24"])"));
}

TEST(Decide, UnusableAnnotationsAreCode101) {
  for (const auto& [key, value] : std::map<std::string, std::string>{
           {"traffic.sidecar.istio.io/excludeInboundPorts", "http"},
           {"traffic.sidecar.istio.io/excludeOutboundPorts", "0"},
           {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/33"},
           {"meshlane.io/enabled", "maybe"}}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(decide_error({{"sidecar.istio.io/status", "{}"}, {key, value}}).code,
              ErrorCode::kInvalidAnnotation);
  }
  EXPECT_EQ(
      decide_error({{"sidecar.istio.io/status", "{}"}, {"linkerd.io/proxy-version", "x"}}).code,
      ErrorCode::kInvalidAnnotation);
}

TEST(Decide, NoAddressOnTheInterfaceIsCode103ForMeshedPodsOnly) {
  auto meshed = decide(Settings{}, add_env(), {{"sidecar.istio.io/status", "{}"}}, {});
  ASSERT_FALSE(meshed.ok());
  EXPECT_EQ(meshed.error().code, ErrorCode::kNoPodAddress);
  auto plain = decide(Settings{}, add_env(), {}, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->enroll);
}

TEST(PortList, RangesDuplicatesAndLimits) {
  EXPECT_EQ(parse_port_list(" 80 ,443, 80,1-3").value(), (std::vector<int>{80, 443, 1, 2, 3}));
  EXPECT_TRUE(parse_port_list("").value().empty());
  EXPECT_FALSE(parse_port_list("3-1").ok());
  EXPECT_FALSE(parse_port_list("65536").ok());
  EXPECT_FALSE(parse_port_list("1-2000").ok());  // more than kMaxAnnotationPorts
}

TEST(PodAnnotations, ReadsTheCapabilityAndRejectsNonStrings) {
  auto annotations = pod_annotations(
      json::parse(R"({"io.kubernetes.cri.pod-annotations":{"a":"1"},"portMappings":[]})"));
  ASSERT_TRUE(annotations.ok());
  EXPECT_EQ(annotations->at("a"), "1");
  EXPECT_TRUE(pod_annotations(json::object()).value().empty());
  EXPECT_FALSE(
      pod_annotations(json::parse(R"({"io.kubernetes.cri.pod-annotations":{"a":1}})")).ok());
}

}  // namespace
}  // namespace meshlane::cni
