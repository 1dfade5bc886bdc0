#include "cni/settings.hpp"

#include <utility>

#include "config/config.hpp"

namespace meshlane::cni {

namespace {

CniError invalid(const std::string& key, const std::string& what) {
  return CniError{ErrorCode::kInvalidNetworkConfig,
                  "meshlane-cni's \"" + key + "\" is invalid in the network configuration",
                  what + " (docs/cni.md lists the keys)"};
}

}  // namespace

Result<Settings, CniError> parse_settings(const nlohmann::json& netconf) {
  Settings settings;
  settings.control_socket = kDefaultControlSocket;
  if (const auto found = netconf.find("control_socket"); found != netconf.end()) {
    if (!found->is_string() || found->get<std::string>().empty() ||
        found->get<std::string>().front() != '/') {
      return invalid("control_socket",
                     "expected the absolute path of meshlaned's socket, got " + found->dump());
    }
    settings.control_socket = found->get<std::string>();
  }
  if (const auto found = netconf.find("failure_policy"); found != netconf.end()) {
    if (found->is_string() && *found == "open") {
      settings.failure_policy = FailurePolicy::kOpen;
    } else if (found->is_string() && *found == "closed") {
      settings.failure_policy = FailurePolicy::kClosed;
    } else {
      return invalid("failure_policy", R"(expected "open" or "closed", got )" + found->dump());
    }
  }
  if (const auto found = netconf.find("exclude_namespaces"); found != netconf.end()) {
    if (!found->is_array()) {
      return invalid("exclude_namespaces",
                     "expected an array of namespace names, got " + found->dump());
    }
    settings.exclude_namespaces.clear();
    for (const nlohmann::json& item : *found) {
      if (!item.is_string() || item.get<std::string>().empty()) {
        return invalid("exclude_namespaces",
                       "expected namespace names (strings), got " + item.dump());
      }
      settings.exclude_namespaces.push_back(item.get<std::string>());
    }
  }
  if (const auto found = netconf.find("timeout_ms"); found != netconf.end()) {
    if (!found->is_number_integer() || *found < kMinTimeoutMs || *found > kMaxTimeoutMs) {
      return invalid("timeout_ms", "expected an integer " + std::to_string(kMinTimeoutMs) + ".." +
                                       std::to_string(kMaxTimeoutMs) + ", got " + found->dump());
    }
    settings.timeout = std::chrono::milliseconds(found->get<int>());
  }
  if (const auto found = netconf.find("log_file"); found != netconf.end()) {
    if (!found->is_string() ||
        (!found->get<std::string>().empty() && found->get<std::string>().front() != '/')) {
      return invalid("log_file", "expected an absolute path, got " + found->dump());
    }
    settings.log_file = found->get<std::string>();
  }
  return settings;
}

}  // namespace meshlane::cni
