// meshlane-cni's side of the control socket: one short-lived connection per invocation, each
// exchange bounded by the plugin's timeout (timeout_ms, 2 s by default) so that a stuck daemon
// never holds up a pod's sandbox for long.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "control/client.hpp"

namespace meshlane::cni {

// Why a call did not succeed: the daemon could not be reached (or broke off the exchange, or
// said it was busy) and a retry may work, or it answered with an error about the request.
struct DaemonError {
  bool unreachable = false;
  std::string code;  // the protocol's error code when the daemon answered, "" otherwise
  std::string message;
};

template <typename T>
using DaemonResult = Result<T, DaemonError>;

enum class DelOutcome {
  kDeleted,
  kAbsent,   // no such workload: DEL is idempotent
  kNotOurs,  // a workload of that name that another sandbox (or the operator) owns: left alone
};

class Daemon {
 public:
  static DaemonResult<Daemon> connect(const std::string& socket, std::chrono::milliseconds timeout);

  // workload.add; the answer's "outcome" ("added", "unchanged", "replaced").
  DaemonResult<std::string> add_workload(const nlohmann::json& params);
  // workload.get; nullopt when there is no such workload.
  DaemonResult<std::optional<nlohmann::json>> get_workload(const std::string& name);
  // Deletes the workload if meshlane-cni created it for this container (its labels say so);
  // absent and foreign workloads are left alone.
  DaemonResult<DelOutcome> remove_workload(const std::string& name,
                                           const std::string& container_id);
  // workload.list's "workloads".
  DaemonResult<std::vector<nlohmann::json>> list_workloads();
  // status: whether the daemon answers at all.
  DaemonResult<nlohmann::json> status();

 private:
  explicit Daemon(control::Client client) : client_(std::move(client)) {}
  DaemonResult<nlohmann::json> call(const char* method, const nlohmann::json& params);

  control::Client client_;
};

// True when `workload` (as workload.get/list returns it) was created by meshlane-cni; then
// `container_id` (when not null) is set to its container-id label.
bool created_by_cni(const nlohmann::json& workload, std::string* container_id = nullptr);

}  // namespace meshlane::cni
