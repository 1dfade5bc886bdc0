// A ControlBackend without a datapath, shared by the control API's unit tests and its fuzz
// target: fixed status and counters, sockhash keys the test sets, one known netns cookie.
#pragma once

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "daemon/control_api.hpp"
#include "observe/counters.hpp"

namespace meshlane::test {

class FakeBackend final : public control::ControlBackend {
 public:
  // The namespace whose cookie netns_cookie() knows (kKnownNetnsCookie).
  static constexpr const char* kKnownNetns = "/var/run/netns/a";
  static constexpr std::uint64_t kKnownNetnsCookie = 4242;
  // The value of intercepted_outbound in counters(); every other counter is 0.
  static constexpr std::uint64_t kInterceptedOutbound = 3;

  nlohmann::json status() override { return {{"version", "test"}, {"uptime_seconds", 5}}; }

  Result<Counters> counters() override {
    if (counters_fail) {
      return make_error(ENOENT, "cannot open pinned object /sys/fs/bpf/x/ml_counters_v1");
    }
    Counters counters;
    counters.values[ML_CTR_INTERCEPT_OUTBOUND] = kInterceptedOutbound;
    return counters;
  }

  // The known namespace's counters: every counter kWorkloadCounterValue, node-only ones too (the
  // kernel keeps them at 0 per workload; the API must not list them).
  static constexpr std::uint64_t kWorkloadCounterValue = 7;
  Result<Counters> workload_counters(std::uint64_t netns_cookie) override {
    if (netns_cookie != kKnownNetnsCookie) {
      return make_error(ENOENT, "no counters for this netns cookie");
    }
    Counters counters;
    counters.values.fill(kWorkloadCounterValue);
    return counters;
  }

  Result<std::vector<ml_sock_key>> sockhash_keys() override { return keys; }

  std::optional<std::uint64_t> netns_cookie(const std::string& netns_path) override {
    if (netns_path == kKnownNetns) {
      return kKnownNetnsCookie;
    }
    return std::nullopt;
  }

  std::string policy_enforcement_unavailable() override { return policy_unavailable; }

  bool counters_fail = false;
  std::vector<ml_sock_key> keys;
  std::string policy_unavailable;  // "" = policies are enforced
};

}  // namespace meshlane::test
