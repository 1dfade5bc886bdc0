// The CNI protocol as a plugin sees it (https://github.com/containernetworking/cni, SPEC.md,
// versions 0.4.0, 1.0.0 and 1.1.0): the CNI_* environment, the network configuration on stdin,
// and the error and version JSON printed on stdout. Pure: no I/O, so every rule is unit-tested.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace meshlane::cni {

inline constexpr std::array<std::string_view, 3> kSupportedVersions = {"0.4.0", "1.0.0", "1.1.0"};
// Answered when the input names no version (VERSION without stdin, errors before decoding).
inline constexpr std::string_view kLatestVersion = "1.1.0";

// The spec's well-known error codes (SPEC.md "Error"), and ours from 100 on.
enum class ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodingFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  kPluginNotAvailable = 50,  // STATUS: no new ADD can succeed
  // Plugin-specific.
  kDaemonRefused = 100,      // meshlaned answered the request with an error
  kInvalidAnnotation = 101,  // a pod annotation meshlane reads has a value it cannot use
  kNotRegistered = 102,      // CHECK: the pod should be a workload and is not (or differs)
  kNoPodAddress = 103,       // prevResult holds no address on CNI_IFNAME
  kInternal = 999,           // a bug: libcni's "internal" code
};

// What a plugin prints (with a non-zero exit status) when a command fails.
struct CniError {
  ErrorCode code = ErrorCode::kInvalidNetworkConfig;
  std::string msg;      // short: what failed
  std::string details;  // on what, and what to do
};

// {"cniVersion":..., "code":..., "msg":..., "details":...}; details is left out when empty.
nlohmann::json error_json(const CniError& error, std::string_view cni_version);

// The answer to VERSION: {"cniVersion": cni_version, "supportedVersions": [...]}.
nlohmann::json version_json(std::string_view cni_version);

bool is_supported_version(std::string_view version);

// -1, 0, 1 as a <, ==, > b for dotted versions ("0.4.0" < "1.0.0" < "1.1.0"). Missing parts
// count as 0; a part that is not a number compares as 0 (the version was rejected before).
int compare_versions(std::string_view a, std::string_view b);

enum class Command { kAdd, kDel, kCheck, kVersion, kStatus, kGc };
std::optional<Command> command_from_string(std::string_view text);
const char* to_string(Command command);

// The CNI_* variables of one invocation. Which ones are required depends on the command:
// ADD and CHECK need CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME; DEL needs CNI_CONTAINERID and
// CNI_IFNAME (the namespace may be gone already); VERSION, STATUS and GC need only CNI_COMMAND.
struct Environment {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;
  std::string ifname;
  std::string path;                         // CNI_PATH, unused: meshlane-cni delegates nothing
  std::map<std::string, std::string> args;  // CNI_ARGS "K=V;K=V"
};

// getenv() for production, a map for the tests.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// Error code 4 (invalid environment variables) for a missing required variable, an unknown
// CNI_COMMAND or a CNI_ARGS pair without '='.
Result<Environment, CniError> parse_environment(const EnvLookup& lookup);

// "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p" -> map. Error text names the bad pair.
Result<std::map<std::string, std::string>> parse_cni_args(std::string_view text);

// The network configuration on stdin: the keys every plugin understands, plus the whole object
// for the plugin's own keys. For VERSION an empty stdin is accepted (cniVersion is then "").
struct NetConf {
  std::string cni_version;
  std::string name;
  std::string type;
  std::optional<nlohmann::json> prev_result;  // ADD and CHECK of a chained plugin
  nlohmann::json runtime_config = nlohmann::json::object();
  nlohmann::json raw = nlohmann::json::object();  // everything, as decoded
};

// Code 6 when stdin is not a JSON object; code 7 when a standard key has the wrong type or a
// required one is missing; code 1 when cniVersion is not one of kSupportedVersions or does not
// allow the command (CHECK needs 0.4.0, STATUS and GC need 1.1.0).
Result<NetConf, CniError> parse_netconf(std::string_view text, Command command);

}  // namespace meshlane::cni
