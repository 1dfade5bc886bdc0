// Policy parsing, and the compiler checked against the reference evaluator: whatever the
// rules, the trie the kernel looks up must give the verdict the rules mean.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "policy/compile.hpp"
#include "policy/policy.hpp"

namespace meshlane::policy {
namespace {

using nlohmann::json;

IpAddress ip(const char* text) { return *parse_ip_address(text); }

PolicyWorkload workload(const std::string& name, std::uint64_t cookie, std::vector<IpAddress> ips,
                        std::map<std::string, std::string> labels) {
  PolicyWorkload w;
  w.config.name = name;
  w.config.ips = std::move(ips);
  w.config.labels = std::move(labels);
  w.netns_cookie = cookie;
  return w;
}

std::vector<Policy> parse(const json& document) {
  auto policies = parse_policy_document(document);
  EXPECT_TRUE(policies) << (policies ? "" : policies.error().message());
  return policies ? policies.value() : std::vector<Policy>{};
}

TEST(PolicyParse, ReadsWorkloadLabelCidrSelectorsAndPortRanges) {
  auto policies = parse(json::parse(R"({"policies":[{"name":"reviews-in","workload":"reviews",
      "ingress":[{"action":"allow","from":[{"workload":"productpage"},{"labels":{"app":"web"}},
                 {"cidr":"198.18.0.0/16"}],"ports":[9080,"8000-8100"]}],
      "egress":[{"action":"deny","to":[{"cidr":"fd00::/8"}]}]}]})"));
  ASSERT_EQ(policies.size(), 1u);
  const Policy& p = policies[0];
  EXPECT_EQ(*p.target.workload, "reviews");
  ASSERT_EQ(p.ingress.size(), 1u);
  EXPECT_EQ(p.ingress[0].peers.size(), 3u);
  EXPECT_EQ(p.ingress[0].ports[1].first, 8000);
  EXPECT_EQ(p.ingress[0].ports[1].last, 8100);
  // Host bits are cleared, so the same prefix written two ways is one identity.
  EXPECT_EQ(policy_to_json(p)["ingress"][0]["from"][2]["cidr"], "198.18.0.0/16");
  EXPECT_EQ(p.egress[0].action, RuleAction::kDeny);
  // Printing and reading back gives the same policy.
  auto again = parse_policy(policy_to_json(p), "p");
  ASSERT_TRUE(again);
  EXPECT_EQ(policy_to_json(again.value()), policy_to_json(p));
}

TEST(PolicyParse, ErrorsNameThePath) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {R"({"policies":[{"name":"a","workload":"w","ingress":[{"action":"maybe"}]}]})",
       "policies[0].ingress[0].action"},
      {R"({"policies":[{"name":"a","workload":"w","ingress":[{"action":"allow","ports":[70000]}]}]})",
       "policies[0].ingress[0].ports[0]"},
      {R"({"policies":[{"name":"a","workload":"w","egress":[{"action":"allow","to":[{"cidr":"x"}]}]}]})",
       "policies[0].egress[0].to[0].cidr"},
      {R"({"policies":[{"name":"a","workload":"w","colour":1}]})", "policies[0].colour"},
      {R"({"policies":[{"name":"a"}]})", "exactly one of"},
      {R"({"policies":[{"name":"a","workload":"w"},{"name":"a","workload":"v"}]})",
       "duplicate policy name"},
      {R"({"policies":[{"name":"a","workload":"w","ingress":[{"action":"allow","ports":["9-3"]}]}]})",
       "first-last"},
  };
  for (const auto& [text, expected] : cases) {
    auto result = parse_policy_document(json::parse(text));
    ASSERT_FALSE(result) << text;
    EXPECT_NE(result.error().message().find(expected), std::string::npos)
        << result.error().message();
  }
}

TEST(PortRangePrefixes, CoverExactlyTheRange) {
  for (auto [first, last] : std::vector<std::pair<int, int>>{
           {0, 65535}, {80, 80}, {8000, 8100}, {1, 65535}, {1023, 1025}, {32768, 65535}}) {
    std::vector<bool> covered(65536, false);
    for (auto [port, bits] :
         port_range_prefixes(static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last))) {
      const std::uint32_t size = 1u << (16 - bits);
      ASSERT_EQ(port % size, 0u);
      for (std::uint32_t p = port; p < port + size; ++p) {
        ASSERT_FALSE(covered[p]) << "overlap at " << p;
        covered[p] = true;
      }
    }
    for (int p = 0; p < 65536; ++p) {
      ASSERT_EQ(covered[static_cast<std::size_t>(p)], p >= first && p <= last) << p;
    }
  }
}

class PolicyCompile : public ::testing::Test {
 protected:
  std::vector<PolicyWorkload> workloads = {
      workload("web", 11, {ip("198.18.0.10")}, {{"app", "web"}}),
      workload("reviews", 12, {ip("198.18.0.20"), ip("fd00::20")}, {{"app", "reviews"}}),
      workload("db", 13, {ip("198.18.0.30")}, {{"app", "db"}, {"tier", "data"}}),
  };
  std::array<std::uint8_t, 16> addr(const char* text) { return ip(text).bytes; }
};

TEST_F(PolicyCompile, NoPolicyAllowsEverything) {
  auto compiled = compile_policies({}, workloads);
  ASSERT_TRUE(compiled);
  CompiledPolicyView view(compiled.value());
  EXPECT_EQ(view.judge_connect(11, addr("198.18.0.20"), 9080), ML_POLICY_ALLOW);
  EXPECT_EQ(view.judge_inbound(addr("198.18.9.9"), addr("198.18.0.30"), 5432), ML_POLICY_ALLOW);
}

TEST_F(PolicyCompile, AllowRuleIsolatesTheTargetAndDenyWins) {
  auto policies = parse(json::parse(R"({"policies":[
      {"name":"db-in","selector":{"tier":"data"},
       "ingress":[{"action":"allow","from":[{"workload":"reviews"}],"ports":[5432]},
                  {"action":"deny","from":[{"cidr":"198.18.0.16/28"}]}]},
      {"name":"web-out","workload":"web",
       "egress":[{"action":"deny","to":[{"labels":{"app":"reviews"}}],"ports":["9000-9100"]}]}]})"));
  auto compiled = compile_policies(policies, workloads);
  ASSERT_TRUE(compiled);
  CompiledPolicyView view(compiled.value());
  // reviews (198.18.0.20) is inside the denied /28: deny wins over its allow.
  EXPECT_EQ(view.judge_connect(12, addr("198.18.0.30"), 5432), ML_POLICY_DENY);
  // web may not reach db at all (db accepts only what it allows).
  EXPECT_EQ(view.judge_connect(11, addr("198.18.0.30"), 5432), ML_POLICY_DENY);
  // web -> reviews: denied on 9000-9100 only.
  EXPECT_EQ(view.judge_connect(11, addr("198.18.0.20"), 9080), ML_POLICY_DENY);
  EXPECT_EQ(view.judge_connect(11, addr("fd00::20"), 9100), ML_POLICY_DENY);
  EXPECT_EQ(view.judge_connect(11, addr("198.18.0.20"), 9101), ML_POLICY_ALLOW);
  // Off-node traffic into db.
  EXPECT_EQ(view.judge_inbound(addr("198.19.1.1"), addr("198.18.0.30"), 5432), ML_POLICY_DENY);
  EXPECT_TRUE(compiled->unmatched_policies.empty());
}

// Each rule entry names the rule that gave its verdict (ml_policy_value.rule, what a denied
// event carries): ids count every rule in policy order, from 1.
TEST_F(PolicyCompile, RuleEntriesNameTheirRule) {
  auto policies = parse(json::parse(R"({"policies":[
      {"name":"db-in","selector":{"tier":"data"},
       "ingress":[{"action":"allow","from":[{"workload":"web"}],"ports":[5432]},
                  {"action":"deny","from":[{"cidr":"198.18.0.16/28"}]}]},
      {"name":"web-out","workload":"web",
       "egress":[{"action":"deny","to":[{"labels":{"app":"reviews"}}],"ports":["9000-9100"]}]}]})"));
  auto compiled = compile_policies(policies, workloads);
  ASSERT_TRUE(compiled);
  EXPECT_EQ(compiled->rules,
            (std::vector<std::string>{"db-in ingress[0] allow", "db-in ingress[1] deny",
                                      "web-out egress[0] deny"}));
  std::set<std::uint16_t> deny_rules;
  std::set<std::uint16_t> allow_rules;
  for (const auto& [key, value] : compiled->entries) {
    if (key.kind == ML_POLICY_KIND_RULE) {
      (value.verdict == ML_POLICY_DENY ? deny_rules : allow_rules).insert(value.rule);
    }
  }
  // web -> reviews on 9000-9100 is denied by web-out's rule (3); reviews and the /28 -> db by
  // db-in's deny rule (2), though db's isolation would refuse them anyway: the entry names
  // the rule. web -> db:5432 is allowed by db-in's allow rule (1), where db's isolation denies
  // by default; nothing else needs an allow entry.
  EXPECT_EQ(deny_rules, (std::set<std::uint16_t>{2, 3}));
  EXPECT_EQ(allow_rules, (std::set<std::uint16_t>{1}));
}

TEST_F(PolicyCompile, PolicyForAnAbsentWorkloadIsReported) {
  auto policies = parse(json::parse(R"({"name":"x","workload":"ghost",
      "ingress":[{"action":"allow"}]})"));
  auto compiled = compile_policies(policies, workloads);
  ASSERT_TRUE(compiled);
  EXPECT_EQ(compiled->unmatched_policies, std::vector<std::string>{"x"});
}

// Random policies over random peers and ports: the compiled trie must agree with the rules'
// meaning for every probe.
TEST_F(PolicyCompile, AgreesWithTheReferenceOnRandomPolicies) {
  std::mt19937 rng(20261125);
  const std::vector<const char*> cidrs = {"198.18.0.0/16", "198.18.0.0/24", "198.18.0.16/28",
                                          "198.19.0.0/16", "0.0.0.0/0",     "fd00::/8",
                                          "198.18.0.10/32"};
  const std::vector<const char*> probes = {"198.18.0.10", "198.18.0.20", "198.18.0.30",
                                           "198.18.0.17", "198.18.5.5",  "198.19.3.3",
                                           "203.0.113.9", "fd00::20",    "fd00::99"};
  const std::vector<std::uint16_t> ports = {22, 80, 443, 5432, 8000, 8080, 9080, 9100, 65535};
  auto pick = [&](auto& list) { return list[rng() % list.size()]; };
  auto random_peer = [&]() {
    json peer;
    switch (rng() % 3) {
      case 0: peer["workload"] = workloads[rng() % workloads.size()].config.name; break;
      case 1: peer["labels"] = {{"app", pick(workloads).config.labels.at("app")}}; break;
      default: peer["cidr"] = pick(cidrs); break;
    }
    return peer;
  };
  auto random_rule = [&](const char* peers) {
    json rule = {{"action", rng() % 3 == 0 ? "deny" : "allow"}};
    if (rng() % 4 != 0) {
      rule[peers] = json::array({random_peer()});
      if (rng() % 2 == 0)
        rule[peers].push_back(random_peer());
    }
    if (rng() % 3 != 0) {
      const int first = 1 + static_cast<int>(rng() % 9000);
      rule["ports"] = json::array(
          {pick(ports), std::to_string(first) + "-" + std::to_string(first + rng() % 1000)});
    }
    return rule;
  };
  for (int round = 0; round < 200; ++round) {
    json list = json::array();
    const int count = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < count; ++i) {
      json policy = {{"name", "p" + std::to_string(i)}};
      if (rng() % 2 == 0) {
        policy["workload"] = pick(workloads).config.name;
      } else {
        policy["selector"] = {{"app", pick(workloads).config.labels.at("app")}};
      }
      policy["ingress"] = json::array();
      policy["egress"] = json::array();
      for (unsigned r = rng() % 3; r > 0; --r)
        policy["ingress"].push_back(random_rule("from"));
      for (unsigned r = rng() % 3; r > 0; --r)
        policy["egress"].push_back(random_rule("to"));
      list.push_back(policy);
    }
    auto policies = parse(json{{"policies", list}});
    auto compiled = compile_policies(policies, workloads);
    ASSERT_TRUE(compiled);
    CompiledPolicyView view(compiled.value());
    auto party = [&](const char* text) {
      PolicyParty p;
      p.address = addr(text);
      for (const PolicyWorkload& w : workloads) {
        for (const IpAddress& a : w.config.ips) {
          if (a.bytes == p.address)
            p.workload = &w;
        }
      }
      return p;
    };
    for (int probe = 0; probe < 60; ++probe) {
      const PolicyParty src = party(pick(probes));
      const PolicyParty dst = party(pick(probes));
      const std::uint16_t port =
          rng() % 2 ? pick(ports) : static_cast<std::uint16_t>(1 + rng() % 10000);
      const std::uint8_t expected =
          evaluate_policies(policies, workloads, src, dst, port) == RuleAction::kAllow
              ? ML_POLICY_ALLOW
              : ML_POLICY_DENY;
      ASSERT_EQ(view.judge_inbound(src.address, dst.address, port), expected)
          << "round " << round << " port " << port << "\n"
          << list.dump();
      if (src.workload != nullptr) {
        ASSERT_EQ(view.judge_connect(src.workload->netns_cookie, dst.address, port), expected)
            << "round " << round << " port " << port << "\n"
            << list.dump();
      }
    }
  }
}

}  // namespace
}  // namespace meshlane::policy

namespace meshlane::policy {
namespace {

TEST(PolicyOverrides, ReplaceTheSelectedWorkloadsSettingsInNameOrder) {
  auto policies = parse_policy_document(nlohmann::json::parse(R"({"policies":[
      {"name":"b-later","selector":{"app":"web"},"acceleration":{"exclude_ports":[6379]}},
      {"name":"a-first","workload":"web","acceleration":{"enabled":false,"exclude_ports":[1]},
       "interception":{"exclude_outbound_ports":[9090],"exclude_outbound_cidrs":["198.19.0.0/16"]}}]})"));
  ASSERT_TRUE(policies) << policies.error().message();
  WorkloadConfig web;
  web.name = "web";
  web.labels = {{"app", "web"}};
  web.exclude_outbound_ports = {3306};
  WorkloadConfig other;
  other.name = "other";
  auto result = apply_policy_overrides({web, other}, policies.value());
  EXPECT_FALSE(result[0].acceleration);
  EXPECT_EQ(result[0].exclude_acceleration_ports, std::vector<std::uint16_t>{6379});  // later name
  EXPECT_EQ(result[0].exclude_outbound_ports, std::vector<std::uint16_t>{9090});
  ASSERT_EQ(result[0].exclude_outbound_cidrs.size(), 1u);
  EXPECT_TRUE(result[0].include_inbound_ports.empty());  // not given: the workload's own
  EXPECT_TRUE(result[1].acceleration);                   // not selected
  // Printing and reading back keeps the overrides.
  auto again = parse_policy(policy_to_json(policies.value()[1]), "p");
  ASSERT_TRUE(again);
  EXPECT_EQ(policy_to_json(again.value()), policy_to_json(policies.value()[1]));
  EXPECT_EQ(policy_to_json(policies.value()[1])["interception"]["exclude_outbound_cidrs"][0],
            "198.19.0.0/16");
}

TEST(PolicyOverrides, FastPathIsSetForTheSelectedWorkloads) {
  auto policies = parse_policy_document(nlohmann::json::parse(R"({"policies":[
      {"name":"b-later","selector":{"tier":"back"},"fast_path":{"exclude_ports":[9443]}},
      {"name":"a-first","selector":{"app":"web"},
       "fast_path":{"enabled":true,"exclude_ports":[1, 2]}},
      {"name":"c-off","workload":"db","fast_path":{"enabled":false}}]})"));
  ASSERT_TRUE(policies) << policies.error().message();
  ASSERT_EQ(policies->size(), 3u);
  EXPECT_EQ(policies.value()[0].overrides.fast_path, std::nullopt);
  EXPECT_EQ(policies.value()[0].overrides.fast_path_exclude_ports,
            std::optional<std::vector<std::uint16_t>>(std::vector<std::uint16_t>{9443}));
  EXPECT_EQ(policies.value()[1].overrides.fast_path, std::optional<bool>(true));
  EXPECT_EQ(policies.value()[2].overrides.fast_path, std::optional<bool>(false));
  EXPECT_EQ(policies.value()[2].overrides.fast_path_exclude_ports, std::nullopt);

  WorkloadConfig web;  // selected by a-first and b-later
  web.name = "web";
  web.labels = {{"app", "web"}, {"tier", "back"}};
  web.fast_path_exclude_ports = {5432};
  WorkloadConfig front;  // selected by a-first only
  front.name = "front";
  front.labels = {{"app", "web"}};
  WorkloadConfig db;  // opted in itself, turned off by c-off
  db.name = "db";
  db.fast_path = true;
  db.fast_path_exclude_ports = {5432};
  WorkloadConfig other;  // selected by none
  other.name = "other";
  other.fast_path = true;
  const auto result = apply_policy_overrides({web, front, db, other}, policies.value());
  ASSERT_EQ(result.size(), 4u);
  EXPECT_TRUE(result[0].fast_path);
  EXPECT_EQ(result[0].fast_path_exclude_ports, std::vector<std::uint16_t>{9443});  // later name
  EXPECT_TRUE(result[1].fast_path);
  EXPECT_EQ(result[1].fast_path_exclude_ports, (std::vector<std::uint16_t>{1, 2}));
  EXPECT_FALSE(result[2].fast_path);
  EXPECT_EQ(result[2].fast_path_exclude_ports, std::vector<std::uint16_t>{5432});  // not given
  EXPECT_TRUE(result[3].fast_path);
  // The fast path override touches nothing else.
  EXPECT_TRUE(result[0].acceleration);
  EXPECT_TRUE(result[0].exclude_acceleration_ports.empty());
}

TEST(PolicyOverrides, FastPathRoundTripsThroughJson) {
  auto policies = parse_policy_document(nlohmann::json::parse(R"({"policies":[
      {"name":"both","workload":"w","fast_path":{"enabled":true,"exclude_ports":[9443]},
       "acceleration":{"enabled":false}},
      {"name":"ports-only","workload":"w","fast_path":{"exclude_ports":[]}},
      {"name":"none","workload":"w"}]})"));
  ASSERT_TRUE(policies) << policies.error().message();
  const nlohmann::json both = policy_to_json(policies.value()[0]);
  EXPECT_EQ(both["fast_path"], nlohmann::json::parse(R"({"enabled":true,"exclude_ports":[9443]})"));
  EXPECT_EQ(both["acceleration"], nlohmann::json::parse(R"({"enabled":false})"));
  EXPECT_EQ(policy_to_json(policies.value()[1])["fast_path"],
            nlohmann::json::parse(R"({"exclude_ports":[]})"));
  EXPECT_FALSE(policy_to_json(policies.value()[2]).contains("fast_path"));
  for (const Policy& policy : policies.value()) {
    auto again = parse_policy(policy_to_json(policy), "p");
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(policy_to_json(again.value()), policy_to_json(policy));
    EXPECT_EQ(again->overrides.fast_path, policy.overrides.fast_path);
    EXPECT_EQ(again->overrides.fast_path_exclude_ports, policy.overrides.fast_path_exclude_ports);
  }
}

TEST(PolicyOverrides, BadOverridesNameTheMember) {
  for (const auto& [text, expected] : std::vector<std::pair<const char*, const char*>>{
           {R"({"name":"a","workload":"w","acceleration":{"enabled":"no"}})",
            "acceleration.enabled"},
           {R"({"name":"a","workload":"w","acceleration":{"off":true}})", "acceleration.off"},
           {R"({"name":"a","workload":"w","interception":{"exclude_outbound_ports":[0]}})",
            "interception.exclude_outbound_ports[0]"},
           {R"({"name":"a","workload":"w","interception":{"ports":[1]}})", "interception.ports"},
           {R"({"name":"a","workload":"w","fast_path":true})",
            "fast_path: must be an object with enabled and/or exclude_ports"},
           {R"({"name":"a","workload":"w","fast_path":{"enabled":1}})",
            "fast_path.enabled: must be true or false"},
           {R"({"name":"a","workload":"w","fast_path":{"exclude_ports":[443, 70000]}})",
            "fast_path.exclude_ports[1]: must be a port 1..65535"},
           {R"({"name":"a","workload":"w","fast_path":{"exclude_ports":443}})",
            "fast_path.exclude_ports: must be a list of ports"},
           {R"({"name":"a","workload":"w","fast_path":{"ports":[1]}})",
            "fast_path.ports: unknown member (known: enabled, exclude_ports)"},
           {R"({"name":"a","workload":"w","fastpath":{"enabled":true}})",
            "(document).fastpath: unknown member"},
       }) {
    auto result = parse_policy_document(nlohmann::json::parse(text));
    ASSERT_FALSE(result) << text;
    EXPECT_NE(result.error().message().find(expected), std::string::npos)
        << result.error().message();
  }
}

}  // namespace
}  // namespace meshlane::policy
