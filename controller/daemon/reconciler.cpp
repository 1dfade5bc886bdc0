#include "daemon/reconciler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "datapath/policy_map.hpp"
#include "policy/compile.hpp"

namespace meshlane::daemon {

namespace {

// Whether the workloads in force already have exactly these settings.
bool same_workloads(const std::vector<meshlane::WorkloadConfig>& wanted,
                    const std::vector<meshlane::ResolvedWorkload>& applied) {
  if (wanted.size() != applied.size()) {
    return false;
  }
  for (const auto& workload : wanted) {
    const auto it = std::find_if(applied.begin(), applied.end(), [&](const auto& resolved) {
      return resolved.config.name == workload.name;
    });
    if (it == applied.end() || it->config != workload) {
      return false;
    }
  }
  return true;
}

// Compiles `set` for the workloads in force and switches the kernel to it.
meshlane::Result<nlohmann::json> install_policies(
    const std::string& bpffs_dir, const std::vector<meshlane::policy::Policy>& set,
    const std::vector<meshlane::ResolvedWorkload>& applied, std::vector<std::string>& rules) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<meshlane::policy::PolicyWorkload> workloads;
  workloads.reserve(applied.size());
  for (const auto& workload : applied) {
    workloads.push_back({workload.config, workload.netns_cookie});
  }
  auto compiled = meshlane::policy::compile_policies(set, workloads);
  if (!compiled) {
    return compiled.error();
  }
  auto installed = meshlane::install_policy(bpffs_dir, compiled.value());
  if (!installed) {
    return installed.error();
  }
  const auto total = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  spdlog::info(
      "policy: {} policies, {} identities, {} pairs, {} kernel entries, in force after "
      "{} us",
      set.size(), compiled->identities, compiled->pairs, installed->entries, total.count());
  rules = std::move(compiled->rules);
  for (const std::string& name : compiled->unmatched_policies) {
    spdlog::warn("policy {} selects no workload now", name);
  }
  return nlohmann::json{
      {"policies", set.size()},      {"identities", compiled->identities},
      {"pairs", compiled->pairs},    {"kernel_entries", installed->entries},
      {"install_us", total.count()}, {"unmatched_policies", compiled->unmatched_policies}};
}

}  // namespace

Reconciler::Reconciler(const Config& config, WorkloadManager& manager,
                       std::vector<policy::Policy> saved_policies)
    : config_(config),
      manager_(manager),
      policies_([this](const std::vector<policy::Policy>& set) { return apply_policy_set(set); },
                [this](const std::vector<policy::Policy>& set) {
                  return policy::save_policies(config_.daemon.state_dir, set);
                },
                std::move(saved_policies)),
      workloads_(
          [this](const std::vector<WorkloadConfig>& desired) { return apply_workloads(desired); },
          [this](const std::vector<WorkloadConfig>& live) {
            return workloads::save_live_workloads(config_.daemon.state_dir, live);
          }),
      workloads_ready_(true) {}

Result<nlohmann::json> Reconciler::install_policy_set(const std::vector<policy::Policy>& set) {
  std::vector<std::string> rules;
  auto report = install_policies(config_.daemon.bpffs_dir, set, manager_.applied(), rules);
  if (report) {
    policy_rules_ = std::move(rules);
  }
  return report;
}

std::string Reconciler::policy_rule(std::uint32_t id) const {
  return id == 0 || id > policy_rules_.size() ? std::string() : policy_rules_[id - 1];
}

Result<nlohmann::json> Reconciler::apply_policy_set(const std::vector<policy::Policy>& set) {
  if (workloads_ready_) {
    const auto effective = policy::apply_policy_overrides(workloads_.combined(), set);
    if (!same_workloads(effective, manager_.applied())) {
      if (auto status = manager_.apply(effective); !status) {
        return status.error();
      }
    }
  }
  return install_policy_set(set);
}

Status Reconciler::apply_workloads(const std::vector<WorkloadConfig>& desired) {
  const std::vector<policy::Policy> set = policies_.list();
  if (auto status = manager_.apply(policy::apply_policy_overrides(desired, set)); !status) {
    return status;
  }
  // Policies name workloads and select them by label: recompile for the new set.
  auto report = install_policy_set(set);
  if (!report) {
    spdlog::error(
        "policy: cannot recompile for the new workloads (the previous policy stays in force): {}",
        report.error().message());
  }
  after_workloads_change_("workloads changed");
  return Status{};
}

}  // namespace meshlane::daemon
