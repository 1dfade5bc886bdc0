// L4 authorization policies as operators write them (docs/policy.md): named policies that
// select workloads and carry ingress and egress allow/deny rules over workloads, labels, CIDRs
// and ports. Parsing and printing only; policy/compile.hpp turns them into the kernel's form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/config.hpp"

namespace meshlane::policy {

// Which workloads a policy applies to, or which peers a rule matches: exactly one of a workload
// name, a label selector (every listed label must match), or a CIDR (peers only).
struct PeerSelector {
  std::optional<std::string> workload;
  std::map<std::string, std::string> labels;
  std::optional<Cidr> cidr;

  bool operator==(const PeerSelector&) const = default;
};

enum class RuleAction { kAllow, kDeny };
const char* to_string(RuleAction action);

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;

  bool operator==(const PortRange&) const = default;
};

struct PolicyRule {
  RuleAction action = RuleAction::kAllow;
  std::vector<PeerSelector> peers;  // empty: any peer
  std::vector<PortRange> ports;     // empty: every port

  bool operator==(const PolicyRule&) const = default;
};

// Settings a policy gives the workloads it selects, replacing theirs key by key: what is
// intercepted (the [[workload]] port and CIDR lists), whether their sockets are spliced and
// whether they take the L4 fast path.
struct PolicyOverrides {
  std::optional<std::vector<std::uint16_t>> include_outbound_ports;
  std::optional<std::vector<std::uint16_t>> exclude_outbound_ports;
  std::optional<std::vector<std::uint16_t>> include_inbound_ports;
  std::optional<std::vector<std::uint16_t>> exclude_inbound_ports;
  std::optional<std::vector<Cidr>> include_outbound_cidrs;
  std::optional<std::vector<Cidr>> exclude_outbound_cidrs;
  std::optional<std::vector<Cidr>> exclude_inbound_cidrs;
  std::optional<bool> acceleration;
  std::optional<std::vector<std::uint16_t>> exclude_acceleration_ports;
  // "fast_path": {"enabled": ..., "exclude_ports": [...]}: fast_path, fast_path_exclude_ports.
  std::optional<bool> fast_path;
  std::optional<std::vector<std::uint16_t>> fast_path_exclude_ports;

  bool operator==(const PolicyOverrides&) const = default;
};

struct Policy {
  std::string name;
  PeerSelector target;              // a workload name or labels (never a CIDR)
  std::vector<PolicyRule> ingress;  // connections to the target; peers are sources
  std::vector<PolicyRule> egress;   // connections from the target; peers are destinations
  PolicyOverrides overrides;

  bool operator==(const Policy&) const = default;
};

// Limits that keep one request and one compiled policy bounded.
inline constexpr std::size_t kMaxPolicies = 4096;
inline constexpr std::size_t kMaxRulesPerPolicy = 4096;

// Parses a policy document: {"policies": [<policy>...]} or one <policy> object. Errors name the
// JSON path of the offending member ("policies[2].ingress[0].ports[1]").
Result<std::vector<Policy>> parse_policy_document(const nlohmann::json& document);

// One policy, from the form policy_to_json() writes.
Result<Policy> parse_policy(const nlohmann::json& object, const std::string& path);

nlohmann::json policy_to_json(const Policy& policy);

// The workloads as policies make them: each policy's overrides replace the settings of the
// workloads it selects, policies taken in name order (a later name wins on the same key).
std::vector<WorkloadConfig> apply_policy_overrides(std::vector<WorkloadConfig> workloads,
                                                   const std::vector<Policy>& policies);

// Whether a workload is selected by `selector` (by name or labels; a CIDR selects any workload
// with an address in it).
bool selects(const PeerSelector& selector, const WorkloadConfig& workload);

}  // namespace meshlane::policy
