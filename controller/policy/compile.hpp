// Compiles L4 policies, for the workloads applied right now, into the entries of one
// ml_policy_v1 trie (see ml_policy_key in bpf/include/meshlane/shared.h): identities for
// workloads and rule CIDRs, and per (source, destination) pair the ports whose verdict differs
// from the pair's default. Pure: no kernel access, so it is unit tested against a reference
// evaluator of the rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "meshlane/shared.h"
#include "policy/policy.hpp"

namespace meshlane::policy {

// A workload as policies see it: its settings (name, labels, addresses) and its namespace.
struct PolicyWorkload {
  WorkloadConfig config;
  std::uint64_t netns_cookie = 0;
};

struct CompiledPolicy {
  std::vector<std::pair<ml_policy_key, ml_policy_value>> entries;
  std::size_t identities = 0;  // workloads + rule CIDRs (the world, 0, not counted)
  std::size_t pairs = 0;       // (source, destination) pairs some rule applies to
  std::vector<std::string> unmatched_policies;  // policies that select no workload now
  // Every rule, as "POLICY ingress[i] deny": entry id - 1 is the rule whose id is in
  // ml_policy_value.rule and in denied events (ML_DENY_RULE_MASK ids at most).
  std::vector<std::string> rules;
};

// Fails only when the result would not fit one trie (ML_POLICY_MAX_ENTRIES).
Result<CompiledPolicy> compile_policies(const std::vector<Policy>& policies,
                                        const std::vector<PolicyWorkload>& workloads);

// The compiled entries looked up the way the BPF programs do (longest prefix wins), for tests
// and for `policy check`-style diagnostics.
class CompiledPolicyView {
 public:
  explicit CompiledPolicyView(const CompiledPolicy& compiled) : compiled_(compiled) {}

  // A workload's connect (cgroup connect4/6).
  [[nodiscard]] std::uint8_t judge_connect(std::uint64_t netns_cookie,
                                           const std::array<std::uint8_t, 16>& dst,
                                           std::uint16_t port) const;
  // A connection arriving at a pod (tc ingress).
  [[nodiscard]] std::uint8_t judge_inbound(const std::array<std::uint8_t, 16>& src,
                                           const std::array<std::uint8_t, 16>& dst,
                                           std::uint16_t port) const;

 private:
  [[nodiscard]] const ml_policy_value* lookup(const ml_policy_key& key) const;
  [[nodiscard]] std::uint8_t judge(const ml_policy_value* src, const ml_policy_value* dst,
                                   std::uint16_t port) const;

  const CompiledPolicy& compiled_;
};

// One end of a connection for the reference evaluator: a local workload, or just an address.
struct PolicyParty {
  const PolicyWorkload* workload = nullptr;
  std::array<std::uint8_t, 16> address{};
};

// The rules' meaning, evaluated directly (no identities, no tries): deny rules win; a workload
// with ingress (egress) allow rules accepts (makes) only connections one of them allows.
RuleAction evaluate_policies(const std::vector<Policy>& policies,
                             const std::vector<PolicyWorkload>& workloads, const PolicyParty& src,
                             const PolicyParty& dst, std::uint16_t port);

// Splits first..last into the fewest (port, prefix bits) blocks, as the trie stores them.
std::vector<std::pair<std::uint16_t, unsigned>> port_range_prefixes(std::uint16_t first,
                                                                    std::uint16_t last);

}  // namespace meshlane::policy
