// Fuzzes the L4 policy parser and compiler (what `policy.apply` does with a client's JSON).
// Besides crashes and sanitizer reports it checks that:
//   - a rejected document gets a message that names where ("policy <path>: ...");
//   - every accepted policy survives the round trip through its JSON form (the state file);
//   - the compiled trie gives, for a few probes between three fixed workloads and a CIDR, the
//     verdict the rules mean (evaluate_policies), like the unit test but on fuzzer input.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "policy/compile.hpp"
#include "policy/policy.hpp"

namespace {

meshlane::policy::PolicyWorkload workload(const char* name, std::uint64_t cookie, const char* ip,
                                          const char* app) {
  meshlane::policy::PolicyWorkload w;
  w.config.name = name;
  w.config.ips = {*meshlane::parse_ip_address(ip)};
  w.config.labels = {{"app", app}};
  w.netns_cookie = cookie;
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using meshlane::fuzz::require;
  const nlohmann::json document =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return 0;
  }
  auto policies = meshlane::policy::parse_policy_document(document);
  if (!policies) {
    const std::string message = policies.error().message();
    require(message.rfind("policy ", 0) == 0, "a policy error names the member", message);
    return 0;
  }
  for (const meshlane::policy::Policy& policy : policies.value()) {
    const nlohmann::json printed = meshlane::policy::policy_to_json(policy);
    auto again = meshlane::policy::parse_policy(printed, "p");
    require(again.ok(), "a policy's JSON form parses back", printed.dump());
    require(meshlane::policy::policy_to_json(again.value()) == printed,
            "a policy's JSON form parses back to the same policy", printed.dump());
  }
  const std::vector<meshlane::policy::PolicyWorkload> workloads = {
      workload("web", 1, "198.18.0.10", "web"), workload("api", 2, "198.18.0.20", "api"),
      workload("db", 3, "fd00::30", "db")};
  auto compiled = meshlane::policy::compile_policies(policies.value(), workloads);
  if (!compiled) {
    return 0;  // too big for one trie: a clean error
  }
  const meshlane::policy::CompiledPolicyView view(compiled.value());
  const std::array<const char*, 5> probes = {"198.18.0.10", "198.18.0.20", "fd00::30", "198.19.1.1",
                                             "10.1.2.3"};
  const std::array<std::uint16_t, 4> ports = {22, 80, 8080, 65535};
  for (const char* from : probes) {
    for (const char* to : probes) {
      meshlane::policy::PolicyParty src;
      meshlane::policy::PolicyParty dst;
      src.address = meshlane::parse_ip_address(from)->bytes;
      dst.address = meshlane::parse_ip_address(to)->bytes;
      for (const auto& w : workloads) {
        if (w.config.ips[0].bytes == src.address)
          src.workload = &w;
        if (w.config.ips[0].bytes == dst.address)
          dst.workload = &w;
      }
      for (std::uint16_t port : ports) {
        const bool allowed =
            meshlane::policy::evaluate_policies(policies.value(), workloads, src, dst, port) ==
            meshlane::policy::RuleAction::kAllow;
        const std::uint8_t want = allowed ? ML_POLICY_ALLOW : ML_POLICY_DENY;
        require(view.judge_inbound(src.address, dst.address, port) == want,
                "the compiled policy agrees with the rules", document.dump());
      }
    }
  }
  return 0;
}
