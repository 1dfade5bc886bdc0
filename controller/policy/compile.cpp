#include "policy/compile.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "meshlane/policy.h"

namespace meshlane::policy {

namespace {

constexpr std::uint32_t kWorldIdentity = 0;
constexpr std::uint32_t kPortSpace = 65536;

bool address_in(const std::array<std::uint8_t, 16>& address,
                const std::array<std::uint8_t, 16>& net, unsigned prefix_length) {
  for (unsigned bit = 0; bit < prefix_length; ++bit) {
    const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((address[bit / 8] & mask) != (net[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

// What an identity stands for while compiling.
struct Identity {
  std::uint32_t id = kWorldIdentity;
  const PolicyWorkload* workload = nullptr;  // a local workload
  std::optional<Cidr> cidr;                  // a rule CIDR
};

bool identity_matches(const PeerSelector& selector, const Identity& identity) {
  if (identity.workload != nullptr) {
    return selects(selector, identity.workload->config);
  }
  if (identity.cidr && selector.cidr) {
    return selector.cidr->prefix_length <= identity.cidr->prefix_length &&
           address_in(identity.cidr->address, selector.cidr->address, selector.cidr->prefix_length);
  }
  return false;  // the world matches no selector
}

bool peers_match(const std::vector<PeerSelector>& peers, const Identity& identity) {
  return peers.empty() || std::any_of(peers.begin(), peers.end(), [&](const PeerSelector& peer) {
           return identity_matches(peer, identity);
         });
}

bool covers(const PolicyRule& rule, std::uint32_t port) {
  return rule.ports.empty() ||
         std::any_of(rule.ports.begin(), rule.ports.end(), [port](const PortRange& range) {
           return port >= range.first && port <= range.last;
         });
}

// A rule on a pair, from which side it came, and its id in CompiledPolicy::rules.
struct PairRule {
  const PolicyRule* rule = nullptr;
  bool egress = false;
  std::uint16_t id = 0;
};

// A verdict and the rule that gave it (0: none, or more rules than an id holds).
struct RuledVerdict {
  std::uint8_t verdict = ML_POLICY_ALLOW;
  std::uint16_t rule = 0;

  bool operator==(const RuledVerdict&) const = default;
};

struct Isolation {
  bool ingress = false;
  bool egress = false;
};

std::uint8_t isolation_bits(const Isolation& isolation) {
  return static_cast<std::uint8_t>((isolation.ingress ? ML_POLICY_ISOLATED_INGRESS : 0u) |
                                   (isolation.egress ? ML_POLICY_ISOLATED_EGRESS : 0u));
}

// The verdict for one port of a pair: the semantics evaluate_policies() states. The rule is
// the first deny rule that matches, else the first allow rule that matches.
RuledVerdict pair_verdict(const std::vector<PairRule>& rules, std::uint32_t port,
                          bool src_egress_isolated, bool dst_ingress_isolated) {
  bool egress_allowed = !src_egress_isolated;
  bool ingress_allowed = !dst_ingress_isolated;
  std::uint16_t first_allow = 0;
  for (const PairRule& entry : rules) {
    if (!covers(*entry.rule, port)) {
      continue;
    }
    if (entry.rule->action == RuleAction::kDeny) {
      return {ML_POLICY_DENY, entry.id};
    }
    (entry.egress ? egress_allowed : ingress_allowed) = true;
    if (first_allow == 0) {
      first_allow = entry.id;
    }
  }
  if (egress_allowed && ingress_allowed) {
    return {ML_POLICY_ALLOW, first_allow};
  }
  return {ML_POLICY_DENY, 0};
}

void add_rule_entries(std::uint32_t src, std::uint32_t dst, const std::vector<PairRule>& rules,
                      const Isolation& src_isolation, const Isolation& dst_isolation,
                      std::vector<std::pair<ml_policy_key, ml_policy_value>>& out) {
  std::set<std::uint32_t> bounds = {0, kPortSpace};
  for (const PairRule& entry : rules) {
    for (const PortRange& range : entry.rule->ports) {
      bounds.insert(range.first);
      bounds.insert(static_cast<std::uint32_t>(range.last) + 1);
    }
  }
  const std::uint8_t fallback =
      src_isolation.egress || dst_isolation.ingress ? ML_POLICY_DENY : ML_POLICY_ALLOW;
  // Runs of ports whose verdict differs from the default, merged across segments.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> runs;  // [first, last]
  std::vector<RuledVerdict> verdicts;
  for (auto it = bounds.begin(); std::next(it) != bounds.end(); ++it) {
    const std::uint32_t first = *it;
    const std::uint32_t last = *std::next(it) - 1;
    const RuledVerdict verdict =
        pair_verdict(rules, first, src_isolation.egress, dst_isolation.ingress);
    // The default needs no entry, except where a deny rule matched: its entry names the rule
    // for the denied event (otherwise the event could only say "denied by default").
    if (verdict.verdict == fallback && !(verdict.verdict == ML_POLICY_DENY && verdict.rule != 0)) {
      continue;
    }
    if (!runs.empty() && runs.back().second + 1 == first && verdicts.back() == verdict) {
      runs.back().second = last;
    } else {
      runs.emplace_back(first, last);
      verdicts.push_back(verdict);
    }
  }
  for (std::size_t i = 0; i < runs.size(); ++i) {
    for (const auto& [port, bits] :
         port_range_prefixes(static_cast<std::uint16_t>(runs[i].first),
                             static_cast<std::uint16_t>(runs[i].second))) {
      ml_policy_key key{};
      ml_policy_rule_key(&key, src, dst, port, bits);
      ml_policy_value value{};
      value.verdict = verdicts[i].verdict;
      value.rule = verdicts[i].rule;
      out.emplace_back(key, value);
    }
  }
}

bool peer_matches_party(const PeerSelector& selector, const PolicyParty& party) {
  if (party.workload != nullptr) {
    return selects(selector, party.workload->config);
  }
  return selector.cidr &&
         address_in(party.address, selector.cidr->address, selector.cidr->prefix_length);
}

bool rule_peers_match_party(const PolicyRule& rule, const PolicyParty& party) {
  return rule.peers.empty() ||
         std::any_of(rule.peers.begin(), rule.peers.end(),
                     [&](const PeerSelector& peer) { return peer_matches_party(peer, party); });
}

}  // namespace

std::vector<std::pair<std::uint16_t, unsigned>> port_range_prefixes(std::uint16_t first,
                                                                    std::uint16_t last) {
  std::vector<std::pair<std::uint16_t, unsigned>> blocks;
  std::uint32_t start = first;
  const std::uint32_t end = static_cast<std::uint32_t>(last) + 1;
  while (start < end) {
    // The largest aligned block at start that does not pass the end.
    unsigned size_bits = 16;
    while (size_bits > 0 &&
           ((start & ((1u << size_bits) - 1)) != 0 || start + (1u << size_bits) > end)) {
      --size_bits;
    }
    blocks.emplace_back(static_cast<std::uint16_t>(start), 16 - size_bits);
    start += 1u << size_bits;
  }
  return blocks;
}

Result<CompiledPolicy> compile_policies(const std::vector<Policy>& policies,
                                        const std::vector<PolicyWorkload>& workloads) {
  CompiledPolicy compiled;
  if (policies.empty()) {
    return compiled;  // nothing to enforce: the programs skip the policy lookups altogether
  }
  std::vector<Identity> identities;  // index = id - 1
  for (const PolicyWorkload& workload : workloads) {
    identities.push_back({static_cast<std::uint32_t>(identities.size() + 1), &workload, {}});
  }
  std::set<std::pair<unsigned, std::array<std::uint8_t, 16>>> cidrs_seen;
  for (const PolicyWorkload& workload : workloads) {
    for (const IpAddress& ip : workload.config.ips) {
      cidrs_seen.insert({128, ip.bytes});  // a rule CIDR equal to a pod address is that pod
    }
  }
  for (const Policy& policy : policies) {
    for (const auto* rules : {&policy.ingress, &policy.egress}) {
      for (const PolicyRule& rule : *rules) {
        for (const PeerSelector& peer : rule.peers) {
          if (peer.cidr &&
              cidrs_seen.insert({peer.cidr->prefix_length, peer.cidr->address}).second) {
            identities.push_back(
                {static_cast<std::uint32_t>(identities.size() + 1), nullptr, peer.cidr});
          }
        }
      }
    }
  }
  compiled.identities = identities.size();
  const Identity world{};

  // Every rule's id (1-based, in policy order; 0 past what ml_policy_value.rule holds).
  std::map<const PolicyRule*, std::uint16_t> rule_ids;
  for (const Policy& policy : policies) {
    for (const auto& [direction, rules] :
         {std::pair{"ingress", &policy.ingress}, std::pair{"egress", &policy.egress}}) {
      for (std::size_t i = 0; i < rules->size(); ++i) {
        const PolicyRule& rule = rules->at(i);
        compiled.rules.push_back(policy.name + " " + direction + "[" + std::to_string(i) + "] " +
                                 (rule.action == RuleAction::kDeny ? "deny" : "allow"));
        rule_ids[&rule] = compiled.rules.size() <= ML_DENY_RULE_MASK
                              ? static_cast<std::uint16_t>(compiled.rules.size())
                              : 0;
      }
    }
  }

  // Which workloads each policy applies to, and who is isolated.
  std::map<std::uint32_t, Isolation> isolation;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<PairRule>> pairs;
  for (const Policy& policy : policies) {
    bool matched = false;
    for (const Identity& target : identities) {
      if (target.workload == nullptr || !selects(policy.target, target.workload->config)) {
        continue;
      }
      matched = true;
      for (const PolicyRule& rule : policy.ingress) {
        isolation[target.id].ingress |= rule.action == RuleAction::kAllow;
        if (peers_match(rule.peers, world)) {
          pairs[{world.id, target.id}].push_back({&rule, false, rule_ids[&rule]});
        }
        for (const Identity& source : identities) {
          if (peers_match(rule.peers, source)) {
            pairs[{source.id, target.id}].push_back({&rule, false, rule_ids[&rule]});
          }
        }
      }
      for (const PolicyRule& rule : policy.egress) {
        isolation[target.id].egress |= rule.action == RuleAction::kAllow;
        if (peers_match(rule.peers, world)) {
          pairs[{target.id, world.id}].push_back({&rule, true, rule_ids[&rule]});
        }
        for (const Identity& destination : identities) {
          if (peers_match(rule.peers, destination)) {
            pairs[{target.id, destination.id}].push_back({&rule, true, rule_ids[&rule]});
          }
        }
      }
    }
    if (!matched) {
      compiled.unmatched_policies.push_back(policy.name);
    }
  }
  compiled.pairs = pairs.size();

  auto& entries = compiled.entries;
  for (const Identity& identity : identities) {
    ml_policy_value value{};
    value.identity = identity.id;
    value.isolation = isolation_bits(isolation[identity.id]);
    ml_policy_key key{};
    if (identity.workload != nullptr) {
      ml_policy_netns_key(&key, identity.workload->netns_cookie);
      entries.emplace_back(key, value);
      for (const IpAddress& ip : identity.workload->config.ips) {
        __u32 words[4];
        std::memcpy(words, ip.bytes.data(), sizeof words);
        ml_policy_ip_key(&key, words, 128);
        entries.emplace_back(key, value);
      }
    } else {
      __u32 words[4];
      std::memcpy(words, identity.cidr->address.data(), sizeof words);
      ml_policy_ip_key(&key, words, identity.cidr->prefix_length);
      entries.emplace_back(key, value);
    }
  }
  for (const auto& [pair, rules] : pairs) {
    add_rule_entries(pair.first, pair.second, rules, isolation[pair.first], isolation[pair.second],
                     entries);
  }
  if (entries.size() > ML_POLICY_MAX_ENTRIES) {
    return make_error(E2BIG, "the compiled policy needs " + std::to_string(entries.size()) +
                                 " kernel entries, more than the " +
                                 std::to_string(ML_POLICY_MAX_ENTRIES) +
                                 " one policy map holds: use fewer distinct ports or CIDRs per "
                                 "workload pair, or port ranges");
  }
  return compiled;
}

const ml_policy_value* CompiledPolicyView::lookup(const ml_policy_key& key) const {
  const ml_policy_value* best = nullptr;
  std::uint32_t best_length = 0;
  for (const auto& [entry, value] : compiled_.entries) {
    if (entry.kind != key.kind || entry.prefixlen > key.prefixlen ||
        (best != nullptr && entry.prefixlen <= best_length)) {
      continue;
    }
    std::array<std::uint8_t, 16> a{};
    std::array<std::uint8_t, 16> b{};
    std::memcpy(a.data(), entry.data, a.size());
    std::memcpy(b.data(), key.data, b.size());
    if (address_in(b, a, entry.prefixlen - ML_POLICY_KIND_BITS)) {
      best = &value;
      best_length = entry.prefixlen;
    }
  }
  return best;
}

std::uint8_t CompiledPolicyView::judge(const ml_policy_value* src, const ml_policy_value* dst,
                                       std::uint16_t port) const {
  ml_policy_key key{};
  ml_policy_rule_key(&key, src != nullptr ? src->identity : 0, dst != nullptr ? dst->identity : 0,
                     port, 16);
  return ml_policy_decide(lookup(key), src != nullptr ? src->isolation : 0,
                          dst != nullptr ? dst->isolation : 0);
}

std::uint8_t CompiledPolicyView::judge_connect(std::uint64_t netns_cookie,
                                               const std::array<std::uint8_t, 16>& dst,
                                               std::uint16_t port) const {
  ml_policy_key key{};
  ml_policy_netns_key(&key, netns_cookie);
  const ml_policy_value* src_value = lookup(key);
  __u32 words[4];
  std::memcpy(words, dst.data(), sizeof words);
  ml_policy_ip_key(&key, words, 128);
  return judge(src_value, lookup(key), port);
}

std::uint8_t CompiledPolicyView::judge_inbound(const std::array<std::uint8_t, 16>& src,
                                               const std::array<std::uint8_t, 16>& dst,
                                               std::uint16_t port) const {
  ml_policy_key key{};
  __u32 words[4];
  std::memcpy(words, src.data(), sizeof words);
  ml_policy_ip_key(&key, words, 128);
  const ml_policy_value* src_value = lookup(key);
  std::memcpy(words, dst.data(), sizeof words);
  ml_policy_ip_key(&key, words, 128);
  return judge(src_value, lookup(key), port);
}

RuleAction evaluate_policies(const std::vector<Policy>& policies,
                             const std::vector<PolicyWorkload>& /*workloads*/,
                             const PolicyParty& src, const PolicyParty& dst, std::uint16_t port) {
  bool src_isolated = false;
  bool dst_isolated = false;
  bool egress_allowed = false;
  bool ingress_allowed = false;
  for (const Policy& policy : policies) {
    if (src.workload != nullptr && selects(policy.target, src.workload->config)) {
      for (const PolicyRule& rule : policy.egress) {
        src_isolated |= rule.action == RuleAction::kAllow;
        if (covers(rule, port) && rule_peers_match_party(rule, dst)) {
          if (rule.action == RuleAction::kDeny) {
            return RuleAction::kDeny;
          }
          egress_allowed = true;
        }
      }
    }
    if (dst.workload != nullptr && selects(policy.target, dst.workload->config)) {
      for (const PolicyRule& rule : policy.ingress) {
        dst_isolated |= rule.action == RuleAction::kAllow;
        if (covers(rule, port) && rule_peers_match_party(rule, src)) {
          if (rule.action == RuleAction::kDeny) {
            return RuleAction::kDeny;
          }
          ingress_allowed = true;
        }
      }
    }
  }
  if ((src_isolated && !egress_allowed) || (dst_isolated && !ingress_allowed)) {
    return RuleAction::kDeny;
  }
  return RuleAction::kAllow;
}

}  // namespace meshlane::policy
