// The control methods with a fake backend: access control, method and parameter errors, the
// results of every method, and how conns maps sockhash keys to workloads.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "daemon/control_api.hpp"
#include "observe/connections.hpp"
#include "policy/policy.hpp"
#include "policy/registry.hpp"

#include "fake_control_backend.hpp"
#include "test_support.hpp"

namespace meshlane::control {
namespace {

using test::contains;

void set_address(__u32 out[4], const std::string& text) {
  IpAddress address = parse_ip_address(text).value();
  std::memcpy(out, address.bytes.data(), 16);
}

ml_sock_key make_key(const std::string& local, std::uint16_t local_port, const std::string& remote,
                     std::uint16_t remote_port, std::uint64_t scope = 0) {
  ml_sock_key key{};
  set_address(key.local_ip6, local);
  set_address(key.remote_ip6, remote);
  key.local_port = local_port;
  key.remote_port = remote_port;
  key.local_seq = 1000 + local_port;
  key.remote_seq = 1000 + remote_port;
  key.scope = scope;
  return key;
}

using test::FakeBackend;

constexpr gid_t kOpsGroup = 5000;

PeerCredentials root() { return {1, 0, 0, {}}; }
PeerCredentials nobody() { return {2, 65534, 65534, {65534}}; }
PeerCredentials operator_peer() { return {3, 1000, 1000, {1000, kOpsGroup}}; }

class ControlApiTest : public ::testing::Test {
 protected:
  ControlApiTest()
      : registry_([this](const std::vector<WorkloadConfig>& w) { return apply(w); },
                  [](const std::vector<WorkloadConfig>&) { return Status(); }),
        api_(backend_, registry_, {kOpsGroup, kOpsGroup}) {
    WorkloadConfig configured = workload_preset(MeshKind::kIstio);
    configured.name = "conf";
    configured.netns = "/var/run/netns/conf";
    configured.ips = {parse_ip_address("198.18.0.20").value()};
    EXPECT_TRUE(
        registry_.start({configured}, {}, [](const WorkloadConfig&) { return Status(); }).ok());
  }

  Status apply(const std::vector<WorkloadConfig>& workloads) {
    applied_ = workloads.size();
    return {};
  }

  // Sends one line, returns the parsed response.
  Response send(const std::string& line, const PeerCredentials& peer = root()) {
    Reply reply = api_.handle_line(peer, line);
    EXPECT_EQ(reply.line.back(), '\n');
    EXPECT_EQ(reply.line.find('\n'), reply.line.size() - 1);
    last_close_ = reply.close;
    auto response = parse_response(reply.line.substr(0, reply.line.size() - 1));
    EXPECT_TRUE(response.ok()) << reply.line;
    return response.ok() ? response.value() : Response{};
  }

  Response request(const std::string& method, const nlohmann::json& params,
                   const PeerCredentials& peer = root()) {
    std::string line = encode_request(77, method, params);
    line.pop_back();
    Response response = send(line, peer);
    EXPECT_EQ(response.id, 77);
    return response;
  }

  nlohmann::json result(const std::string& method, const nlohmann::json& params = {}) {
    Response response = request(method, params.is_null() ? nlohmann::json::object() : params);
    EXPECT_TRUE(response.result.has_value())
        << method << ": " << (response.error ? response.error->message : "");
    return response.result.value_or(nlohmann::json());
  }

  ControlError error(const std::string& method, const nlohmann::json& params,
                     const PeerCredentials& peer = root()) {
    Response response = request(method, params, peer);
    EXPECT_TRUE(response.error.has_value()) << method << " succeeded";
    return response.error.value_or(ControlError{});
  }

  FakeBackend backend_;
  workloads::WorkloadRegistry registry_;
  ControlApi api_;
  std::size_t applied_ = 0;
  bool last_close_ = false;
};

// ---- Access ------------------------------------------------------------------------------------

TEST(ControlAccess, RootAlwaysGroupMembersWhenConfigured) {
  const AccessPolicy root_only{};
  EXPECT_TRUE(is_allowed(root(), root_only, Access::kWrite));
  EXPECT_FALSE(is_allowed(operator_peer(), root_only, Access::kRead));
  EXPECT_FALSE(is_allowed(nobody(), root_only, Access::kRead));

  const AccessPolicy ops{kOpsGroup, kOpsGroup};
  EXPECT_TRUE(is_allowed(operator_peer(), ops, Access::kWrite));  // supplementary group
  PeerCredentials primary{4, 1001, kOpsGroup, {}};
  EXPECT_TRUE(is_allowed(primary, ops, Access::kWrite));  // primary group
  EXPECT_FALSE(is_allowed(nobody(), ops, Access::kRead));

  const AccessPolicy readers{std::nullopt, kOpsGroup};
  EXPECT_TRUE(is_allowed(operator_peer(), readers, Access::kRead));
  EXPECT_FALSE(is_allowed(operator_peer(), readers, Access::kWrite));
}

// The tiers exactly as config/meshlane.toml and docs/control-protocol.md list them: a method
// added without a decision here fails this test.
TEST(ControlAccess, EveryMethodHasTheDocumentedTier) {
  const std::map<std::string, Access> documented = {
      {"status", Access::kRead},        {"stats", Access::kRead},
      {"workload.list", Access::kRead}, {"workload.get", Access::kRead},
      {"conns", Access::kRead},         {"policy.get", Access::kRead},
      {"workload.add", Access::kWrite}, {"workload.del", Access::kWrite},
      {"policy.apply", Access::kWrite}, {"policy.del", Access::kWrite},
      {"monitor", Access::kWrite},  // it shows every connection of the node
      {"explain", Access::kRead},   // only about the connection asked for
  };
  EXPECT_EQ(methods().size(), documented.size());
  for (const MethodInfo& method : methods()) {
    auto tier = documented.find(std::string(method.name));
    ASSERT_NE(tier, documented.end()) << method.name << " has no documented tier";
    EXPECT_EQ(method.access, tier->second) << method.name;
  }
}

constexpr gid_t kReadGroup = 6000;
constexpr gid_t kWriteGroup = 6001;
PeerCredentials reader() { return {5, 1100, 1100, {1100, kReadGroup}}; }
PeerCredentials writer() { return {6, 1200, kWriteGroup, {1200}}; }  // primary group

TEST(ControlAccess, ReadTierReadsWriteTierDoesEverything) {
  const AccessPolicy tiers{kWriteGroup, kReadGroup};
  for (const MethodInfo& method : methods()) {
    EXPECT_TRUE(is_allowed(root(), tiers, method.access)) << method.name;
    EXPECT_TRUE(is_allowed(writer(), tiers, method.access)) << method.name;
    EXPECT_EQ(is_allowed(reader(), tiers, method.access), method.access == Access::kRead)
        << method.name;
    EXPECT_FALSE(is_allowed(nobody(), tiers, method.access)) << method.name;
  }
  // Only a read group: writes are root's alone.
  const AccessPolicy readers_only{std::nullopt, kReadGroup};
  EXPECT_FALSE(is_allowed(writer(), readers_only, Access::kRead));
  EXPECT_FALSE(is_allowed(reader(), readers_only, Access::kWrite));
}

TEST(ControlAccess, SocketFileBelongsToTheReadGroupAndTheWriteGroupGetsAnAcl) {
  ServerOptions options;
  set_socket_groups(AccessPolicy{kWriteGroup, kReadGroup}, options);
  EXPECT_EQ(options.group, kReadGroup);
  EXPECT_EQ(options.acl_group, kWriteGroup);

  set_socket_groups(AccessPolicy{kWriteGroup, std::nullopt}, options);
  EXPECT_EQ(options.group, kWriteGroup);
  EXPECT_EQ(options.acl_group, std::nullopt);

  set_socket_groups(AccessPolicy{kWriteGroup, kWriteGroup}, options);
  EXPECT_EQ(options.group, kWriteGroup);
  EXPECT_EQ(options.acl_group, std::nullopt);

  set_socket_groups(AccessPolicy{}, options);
  EXPECT_EQ(options.group, std::nullopt);
  EXPECT_EQ(options.acl_group, std::nullopt);
}

TEST(ControlAccess, ResolvesBothKeysAndTheDeprecatedAlias) {
  DaemonConfig daemon;
  daemon.socket_read_group = "6000";
  daemon.socket_write_group = "6001";
  auto tiers = resolve_access_policy(daemon);
  ASSERT_TRUE(tiers.ok()) << tiers.error().message();
  EXPECT_EQ(tiers->read_group, kReadGroup);
  EXPECT_EQ(tiers->write_group, kWriteGroup);
  EXPECT_EQ(describe(tiers.value()), "read: gid 6000 and the write group, write: gid 6001");

  EXPECT_EQ(describe(resolve_access_policy(DaemonConfig{}).value()),
            "read: root only, write: root only");

  daemon.socket_read_group = "no-such-group-meshlane";
  auto unknown = resolve_access_policy(daemon);
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message(), "daemon.socket_read_group: no group named"))
      << unknown.error().message();
}

TEST_F(ControlApiTest, NonMemberIsDeniedEvenReadOnly) {
  ControlError denied = error("workload.add", {{"name", "x"}}, nobody());
  EXPECT_EQ(denied.code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(denied.message,
            "uid 65534 (gid 65534) may not call workload.add: a write method, open to uid 0 and "
            "members of daemon.socket_write_group (gid 5000)");
  EXPECT_EQ(error("status", nlohmann::json::object(), nobody()).code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(registry_.live_count(), 0u);
}

// A read-tier caller is refused on every write method with the error naming the method, its
// uid and the setting that grants it, and nothing changes; it may call the read methods.
TEST_F(ControlApiTest, ReadTierIsRefusedEveryWriteMethodAndChangesNothing) {
  workloads::WorkloadRegistry registry([](const std::vector<WorkloadConfig>&) { return Status(); },
                                       [](const std::vector<WorkloadConfig>&) { return Status(); });
  ASSERT_TRUE(registry.start({}, {}, [](const WorkloadConfig&) { return Status(); }).ok());
  ControlApi api(backend_, registry, AccessPolicy{kWriteGroup, kReadGroup});
  const std::map<std::string, nlohmann::json> calls = {
      {"workload.add",
       {{"name", "intruder"}, {"netns", "/var/run/netns/x"}, {"ips", {"198.18.0.99"}}}},
      {"workload.del", {{"name", "conf"}}},
      {"policy.apply", {{"policies", nlohmann::json::array()}, {"replace", true}}},
      {"policy.del", {{"name", "p"}}},
      {"monitor", nlohmann::json::object()},
  };
  std::vector<Request> writes;
  for (const MethodInfo& method : methods()) {
    Request call{1, std::string(method.name), nlohmann::json::object()};
    if (method.access == Access::kRead) {
      if (method.name == "workload.get") {
        call.params = {{"name", "nope"}};
      }
      auto outcome = api.call(reader(), call);
      EXPECT_TRUE(outcome.ok() || outcome.error().code != ErrorCode::kPermissionDenied)
          << method.name;
      continue;
    }
    ASSERT_TRUE(calls.count(call.method)) << call.method;
    call.params = calls.at(call.method);
    auto outcome = api.call(reader(), call);
    ASSERT_FALSE(outcome.ok()) << call.method;
    EXPECT_EQ(outcome.error().code, ErrorCode::kPermissionDenied) << call.method;
    EXPECT_EQ(outcome.error().message,
              "uid 1100 (gid 1100) may not call " + call.method +
                  ": a write method, open to uid 0 and members of daemon.socket_write_group "
                  "(gid 6001)");
    writes.push_back(call);
  }
  EXPECT_EQ(writes.size(), 5u);
  EXPECT_EQ(registry.live_count(), 0u);
  // The write tier gets past the access check on each (whatever the method then says).
  for (const Request& call : writes) {
    auto written = api.call(writer(), call);
    EXPECT_TRUE(written.ok() || written.error().code != ErrorCode::kPermissionDenied)
        << call.method;
  }
  EXPECT_EQ(registry.live_count(), 1u);  // the write tier's workload.add
}

TEST_F(ControlApiTest, ReadRefusalNamesBothSettings) {
  ControlApi api(backend_, registry_, AccessPolicy{kWriteGroup, kReadGroup});
  auto outcome = api.call(nobody(), Request{1, "status", nlohmann::json::object()});
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().message,
            "uid 65534 (gid 65534) may not call status: a read method, open to uid 0 and "
            "members of daemon.socket_write_group (gid 6001) or members of "
            "daemon.socket_read_group (gid 6000)");
}

// ---- Audit lines
// ---------------------------------------------------------------------------------

TEST(ControlAudit, LinesNameCallerObjectAndOutcome) {
  const PeerCredentials peer{4242, 1200, 1200, {}};
  EXPECT_EQ(audit_line(peer, Request{1, "workload.add", {{"name", "pod-a"}}},
                       nlohmann::json{{"name", "pod-a"}, {"outcome", "added"}}),
            "uid 1200 pid 4242: workload.add pod-a: added");
  EXPECT_EQ(audit_line(peer, Request{1, "workload.del", {{"name", "pod-a"}}},
                       ControlError{ErrorCode::kConflict, "pod-a is from the config file"}),
            "uid 1200 pid 4242: workload.del pod-a: failed, nothing changed: conflict: pod-a is "
            "from the config file");
  EXPECT_EQ(audit_line(peer, Request{1, "policy.apply", {{"replace", true}}},
                       nlohmann::json{{"outcomes", {{"a", "added"}, {"b", "unchanged"}}},
                                      {"removed", {"old"}}}),
            "uid 1200 pid 4242: policy.apply: a added, b unchanged (replace); removed [\"old\"]");
  EXPECT_EQ(audit_line(peer, Request{1, "policy.del", {{"name", "a"}}},
                       nlohmann::json{{"name", "a"}, {"outcome", "deleted"}, {"removed", {}}}),
            "uid 1200 pid 4242: policy.del a: deleted");
  EXPECT_EQ(audit_line(peer, Request{1, "monitor", nlohmann::json::object()},
                       nlohmann::json{{"subscribed", true}, {"filter", {{"port", 80}}}}),
            "uid 1200 pid 4242: monitor: subscribed, filter {\"port\":80}");
}

// ---- The refusal log's rate limit
// ----------------------------------------------------------------

TEST(RateLimiter, BurstPerWindowThenCountsWhatItHeldBack) {
  using Clock = RateLimiter::Clock;
  RateLimiter limiter(3, std::chrono::seconds(1));
  const Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) {
    RateLimiter::Decision decision = limiter.admit(t0 + std::chrono::milliseconds(i));
    EXPECT_TRUE(decision.log);
    EXPECT_EQ(decision.suppressed, 0u);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(limiter.admit(t0 + std::chrono::milliseconds(500 + i)).log);
  }
  // A new window: logged again, and told how many were held back.
  RateLimiter::Decision next = limiter.admit(t0 + std::chrono::milliseconds(1000));
  EXPECT_TRUE(next.log);
  EXPECT_EQ(next.suppressed, 10u);
  RateLimiter::Decision after = limiter.admit(t0 + std::chrono::milliseconds(1001));
  EXPECT_TRUE(after.log);
  EXPECT_EQ(after.suppressed, 0u);
  // Long quiet: a fresh window.
  EXPECT_TRUE(limiter.admit(t0 + std::chrono::hours(1)).log);
}

TEST_F(ControlApiTest, GroupMemberMayChangeState) {
  Response response =
      request("workload.del", {{"name", "x"}, {"missing_ok", true}}, operator_peer());
  ASSERT_TRUE(response.result.has_value());
  EXPECT_EQ((*response.result)["outcome"], "absent");
}

// ---- Envelope errors ----------------------------------------------------------------------------

TEST_F(ControlApiTest, UnknownMethodListsTheKnownOnes) {
  ControlError unknown = error("workload.rm", nlohmann::json::object());
  EXPECT_EQ(unknown.code, ErrorCode::kUnknownMethod);
  EXPECT_EQ(unknown.message,
            "unknown method \"workload.rm\" (known methods: status, stats, workload.list, "
            "workload.get, workload.add, workload.del, conns, policy.apply, policy.get, "
            "policy.del, monitor, explain)");
}

TEST_F(ControlApiTest, MalformedLineClosesOtherErrorsDoNot) {
  Response broken = send("{\"v\":1");
  ASSERT_TRUE(broken.error.has_value());
  EXPECT_EQ(broken.error->code, ErrorCode::kParseError);
  EXPECT_TRUE(last_close_);
  EXPECT_TRUE(broken.id.is_null());
  Response unknown_member = send(R"({"v":1,"id":3,"method":"status","x":1})");
  EXPECT_EQ(unknown_member.error->code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(unknown_member.id, 3);
  EXPECT_FALSE(last_close_);
}

TEST_F(ControlApiTest, UnknownParamsAreRejectedPerMethod) {
  for (const char* method : {"status", "workload.list"}) {
    ControlError unknown = error(method, {{"verbose", true}});
    EXPECT_EQ(unknown.code, ErrorCode::kInvalidParams) << method;
    EXPECT_EQ(unknown.message, "params.verbose: unknown parameter (this method takes none)");
  }
  EXPECT_EQ(error("stats", {{"verbose", true}}).message,
            "params.verbose: unknown parameter (known: workload)");
  // Without a policy registry the policy methods say so rather than pretend.
  EXPECT_EQ(error("policy.get", nlohmann::json::object()).code, ErrorCode::kUnavailable);
  EXPECT_EQ(error("workload.get", {{"name", "a"}, {"x", 1}}).message,
            "params.x: unknown parameter (known: name)");
  EXPECT_EQ(error("conns", {{"limit", -1}}).message,
            "params.limit: -1 is out of range (allowed 0..9223372036854775807)");
  EXPECT_EQ(error("workload.get", nlohmann::json::object()).message, "params.name: required");
  EXPECT_EQ(error("workload.del", {{"name", 5}}).message,
            "params.name: expected a string, got an integer");
}

// ---- Methods ------------------------------------------------------------------------------------

TEST_F(ControlApiTest, StatusAddsProtocolAndWorkloadCounts) {
  const nlohmann::json status = result("status");
  EXPECT_EQ(status["version"], "test");
  EXPECT_EQ(status["protocol"], 1);
  EXPECT_EQ(status["workloads"], nlohmann::json({{"total", 1}, {"config", 1}, {"live", 0}}));
}

TEST_F(ControlApiTest, StatsAreTheCountersByName) {
  const nlohmann::json stats = result("stats");
  EXPECT_EQ(stats["counters"]["intercepted_outbound"], 3);
  EXPECT_EQ(stats["counters"].size(), static_cast<std::size_t>(ML_CTR_MAX));
  backend_.counters_fail = true;
  ControlError unavailable = error("stats", nlohmann::json::object());
  EXPECT_EQ(unavailable.code, ErrorCode::kUnavailable);
  EXPECT_TRUE(contains(unavailable.message, "ml_counters_v1"));
}

TEST_F(ControlApiTest, WorkloadStatsListOnlyTheCountersKeptPerWorkload) {
  result("workload.add", {{"name", "a"},
                          {"netns", FakeBackend::kKnownNetns},
                          {"ips", {"198.18.0.10"}},
                          {"mesh", "istio"}});
  const nlohmann::json stats = result("stats", {{"workload", "a"}});
  EXPECT_EQ(stats["workload"], "a");
  std::size_t per_workload = 0;
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    const std::string name = counter_name(counter);
    if (counted_per_workload(counter)) {
      ++per_workload;
      EXPECT_EQ(stats["counters"].value(name, nlohmann::json()), FakeBackend::kWorkloadCounterValue)
          << name;
    } else {
      EXPECT_FALSE(stats["counters"].contains(name)) << name << " is node-wide only";
    }
  }
  EXPECT_EQ(stats["counters"].size(), per_workload);
  EXPECT_GT(per_workload, 0u);
  EXPECT_LT(per_workload, static_cast<std::size_t>(ML_CTR_MAX));
  EXPECT_EQ(error("stats", {{"workload", "nope"}}).code, ErrorCode::kNotFound);
}

TEST_F(ControlApiTest, WorkloadAddGetListDel) {
  const nlohmann::json spec = {{"name", "a"},
                               {"netns", "/var/run/netns/a"},
                               {"ips", {"198.18.0.10", "fd00::10"}},
                               {"mesh", "linkerd"}};
  const nlohmann::json added = result("workload.add", spec);
  EXPECT_EQ(added["outcome"], "added");
  EXPECT_EQ(added["name"], "a");
  EXPECT_EQ(added["spec"]["outbound_port"], 4140);  // the preset, filled in
  EXPECT_EQ(applied_, 2u);
  EXPECT_EQ(result("workload.add", spec)["outcome"], "unchanged");

  const nlohmann::json got = result("workload.get", {{"name", "a"}});
  EXPECT_EQ(got["source"], "live");
  EXPECT_EQ(got["spec"], added["spec"]);
  // health comes from the backend (null when it cannot tell, as this fake).
  ASSERT_TRUE(got.contains("health"));
  EXPECT_TRUE(got["health"].is_null());

  const nlohmann::json list = result("workload.list");
  EXPECT_EQ(list["total"], 2);
  EXPECT_EQ(list["workloads"][0]["name"], "conf");
  EXPECT_EQ(list["workloads"][0]["source"], "config");
  EXPECT_EQ(list["workloads"][1]["name"], "a");
  EXPECT_EQ(list["draining"], nlohmann::json::array());
  EXPECT_TRUE(list["workloads"][1].contains("health"));

  EXPECT_EQ(result("workload.del", {{"name", "a"}})["outcome"], "deleted");
  EXPECT_EQ(error("workload.get", {{"name", "a"}}).code, ErrorCode::kNotFound);
  EXPECT_EQ(error("workload.del", {{"name", "a"}}).code, ErrorCode::kNotFound);
}

TEST_F(ControlApiTest, WorkloadAddValidatesLikeTheConfigFile) {
  ControlError bad =
      error("workload.add", {{"name", "a b"}, {"netns", "/x"}, {"ips", {"1.2.3.4"}}});
  EXPECT_EQ(bad.code, ErrorCode::kInvalidParams);
  EXPECT_EQ(bad.message,
            "params.name: \"a b\" is not a valid workload name (1..63 characters from A-Z a-z 0-9 "
            "_ . -)");
  EXPECT_EQ(
      error("workload.add", {{"name", "a"}, {"netns", "/x"}, {"ips", nlohmann::json::array()}})
          .message,
      "params.ips: must list at least one address of the pod");
  EXPECT_EQ(error("workload.add", {{"name", "conf"}, {"netns", "/x"}, {"ips", {"1.2.3.4"}}}).code,
            ErrorCode::kConflict);
}

TEST_F(ControlApiTest, ConnsNameWorkloadsByAddressAndLoopbackScope) {
  // app in pod a -> its sidecar over loopback (both ends spliced), and the sidecar's upstream
  // to pod conf's address (only one end in the map).
  backend_.keys = {make_key("127.0.0.1", 40000, "127.0.0.1", 15001, 4242),
                   make_key("127.0.0.1", 15001, "127.0.0.1", 40000, 4242),
                   make_key("198.18.0.10", 50000, "198.18.0.20", 15006)};
  ASSERT_TRUE(registry_
                  .add(parse_workload_json(
                           {{"name", "a"}, {"netns", "/var/run/netns/a"}, {"ips", {"198.18.0.10"}}},
                           "", "params")
                           .value())
                  .ok());
  const nlohmann::json conns = result("conns");
  EXPECT_EQ(conns["total"], 3);
  EXPECT_EQ(conns["shown"], 3);
  EXPECT_EQ(conns["truncated"], false);
  const nlohmann::json& list = conns["connections"];
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0], nlohmann::json({{"local", "127.0.0.1:15001"},
                                     {"remote", "127.0.0.1:40000"},
                                     {"scope", 4242},
                                     {"workload", "a"},
                                     {"remote_workload", "a"},
                                     {"kind", "other"},
                                     {"peer_in_map", true}}));
  EXPECT_EQ(list[1]["local"], "127.0.0.1:40000");
  EXPECT_EQ(list[2], nlohmann::json({{"local", "198.18.0.10:50000"},
                                     {"remote", "198.18.0.20:15006"},
                                     {"scope", 0},
                                     {"workload", "a"},
                                     {"remote_workload", "conf"},
                                     {"kind", "other"},
                                     {"peer_in_map", false}}));
  const nlohmann::json limited = result("conns", {{"limit", 1}});
  EXPECT_EQ(limited["shown"], 1);
  EXPECT_EQ(limited["truncated"], true);
  EXPECT_EQ(result("conns", {{"limit", 0}})["shown"], 3);  // 0: all
}

TEST_F(ControlApiTest, ConnsTellFastPathConnectionsFromTheAppliedSettings) {
  // Live pods f1 and f2 on the fast path, f3 off; conf (the config workload) off.
  for (const auto& [name, ip, fast] :
       {std::tuple{"f1", "198.18.0.31", true}, std::tuple{"f2", "198.18.0.32", true},
        std::tuple{"f3", "198.18.0.33", false}}) {
    ASSERT_TRUE(registry_
                    .add(parse_workload_json({{"name", name},
                                              {"netns", std::string("/var/run/netns/") + name},
                                              {"ips", {ip}},
                                              {"fast_path", fast}},
                                             "", "params")
                             .value())
                    .ok());
  }
  backend_.keys = {make_key("198.18.0.31", 41000, "198.18.0.32", 8080),
                   make_key("198.18.0.32", 8080, "198.18.0.31", 41000),
                   make_key("198.18.0.31", 41001, "198.18.0.33", 8080),
                   make_key("198.18.0.31", 41002, "198.18.0.32", 15006)};
  auto kinds = [](const nlohmann::json& conns) {
    std::map<std::string, std::string> by_local;
    for (const nlohmann::json& c : conns["connections"]) {
      by_local[c["local"].get<std::string>() + " " + c["remote"].get<std::string>()] = c["kind"];
    }
    return by_local;
  };
  const auto plain = kinds(result("conns"));
  EXPECT_EQ(plain.at("198.18.0.31:41000 198.18.0.32:8080"), "fastpath");
  EXPECT_EQ(plain.at("198.18.0.32:8080 198.18.0.31:41000"), "fastpath");
  EXPECT_EQ(plain.at("198.18.0.31:41001 198.18.0.33:8080"), "other");   // f3 is not opted in
  EXPECT_EQ(plain.at("198.18.0.31:41002 198.18.0.32:15006"), "other");  // f2's inbound proxy

  // With a policy registry, the kinds follow the policies' fast path overrides.
  std::vector<policy::Policy> saved;
  auto on = policy::parse_policy_document(
      nlohmann::json::parse(R"({"name":"f3-on","workload":"f3","fast_path":{"enabled":true}})"));
  ASSERT_TRUE(on) << on.error().message();
  saved.push_back(on.value()[0]);
  policy::PolicyRegistry policies(
      [](const std::vector<policy::Policy>&) { return Result<nlohmann::json>(nullptr); },
      [](const std::vector<policy::Policy>&) { return Status(); }, saved);
  ControlApi with_policies(backend_, registry_, {kOpsGroup, kOpsGroup}, &policies);
  std::string line = encode_request(1, "conns", nlohmann::json::object());
  line.pop_back();
  Reply reply = with_policies.handle_line(root(), line);
  auto response = parse_response(reply.line.substr(0, reply.line.size() - 1));
  ASSERT_TRUE(response.ok()) << reply.line;
  ASSERT_TRUE(response->result.has_value()) << reply.line;
  const auto overridden = kinds(*response->result);
  EXPECT_EQ(overridden.at("198.18.0.31:41001 198.18.0.33:8080"), "fastpath");
  EXPECT_EQ(overridden.at("198.18.0.31:41000 198.18.0.32:8080"), "fastpath");
}

// Pods f1 (198.18.0.31, fd00::31) and f2 (198.18.0.32, fd00::32, inbound_port 7006) on the
// fast path, istio's other ports; slow (198.18.0.40) without it.
WorkloadIndex fast_path_index() {
  WorkloadIndex index;
  auto add = [&](const char* name, std::vector<const char*> ips, bool fast) {
    WorkloadConfig w = workload_preset(MeshKind::kIstio);
    w.name = name;
    for (const char* ip : ips) {
      w.ips.push_back(parse_ip_address(ip).value());
    }
    w.fast_path = fast;
    std::uint64_t cookie = 0;
    if (std::string(name) == "f2") {
      w.inbound_port = 7006;
      w.fast_path_exclude_ports = {9443};
      cookie = 32;
    } else if (std::string(name) == "f1") {
      cookie = 31;
    }
    index.add(w, cookie);
  };
  add("f1", {"198.18.0.31", "fd00::31"}, true);
  add("f2", {"198.18.0.32", "fd00::32"}, true);
  add("slow", {"198.18.0.40"}, false);
  return index;
}

TEST(ControlConns, KindIsFastPathOnlyBetweenTwoFastPathWorkloadsOffTheirProxyPorts) {
  const WorkloadIndex index = fast_path_index();
  auto kind = [&](const char* local, std::uint16_t local_port, const char* remote,
                  std::uint16_t remote_port, std::uint64_t scope = 0) {
    return std::string(
        connection_kind(make_key(local, local_port, remote, remote_port, scope), index));
  };
  // App to app, either end, IPv4 or IPv6.
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.32", 8080), "fastpath");
  EXPECT_EQ(kind("198.18.0.32", 8080, "198.18.0.31", 40000), "fastpath");
  EXPECT_EQ(kind("fd00::31", 40000, "fd00::32", 8080), "fastpath");
  EXPECT_EQ(kind("::ffff:198.18.0.31", 40000, "198.18.0.32", 8080), "fastpath");
  // A proxy port of either workload at either end: a sidecar hop.
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.32", 7006), "other");   // f2's inbound
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.32", 15001), "other");  // f2's outbound
  EXPECT_EQ(kind("198.18.0.31", 15006, "198.18.0.32", 8080), "other");   // f1's inbound
  EXPECT_EQ(kind("198.18.0.32", 8080, "198.18.0.31", 15006), "other");
  // f1's inbound port is an app port of f2's (whose inbound proxy is on 7006): the datapath
  // takes the fast path there, as it does for any port that is not f2's own.
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.32", 15006), "fastpath");

  // One end not opted in, not a workload, or the same workload at both ends.
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.40", 8080), "other");
  EXPECT_EQ(kind("198.18.0.40", 8080, "198.18.0.31", 40000), "other");
  EXPECT_EQ(kind("198.18.0.31", 40000, "198.18.0.99", 8080), "other");
  EXPECT_EQ(kind("198.18.0.31", 40000, "fd00::31", 8080), "other");
  // Loopback: workloads are known by scope only, never a fast path between two of them.
  EXPECT_EQ(kind("127.0.0.1", 40000, "127.0.0.1", 8080, 4242), "other");
  // Nothing known at all.
  EXPECT_EQ(
      std::string(connection_kind(make_key("198.18.0.31", 1, "198.18.0.32", 2), WorkloadIndex{})),
      "other");
}

TEST(ControlConns, TheServerEndIsWhereAListenerOfTheCgroupIs) {
  // A's sidecar (an ephemeral port) -> B's mesh port 15020 (excluded from B's inbound
  // interception): B's end is no fast-path port, and A's ephemeral port is no server end,
  // since nothing listens there. Without listeners to go by, either end may be the server.
  WorkloadIndex index = fast_path_index();
  index.listening = [](std::uint64_t netns_cookie, std::uint16_t port) {
    return (netns_cookie == 32 && (port == 15020 || port == 8080 || port == 9443)) ||
           (netns_cookie == 31 && port == 8081);
  };
  auto kind = [&](const char* local, std::uint16_t local_port, const char* remote,
                  std::uint16_t remote_port) {
    return std::string(connection_kind(make_key(local, local_port, remote, remote_port, 0), index));
  };
  EXPECT_EQ(kind("198.18.0.31", 54720, "198.18.0.32", 15020), "other");
  EXPECT_EQ(kind("198.18.0.32", 15020, "198.18.0.31", 54720), "other");
  // A port f2 excepts from the fast path.
  EXPECT_EQ(kind("198.18.0.31", 54720, "198.18.0.32", 9443), "other");
  EXPECT_EQ(kind("198.18.0.31", 54720, "198.18.0.32", 8080), "fastpath");
  EXPECT_EQ(kind("198.18.0.32", 8080, "198.18.0.31", 54720), "fastpath");
  EXPECT_EQ(kind("198.18.0.32", 40000, "198.18.0.31", 8081), "fastpath");
  // Nothing listens on either port: neither end can be a fast-path server.
  EXPECT_EQ(kind("198.18.0.31", 54720, "198.18.0.32", 8082), "other");
}

TEST(ControlConns, DescribeConnectionsCarriesTheKind) {
  const WorkloadIndex index = fast_path_index();
  const std::vector<ml_sock_key> keys = {make_key("198.18.0.31", 40000, "198.18.0.32", 8080),
                                         make_key("198.18.0.31", 40001, "198.18.0.40", 8080)};
  const nlohmann::json described = describe_connections(keys, index, 10);
  ASSERT_EQ(described["connections"].size(), 2u);
  EXPECT_EQ(described["connections"][0]["kind"], "fastpath");
  EXPECT_EQ(described["connections"][0]["workload"], "f1");
  EXPECT_EQ(described["connections"][0]["remote_workload"], "f2");
  EXPECT_EQ(described["connections"][1]["kind"], "other");
}

TEST(ControlConns, EndpointsAndPeerKeys) {
  const ml_sock_key v6 = make_key("fd00::10", 8080, "fd00::20", 15006);
  EXPECT_EQ(endpoint_text(v6.local_ip6, v6.local_port), "[fd00::10]:8080");
  EXPECT_EQ(endpoint_text(v6.remote_ip6, v6.remote_port), "[fd00::20]:15006");
  const ml_sock_key peer = peer_key(v6);
  EXPECT_EQ(endpoint_text(peer.local_ip6, peer.local_port), "[fd00::20]:15006");
  EXPECT_EQ(peer.local_seq, v6.remote_seq);
  EXPECT_EQ(peer.remote_seq, v6.local_seq);
  const ml_sock_key back = peer_key(peer);
  EXPECT_EQ(std::memcmp(&back, &v6, sizeof back), 0);
  const ml_sock_key mapped = make_key("::ffff:198.18.0.1", 1, "198.18.0.2", 2);
  EXPECT_EQ(endpoint_text(mapped.local_ip6, mapped.local_port), "198.18.0.1:1");
}

}  // namespace
}  // namespace meshlane::control
