// Policies as the control socket manages them: applied as a whole set (compiled against the
// workloads in force and switched atomically in the kernel), recompiled when workloads change,
// and kept in <state_dir>/policies.json so that they survive a daemon restart.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "policy/policy.hpp"
#include "workloads/registry.hpp"

namespace meshlane::policy {

inline constexpr const char* kPolicyStateFile = "policies.json";

std::string policy_state_path(const std::string& state_dir);
// The saved policies; none when the file does not exist.
Result<std::vector<Policy>> load_policies(const std::string& state_dir);
Status save_policies(const std::string& state_dir, const std::vector<Policy>& policies);

class PolicyRegistry {
 public:
  // Compiles and installs a complete policy set; returns a report for the caller.
  using InstallFn = std::function<Result<nlohmann::json>(const std::vector<Policy>&)>;
  using PersistFn = std::function<Status(const std::vector<Policy>&)>;

  PolicyRegistry(InstallFn install, PersistFn persist, std::vector<Policy> saved);

  // Adds or replaces the given policies by name (replace_all: they become the whole set).
  // All or nothing: nothing changes unless the whole new set is installed and saved.
  control::ControlResult<nlohmann::json> apply(const std::vector<Policy>& incoming,
                                               bool replace_all);
  control::ControlResult<nlohmann::json> remove(const std::string& name, bool missing_ok);

  [[nodiscard]] const Policy* find(const std::string& name) const;
  [[nodiscard]] std::vector<Policy> list() const;
  // How many policies are in force.
  [[nodiscard]] std::size_t size() const { return policies_.size(); }

 private:
  control::ControlResult<nlohmann::json> commit(std::map<std::string, Policy> next);

  InstallFn install_;
  PersistFn persist_;
  std::map<std::string, Policy> policies_;  // by name
};

}  // namespace meshlane::policy
