#include "cni/register.hpp"

#include <utility>

#include "cni/pod.hpp"
#include "control/protocol.hpp"

namespace meshlane::cni {

namespace {

DaemonError unreachable(const Error& error) { return DaemonError{true, "", error.message()}; }

}  // namespace

DaemonResult<Daemon> Daemon::connect(const std::string& socket, std::chrono::milliseconds timeout) {
  auto client = control::Client::connect(socket, timeout);
  if (!client) {
    return unreachable(client.error());
  }
  return Daemon(std::move(client.value()));
}

DaemonResult<nlohmann::json> Daemon::call(const char* method, const nlohmann::json& params) {
  auto response = client_.call(method, params);
  if (!response) {
    return DaemonError{true, "", std::string(method) + ": " + response.error().message()};
  }
  if (response->error) {
    // Busy or unable to read its maps: the same request may work a moment later.
    const auto code = response->error->code;
    const bool transient = code == control::ErrorCode::kTooManyClients ||
                           code == control::ErrorCode::kUnavailable ||
                           code == control::ErrorCode::kIdleTimeout;
    return DaemonError{transient, response->error_code_text,
                       std::string(method) + ": " + response->error->message + " (" +
                           response->error_code_text + ")"};
  }
  if (!response->result) {
    return DaemonError{true, "", std::string(method) + ": the daemon's answer has no result"};
  }
  return std::move(*response->result);
}

DaemonResult<std::string> Daemon::add_workload(const nlohmann::json& params) {
  auto result = call("workload.add", params);
  if (!result) {
    return result.error();
  }
  return result->value("outcome", std::string("added"));
}

DaemonResult<std::optional<nlohmann::json>> Daemon::get_workload(const std::string& name) {
  auto result = call("workload.get", {{"name", name}});
  if (!result) {
    if (result.error().code == "not_found") {
      return std::optional<nlohmann::json>();
    }
    return result.error();
  }
  return std::optional<nlohmann::json>(std::move(result.value()));
}

bool created_by_cni(const nlohmann::json& workload, std::string* container_id) {
  const nlohmann::json* labels = nullptr;
  if (workload.is_object() && workload.contains("spec") && workload["spec"].is_object() &&
      workload["spec"].contains("labels") && workload["spec"]["labels"].is_object()) {
    labels = &workload["spec"]["labels"];
  }
  if (labels == nullptr || labels->value(kLabelManagedBy, nlohmann::json()) != kManagedByValue) {
    return false;
  }
  if (container_id != nullptr) {
    const nlohmann::json id = labels->value(kLabelContainerId, nlohmann::json());
    *container_id = id.is_string() ? id.get<std::string>() : std::string();
  }
  return true;
}

DaemonResult<DelOutcome> Daemon::remove_workload(const std::string& name,
                                                 const std::string& container_id) {
  auto current = get_workload(name);
  if (!current) {
    return current.error();
  }
  if (!current.value()) {
    return DelOutcome::kAbsent;
  }
  // A pod recreated with a new sandbox has the same name: the old sandbox's DEL, which may come
  // after the new one's ADD, must not remove it. Nor may a DEL remove a workload the operator
  // or the config file defined under that name.
  std::string owner;
  if (!created_by_cni(*current.value(), &owner) || owner != label_value(container_id)) {
    return DelOutcome::kNotOurs;
  }
  auto result = call("workload.del", {{"name", name}, {"missing_ok", true}});
  if (!result) {
    return result.error();
  }
  return result->value("outcome", std::string()) == "absent" ? DelOutcome::kAbsent
                                                             : DelOutcome::kDeleted;
}

DaemonResult<std::vector<nlohmann::json>> Daemon::list_workloads() {
  auto result = call("workload.list", nlohmann::json::object());
  if (!result) {
    return result.error();
  }
  const nlohmann::json list = result->value("workloads", nlohmann::json::array());
  if (!list.is_array()) {
    return DaemonError{false, "", "workload.list: \"workloads\" is not an array"};
  }
  return std::vector<nlohmann::json>(list.begin(), list.end());
}

DaemonResult<nlohmann::json> Daemon::status() { return call("status", nlohmann::json::object()); }

}  // namespace meshlane::cni
