// The CNI protocol: the environment, the configuration of the three spec versions, the
// version gates of CHECK/STATUS/GC, error objects and VERSION's answer.

#include "cni/spec.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace meshlane::cni {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    const auto found = vars.find(name);
    return found == vars.end() ? std::nullopt : std::optional<std::string>(found->second);
  };
}

const std::map<std::string, std::string> kAddEnv = {
    {"CNI_COMMAND", "ADD"},
    {"CNI_CONTAINERID", "abc123"},
    {"CNI_NETNS", "/var/run/netns/pod"},
    {"CNI_IFNAME", "eth0"},
    {"CNI_PATH", "/opt/cni/bin"},
    {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"}};

TEST(CniEnvironment, ReadsEveryVariableOfAnAdd) {
  auto env = parse_environment(env_of(kAddEnv));
  ASSERT_TRUE(env.ok()) << env.error().msg;
  EXPECT_EQ(env->command, Command::kAdd);
  EXPECT_EQ(env->container_id, "abc123");
  EXPECT_EQ(env->netns, "/var/run/netns/pod");
  EXPECT_EQ(env->ifname, "eth0");
  EXPECT_EQ(env->args.at("K8S_POD_NAMESPACE"), "default");
  EXPECT_EQ(env->args.at("K8S_POD_NAME"), "web-0");
  EXPECT_EQ(env->args.at("IgnoreUnknown"), "1");
}

TEST(CniEnvironment, MissingOrBadVariablesAreCode4) {
  auto vars = kAddEnv;
  vars.erase("CNI_NETNS");
  auto env = parse_environment(env_of(vars));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().code, ErrorCode::kInvalidEnvironment);
  EXPECT_NE(env.error().details.find("CNI_NETNS"), std::string::npos) << env.error().details;

  vars = kAddEnv;
  vars["CNI_COMMAND"] = "FROB";
  EXPECT_EQ(parse_environment(env_of(vars)).error().code, ErrorCode::kInvalidEnvironment);
  vars.erase("CNI_COMMAND");
  EXPECT_EQ(parse_environment(env_of(vars)).error().code, ErrorCode::kInvalidEnvironment);

  vars = kAddEnv;
  vars["CNI_ARGS"] = "K8S_POD_NAME=a;garbage";
  EXPECT_EQ(parse_environment(env_of(vars)).error().code, ErrorCode::kInvalidEnvironment);
}

TEST(CniEnvironment, DelNeedsNoNetnsAndVersionNeedsOnlyTheCommand) {
  auto vars = kAddEnv;
  vars["CNI_COMMAND"] = "DEL";
  vars.erase("CNI_NETNS");
  EXPECT_TRUE(parse_environment(env_of(vars)).ok());
  EXPECT_TRUE(parse_environment(env_of({{"CNI_COMMAND", "VERSION"}})).ok());
  EXPECT_TRUE(parse_environment(env_of({{"CNI_COMMAND", "STATUS"}})).ok());
  EXPECT_TRUE(parse_environment(env_of({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/x"}})).ok());
  vars.erase("CNI_CONTAINERID");
  EXPECT_EQ(parse_environment(env_of(vars)).error().code, ErrorCode::kInvalidEnvironment);
}

TEST(CniArgs, ToleratesEmptyPairsAndRejectsPairsWithoutEquals) {
  auto args = parse_cni_args("A=1;;B=x=y;");
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->at("A"), "1");
  EXPECT_EQ(args->at("B"), "x=y");
  EXPECT_FALSE(parse_cni_args("=1").ok());
}

// A chained plugin's input as a runtime builds it, in each version's result format.
std::string netconf(const std::string& version) {
  const bool old = version == "0.4.0";
  const std::string ip = old ? R"({"version":"4","address":"198.18.0.5/24","interface":2})"
                             : R"({"address":"198.18.0.5/24","interface":2})";
  return R"({"cniVersion":")" + version + R"(","name":"k8s-pod-network","type":"meshlane-cni",
    "failure_policy":"closed",
    "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"sidecar.istio.io/status":"{}"}},
    "prevResult":{"cniVersion":")" +
         version + R"(","interfaces":[{"name":"cni0"},{"name":"veth1"},
      {"name":"eth0","sandbox":"/var/run/netns/pod"}],"ips":[)" +
         ip + R"(]}})";
}

TEST(CniNetconf, ParsesEachSupportedVersion) {
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    SCOPED_TRACE(version);
    auto conf = parse_netconf(netconf(version), Command::kAdd);
    ASSERT_TRUE(conf.ok()) << conf.error().msg << ": " << conf.error().details;
    EXPECT_EQ(conf->cni_version, version);
    EXPECT_EQ(conf->name, "k8s-pod-network");
    EXPECT_EQ(conf->type, "meshlane-cni");
    ASSERT_TRUE(conf->prev_result.has_value());
    EXPECT_EQ((*conf->prev_result)["ips"][0]["address"], "198.18.0.5/24");
    EXPECT_TRUE(conf->runtime_config.contains("io.kubernetes.cri.pod-annotations"));
    EXPECT_EQ(conf->raw["failure_policy"], "closed");
  }
}

TEST(CniNetconf, UnsupportedVersionsAreCode1) {
  for (const char* version : {"0.3.1", "0.2.0", "2.0.0", "1.0"}) {
    SCOPED_TRACE(version);
    auto conf = parse_netconf(
        R"({"cniVersion":")" + std::string(version) + R"(","name":"n","type":"meshlane-cni"})",
        Command::kAdd);
    ASSERT_FALSE(conf.ok());
    EXPECT_EQ(conf.error().code, ErrorCode::kIncompatibleVersion);
  }
}

TEST(CniNetconf, StatusAndGcNeed110) {
  const std::string v100 = R"({"cniVersion":"1.0.0","name":"n","type":"meshlane-cni"})";
  const std::string v110 = R"({"cniVersion":"1.1.0","name":"n","type":"meshlane-cni"})";
  EXPECT_EQ(parse_netconf(v100, Command::kStatus).error().code, ErrorCode::kIncompatibleVersion);
  EXPECT_EQ(parse_netconf(v100, Command::kGc).error().code, ErrorCode::kIncompatibleVersion);
  EXPECT_TRUE(parse_netconf(v110, Command::kStatus).ok());
  EXPECT_TRUE(parse_netconf(v110, Command::kGc).ok());
  EXPECT_TRUE(
      parse_netconf(R"({"cniVersion":"0.4.0","name":"n","type":"t"})", Command::kCheck).ok());
}

TEST(CniNetconf, DecodingAndConfigErrorsHaveTheirCodes) {
  EXPECT_EQ(parse_netconf("{not json", Command::kAdd).error().code, ErrorCode::kDecodingFailure);
  EXPECT_EQ(parse_netconf("[1,2]", Command::kAdd).error().code, ErrorCode::kDecodingFailure);
  EXPECT_EQ(parse_netconf("", Command::kAdd).error().code, ErrorCode::kDecodingFailure);
  EXPECT_EQ(parse_netconf(R"({"name":"n","type":"t"})", Command::kAdd).error().code,
            ErrorCode::kInvalidNetworkConfig);
  EXPECT_EQ(parse_netconf(R"({"cniVersion":1,"name":"n","type":"t"})", Command::kAdd).error().code,
            ErrorCode::kInvalidNetworkConfig);
  EXPECT_EQ(parse_netconf(R"({"cniVersion":"1.0.0","name":"n","prevResult":[]})", Command::kAdd)
                .error()
                .code,
            ErrorCode::kInvalidNetworkConfig);
  EXPECT_EQ(parse_netconf(R"({"cniVersion":"1.0.0","name":"n","runtimeConfig":"x"})", Command::kAdd)
                .error()
                .code,
            ErrorCode::kInvalidNetworkConfig);
}

TEST(CniNetconf, VersionAcceptsAnEmptyOrAnyVersionedInput) {
  EXPECT_TRUE(parse_netconf("", Command::kVersion).ok());
  auto conf = parse_netconf(R"({"cniVersion":"0.3.1"})", Command::kVersion);
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->cni_version, "0.3.1");
}

TEST(CniOutput, ErrorObjectsCarryCodeMessageAndVersion) {
  const auto json =
      error_json({ErrorCode::kTryAgainLater, "meshlaned is unreachable", "why"}, "1.0.0");
  EXPECT_EQ(json, nlohmann::json::parse(
                      R"({"cniVersion":"1.0.0","code":11,"msg":"meshlaned is unreachable",
                          "details":"why"})"));
  EXPECT_FALSE(error_json({ErrorCode::kIncompatibleVersion, "x", ""}, "").contains("details"));
  EXPECT_EQ(error_json({ErrorCode::kIncompatibleVersion, "x", ""}, "")["cniVersion"], "1.1.0");
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnsupportedField), 2);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnknownContainer), 3);
  EXPECT_EQ(static_cast<int>(ErrorCode::kInvalidEnvironment), 4);
  EXPECT_EQ(static_cast<int>(ErrorCode::kDecodingFailure), 6);
  EXPECT_EQ(static_cast<int>(ErrorCode::kInvalidNetworkConfig), 7);
  EXPECT_EQ(static_cast<int>(ErrorCode::kPluginNotAvailable), 50);
  EXPECT_GE(static_cast<int>(ErrorCode::kDaemonRefused), 100);
}

TEST(CniOutput, VersionListsTheThreeVersions) {
  EXPECT_EQ(version_json("1.0.0"),
            nlohmann::json::parse(
                R"({"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]})"));
  EXPECT_EQ(version_json("")["cniVersion"], "1.1.0");
}

TEST(CniVersions, CompareNumerically) {
  EXPECT_LT(compare_versions("0.4.0", "1.0.0"), 0);
  EXPECT_LT(compare_versions("1.0.0", "1.1.0"), 0);
  EXPECT_EQ(compare_versions("1.1.0", "1.1"), 0);
  EXPECT_GT(compare_versions("1.10.0", "1.9.0"), 0);
}

}  // namespace
}  // namespace meshlane::cni
