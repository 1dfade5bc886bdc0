#include "policy/registry.hpp"

#include <spdlog/spdlog.h>

#include "common/text_file.hpp"

namespace meshlane::policy {

namespace {

std::vector<Policy> values(const std::map<std::string, Policy>& policies) {
  std::vector<Policy> list;
  list.reserve(policies.size());
  for (const auto& [name, policy] : policies) {
    list.push_back(policy);
  }
  return list;
}

}  // namespace

std::string policy_state_path(const std::string& state_dir) {
  return state_dir + "/" + kPolicyStateFile;
}

Result<std::vector<Policy>> load_policies(const std::string& state_dir) {
  const std::string path = policy_state_path(state_dir);
  auto text = read_state_file(path);
  if (!text) {
    return text.error();
  }
  if (!text->has_value()) {
    return std::vector<Policy>{};
  }
  const char* const fix =
      " (fix or remove the file; it holds the policies applied with meshlanectl)";
  const nlohmann::json state = nlohmann::json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded() || !state.is_object() ||
      state.value("v", 0) != workloads::kStateVersion || !state.contains("policies")) {
    return make_error(path + ": not a version " + std::to_string(workloads::kStateVersion) +
                      " policy state file" + fix);
  }
  auto policies = parse_policy_document(nlohmann::json{{"policies", state["policies"]}});
  if (!policies) {
    return make_error(path + ": " + policies.error().context + fix);
  }
  return policies;
}

Status save_policies(const std::string& state_dir, const std::vector<Policy>& policies) {
  nlohmann::json list = nlohmann::json::array();
  for (const Policy& policy : policies) {
    list.push_back(policy_to_json(policy));
  }
  if (Status status = workloads::ensure_state_dir(state_dir); !status) {
    return status;
  }
  return write_file_atomically(
      policy_state_path(state_dir),
      nlohmann::json{{"v", workloads::kStateVersion}, {"policies", list}}.dump(2) + "\n");
}

PolicyRegistry::PolicyRegistry(InstallFn install, PersistFn persist, std::vector<Policy> saved)
    : install_(std::move(install)), persist_(std::move(persist)) {
  for (Policy& policy : saved) {
    std::string name = policy.name;
    policies_[name] = std::move(policy);
  }
}

control::ControlResult<nlohmann::json> PolicyRegistry::commit(std::map<std::string, Policy> next) {
  const std::vector<Policy> list = values(next);
  auto report = install_(list);
  if (!report) {
    return control::ControlError{control::ErrorCode::kApplyFailed,
                                 report.error().message() + "; the policy in force is unchanged"};
  }
  if (Status status = persist_(list); !status) {
    // The kernel has the new set but the disk does not: put the old one back so that a restart
    // cannot bring back something else than what runs now.
    if (auto back = install_(values(policies_)); !back) {
      spdlog::error("policy: could not restore the previous policy: {}", back.error().message());
    }
    return control::ControlError{control::ErrorCode::kApplyFailed,
                                 status.error().message() + "; the previous policy was restored"};
  }
  policies_ = std::move(next);
  return report.value();
}

control::ControlResult<nlohmann::json> PolicyRegistry::apply(const std::vector<Policy>& incoming,
                                                             bool replace_all) {
  std::map<std::string, Policy> next = replace_all ? std::map<std::string, Policy>{} : policies_;
  nlohmann::json outcomes = nlohmann::json::object();
  for (const Policy& policy : incoming) {
    const auto it = policies_.find(policy.name);
    outcomes[policy.name] = it == policies_.end()  ? "added"
                            : it->second == policy ? "unchanged"
                                                   : "replaced";
    next[policy.name] = policy;
  }
  nlohmann::json removed = nlohmann::json::array();
  for (const auto& [name, policy] : policies_) {
    if (next.count(name) == 0) {
      removed.push_back(name);
    }
  }
  if (next.size() > kMaxPolicies) {
    return control::invalid_params("the result would hold " + std::to_string(next.size()) +
                                   " policies, more than " + std::to_string(kMaxPolicies));
  }
  control::ControlResult<nlohmann::json> outcome = commit(std::move(next));
  if (outcome) {
    (*outcome)["outcomes"] = outcomes;
    (*outcome)["removed"] = removed;
  }
  return outcome;
}

control::ControlResult<nlohmann::json> PolicyRegistry::remove(const std::string& name,
                                                              bool missing_ok) {
  if (policies_.count(name) == 0) {
    if (missing_ok) {
      return nlohmann::json{{"name", name}, {"outcome", "absent"}};
    }
    return control::ControlError{control::ErrorCode::kNotFound, "no policy named " + name};
  }
  std::map<std::string, Policy> next = policies_;
  next.erase(name);
  control::ControlResult<nlohmann::json> outcome = commit(std::move(next));
  if (outcome) {
    (*outcome)["name"] = name;
    (*outcome)["outcome"] = "deleted";
  }
  return outcome;
}

const Policy* PolicyRegistry::find(const std::string& name) const {
  const auto it = policies_.find(name);
  return it == policies_.end() ? nullptr : &it->second;
}

std::vector<Policy> PolicyRegistry::list() const { return values(policies_); }

}  // namespace meshlane::policy
