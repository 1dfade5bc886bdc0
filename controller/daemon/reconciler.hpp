// Keeps the kernel's workloads and L4 policies in step. Policies name workloads and select them
// by label, and carry interception and acceleration overrides for the workloads they select: a
// workload change recompiles the policies for the new set, a policy change re-applies the
// workloads with the new overrides on top.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/config.hpp"
#include "datapath/workload_maps.hpp"
#include "policy/policy.hpp"
#include "policy/registry.hpp"
#include "workloads/registry.hpp"

namespace meshlane::daemon {

class Reconciler {
 public:
  // Until the first workload apply recompiles it, the policy pinned by an earlier run stays in
  // force, so a restart never opens what the policy closes.
  Reconciler(const Config& config, WorkloadManager& manager,
             std::vector<policy::Policy> saved_policies);
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;
  Reconciler(Reconciler&&) = delete;
  Reconciler& operator=(Reconciler&&) = delete;
  ~Reconciler() = default;

  // Called with a reason after every applied workload change (the listener scan).
  void after_workloads_change(std::function<void(const std::string&)> fn) {
    after_workloads_change_ = std::move(fn);
  }

  [[nodiscard]] workloads::WorkloadRegistry& workloads() { return workloads_; }
  [[nodiscard]] policy::PolicyRegistry& policies() { return policies_; }
  // The rule a policy verdict names (ml_policy_value.rule, a denied event's rule) in the
  // policy this daemon last installed: "POLICY ingress[i] deny"; "" when unknown.
  [[nodiscard]] std::string policy_rule(std::uint32_t id) const;

 private:
  Result<nlohmann::json> install_policy_set(const std::vector<policy::Policy>& set);
  Result<nlohmann::json> apply_policy_set(const std::vector<policy::Policy>& set);
  Status apply_workloads(const std::vector<WorkloadConfig>& desired);

  const Config& config_;
  WorkloadManager& manager_;
  policy::PolicyRegistry policies_;
  workloads::WorkloadRegistry workloads_;
  std::vector<std::string> policy_rules_;  // CompiledPolicy::rules of the policy in force
  bool workloads_ready_ = false;  // the policy registry may install before workloads_ exists
  std::function<void(const std::string&)> after_workloads_change_ = [](const std::string&) {};
};

}  // namespace meshlane::daemon
