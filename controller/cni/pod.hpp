// Which pod an invocation is about and what meshlane does with it: its addresses (from the
// previous plugin's result), its identity (CNI_ARGS), its annotations (runtimeConfig), and from
// those the decision to skip it or enroll it as a workload with which settings.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/settings.hpp"
#include "cni/spec.hpp"
#include "common/error.hpp"

namespace meshlane::cni {

// The runtimeConfig key the conflist entry's capability asks the runtime to fill.
inline constexpr const char* kAnnotationsCapability = "io.kubernetes.cri.pod-annotations";

// Labels meshlane-cni puts on the workloads it creates (what DEL, CHECK and GC recognise).
inline constexpr const char* kLabelManagedBy = "meshlane.io/managed-by";
inline constexpr const char* kManagedByValue = "meshlane-cni";
inline constexpr const char* kLabelNamespace = "meshlane.io/k8s-namespace";
inline constexpr const char* kLabelPod = "meshlane.io/k8s-pod";
inline constexpr const char* kLabelContainerId = "meshlane.io/container-id";

// Longest workload name and label value the daemon accepts.
inline constexpr std::size_t kMaxNameLength = 63;

// The pod's addresses on CNI_IFNAME in a 0.4.0 or 1.x result: the "ips" whose "interface"
// index points at the entry of "interfaces" named ifname inside the sandbox (the host side of
// a veth or a bridge has no "sandbox"). When the result lists no interfaces at all, every IP
// counts. Prefix lengths are dropped ("198.18.0.5/24" -> "198.18.0.5"). Error when "ips" or
// "interfaces" are malformed.
Result<std::vector<std::string>> pod_addresses(const nlohmann::json& prev_result,
                                               std::string_view ifname);

struct PodIdentity {
  std::string k8s_namespace;  // K8S_POD_NAMESPACE, "" when not run by a kubelet
  std::string pod_name;       // K8S_POD_NAME
  std::string container_id;   // CNI_CONTAINERID (the sandbox)
};
PodIdentity pod_identity(const Environment& env);

// The workload name of a pod: "<namespace>.<pod>" (a namespace has no '.'; a pod name may),
// or "cni-<container id>" without Kubernetes names. Characters outside [A-Za-z0-9_.-] become
// '_'; a name longer than 63, or one that had to be changed, keeps 54 characters and gets
// "-" and 8 hex digits of a hash of the original, so that distinct pods keep distinct names.
// Deterministic: every ADD, CHECK and DEL of the pod computes the same name.
std::string workload_name(const PodIdentity& pod);

// A label value (0..63 of [A-Za-z0-9_.-]) made the same way; container ids (64 hex digits)
// keep their first 63 characters, which is what GC compares.
std::string label_value(std::string_view text);

// The pod's annotations from runtimeConfig (empty when the runtime passed none). Error when
// the capability's value is not an object of strings.
Result<std::map<std::string, std::string>> pod_annotations(const nlohmann::json& runtime_config);

enum class Mesh { kIstio, kLinkerd };

struct Decision {
  bool enroll = false;
  std::string reason;  // why skipped, or which mesh it was recognised by (for the log)
  std::optional<Mesh> mesh;
  std::string name;
  nlohmann::json params;  // workload.add params when enroll
};

// Decides from the namespace, the opt-out and the mesh annotations, then builds the
// workload.add request (the same shape as `meshlanectl workload add`). Error (code 101) when an
// annotation meshlane reads has a value it cannot use: enrolling the pod without honouring an
// exclusion could intercept traffic the pod's owner kept out of the mesh.
Result<Decision, CniError> decide(const Settings& settings, const Environment& env,
                                  const std::map<std::string, std::string>& annotations,
                                  const std::vector<std::string>& addresses);

// "80, 443,8000-8010" -> ports (ranges as in Linkerd's skip-*-ports). Error on anything else,
// on port 0, or beyond kMaxAnnotationPorts.
inline constexpr std::size_t kMaxAnnotationPorts = 1024;
Result<std::vector<int>> parse_port_list(std::string_view text);
// "10.0.0.0/8, fd00::/8" -> prefixes, checked by the daemon (it rejects a bad one by name).
std::vector<std::string> split_list(std::string_view text);

}  // namespace meshlane::cni
