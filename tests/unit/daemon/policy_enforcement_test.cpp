// policy.apply when no program would enforce a policy (degraded, without interception): it is
// refused with the reason, and neither the registry nor the kernel's rules change; removing a
// policy still works.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/control_api.hpp"
#include "policy/policy.hpp"
#include "policy/registry.hpp"

#include "fake_control_backend.hpp"

namespace meshlane::control {
namespace {

using test::FakeBackend;

const nlohmann::json kPolicy = nlohmann::json::parse(R"({"policies":[
  {"name":"deny-all","workload":"web","ingress":[{"action":"deny"}]}]})");

class PolicyEnforcementTest : public ::testing::Test {
 protected:
  PolicyEnforcementTest()
      : workloads_([](const std::vector<WorkloadConfig>&) { return Status(); },
                   [](const std::vector<WorkloadConfig>&) { return Status(); }),
        policies_(
            [this](const std::vector<policy::Policy>& set) -> Result<nlohmann::json> {
              ++installs_;
              return nlohmann::json{{"policies", set.size()}};
            },
            [](const std::vector<policy::Policy>&) { return Status(); }, {}),
        api_(backend_, workloads_, {}, &policies_) {}

  Response apply() {
    std::string line = encode_request(1, "policy.apply", kPolicy);
    line.pop_back();
    const Reply reply = api_.handle_line(PeerCredentials{1, 0, 0, {}}, line);
    return parse_response(reply.line.substr(0, reply.line.size() - 1)).value();
  }

  FakeBackend backend_;
  workloads::WorkloadRegistry workloads_;
  int installs_ = 0;
  policy::PolicyRegistry policies_;
  ControlApi api_;
};

TEST_F(PolicyEnforcementTest, AppliedWhenEnforced) {
  const Response response = apply();
  ASSERT_TRUE(response.result.has_value()) << response.error->message;
  EXPECT_EQ(installs_, 1);
}

TEST_F(PolicyEnforcementTest, RefusedWithTheReasonWhenNothingWouldEnforceIt) {
  backend_.policy_unavailable = "interception is off";
  const Response response = apply();
  ASSERT_TRUE(response.error.has_value());
  EXPECT_EQ(response.error->code, ErrorCode::kUnavailable);
  EXPECT_EQ(response.error->message, "policy not applied: interception is off");
  EXPECT_EQ(installs_, 0);
}

}  // namespace
}  // namespace meshlane::control
