// meshlane-cni's own keys in its conflist entry (docs/cni.md):
//
//   {"type": "meshlane-cni", "control_socket": "/run/meshlane/meshlane.sock",
//    "failure_policy": "open", "exclude_namespaces": ["kube-system"], "timeout_ms": 2000,
//    "log_file": "/var/log/meshlane-cni.log",
//    "capabilities": {"io.kubernetes.cri.pod-annotations": true}}
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/spec.hpp"
#include "common/error.hpp"

namespace meshlane::cni {

// What to do when a pod that should be a workload cannot be registered (meshlaned down,
// refusing, an annotation it cannot use). kOpen: the pod starts without meshlane (its mesh's
// own init container still installs iptables; meshlane only accelerates). kClosed: the ADD
// fails so that the kubelet retries (meshlane replaces istio-init/linkerd-init, and a pod
// without it would bypass its sidecar).
enum class FailurePolicy { kOpen, kClosed };

struct Settings {
  std::string control_socket;  // default kDefaultControlSocket
  FailurePolicy failure_policy = FailurePolicy::kOpen;
  std::vector<std::string> exclude_namespaces = {"kube-system"};
  std::chrono::milliseconds timeout{2000};
  std::string log_file;  // "" = stderr only
};

inline constexpr int kMinTimeoutMs = 100;
inline constexpr int kMaxTimeoutMs = 60000;

// Reads the keys above from the whole network configuration. Code 7 naming the key when one
// has the wrong type or value. Unknown keys are ignored: the conflist entry also holds the
// standard ones (cniVersion, name, type, capabilities, runtimeConfig, prevResult).
Result<Settings, CniError> parse_settings(const nlohmann::json& netconf);

}  // namespace meshlane::cni
