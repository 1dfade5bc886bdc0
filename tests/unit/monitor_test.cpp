// meshlanectl monitor's logic: event naming, JSON and text forms, filters and their params, the
// hub's fan-out with bounded per-client queues and the kernel gate, the monitor method, and the
// streaming subscription served for real on a Unix socket (disconnects, slow clients).

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "meshlane/control_api.hpp"
#include "meshlane/control_client.hpp"
#include "meshlane/control_server.hpp"
#include "meshlane/monitor.hpp"

namespace meshlane::monitor {
namespace {

using control::ControlError;
using control::ErrorCode;
using nlohmann::json;

void set_address(__u32 out[4], const std::string& text) {
  IpAddress address = parse_ip_address(text).value();
  std::memcpy(out, address.bytes.data(), 16);
}

constexpr std::uint64_t kCookieA = 4242;
constexpr std::uint64_t kCookieB = 4343;
constexpr std::int64_t kNoon = 1795608000LL * 1000000000LL + 123456789;  // 2026-11-25T12:00:00Z

// pod-a: 198.18.0.10 / fd00::10 in netns kCookieA; pod-b: 198.18.0.11 in netns kCookieB.
control::WorkloadIndex index() {
  control::WorkloadIndex index;
  WorkloadConfig a = workload_preset(MeshKind::kIstio);
  a.name = "pod-a";
  a.ips = {parse_ip_address("198.18.0.10").value(), parse_ip_address("fd00::10").value()};
  index.add(a, kCookieA);
  WorkloadConfig b = workload_preset(MeshKind::kIstio);
  b.name = "pod-b";
  b.ips = {parse_ip_address("198.18.0.11").value()};
  index.add(b, kCookieB);
  return index;
}

// pod-a's app connects to pod-b:8080 and is sent to its sidecar 127.0.0.1:15001.
ml_event intercepted_outbound() {
  ml_event raw{};
  raw.type = ML_EVENT_INTERCEPTED;
  raw.netns_cookie = kCookieA;
  raw.workload_id = 1;
  set_address(raw.dst_ip6, "127.0.0.1");
  raw.dst_port = 15001;
  set_address(raw.orig_dst_ip6, "198.18.0.11");
  raw.orig_dst_port = 8080;
  raw.reason = ML_REASON_OUTBOUND;
  raw.hop = ML_HOP_APP_TO_PROXY;
  return raw;
}

// pod-a's sidecar's socket to pod-b's inbound proxy, spliced, seen from the given end.
ml_event spliced_proxy_to_proxy(bool client) {
  ml_event raw{};
  raw.type = ML_EVENT_SPLICED;
  raw.netns_cookie = client ? kCookieA : kCookieB;
  set_address(raw.src_ip6, client ? "198.18.0.10" : "198.18.0.11");
  raw.src_port = client ? 40000 : 15006;
  set_address(raw.dst_ip6, client ? "198.18.0.11" : "198.18.0.10");
  raw.dst_port = client ? 15006 : 40000;
  raw.side = client ? ML_SIDE_CLIENT : ML_SIDE_SERVER;
  raw.hop = client ? ML_HOP_PROXY_TO_PROXY : ML_HOP_OTHER;
  return raw;
}

Event event(const ml_event& raw) { return make_event(raw, kNoon, index()); }

// ---- names and forms ---------------------------------------------------------------------------

TEST(MonitorNames, TypesRoundTripAndAllExcludesNone) {
  const std::vector<std::string> names = type_names();
  ASSERT_EQ(names.size(), static_cast<std::size_t>(ML_EVENT_MAX - 1));
  EXPECT_EQ(names.front(), "intercepted");
  for (const std::string& name : names) {
    auto type = type_from_name(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(type_name(*type), name);
    EXPECT_NE(kAllTypes & type_bit(*type), 0u);
  }
  EXPECT_EQ(kAllTypes & type_bit(ML_EVENT_NONE), 0u);
  EXPECT_FALSE(type_from_name("none").has_value());
  EXPECT_FALSE(type_from_name("Spliced").has_value());
  EXPECT_STREQ(type_name(ML_EVENT_MAX), "unknown");
}

TEST(MonitorNames, ReasonsAndHopKinds) {
  EXPECT_STREQ(reason_name(ML_REASON_OUTBOUND), "outbound");
  EXPECT_STREQ(reason_name(ML_REASON_POLICY), "policy");
  EXPECT_STREQ(reason_name(ML_REASON_FAST_PATH), "fast_path");
  EXPECT_EQ(reason_name(ML_REASON_NONE), nullptr);
  EXPECT_EQ(reason_name(200), nullptr);
  EXPECT_STREQ(hop_name(ML_HOP_OTHER), "other");
  EXPECT_STREQ(hop_name(ML_HOP_APP_TO_PROXY), "app_to_proxy");
  EXPECT_STREQ(hop_name(ML_HOP_PROXY_TO_PROXY), "proxy_to_proxy");
  EXPECT_STREQ(hop_name(ML_HOP_PROXY_TO_APP), "proxy_to_app");
  EXPECT_STREQ(hop_name(ML_HOP_FAST_PATH), "fastpath");
  EXPECT_STREQ(hop_name(ML_HOP_MAX), "other");
  EXPECT_STREQ(hop_name(255), "other");
  // Every real hop kind has a name of its own.
  std::set<std::string> names;
  for (int hop = ML_HOP_OTHER; hop < ML_HOP_MAX; ++hop) {
    EXPECT_TRUE(names.insert(hop_name(static_cast<std::uint8_t>(hop))).second) << hop;
  }
}

// pod-a's app connects to pod-b:8080 and, both on the fast path, is left alone.
ml_event intercepted_fast_path() {
  ml_event raw{};
  raw.type = ML_EVENT_INTERCEPTED;
  raw.netns_cookie = kCookieA;
  raw.workload_id = 1;
  set_address(raw.dst_ip6, "198.18.0.11");
  raw.dst_port = 8080;
  set_address(raw.orig_dst_ip6, "198.18.0.11");
  raw.orig_dst_port = 8080;
  raw.reason = ML_REASON_FAST_PATH;
  raw.hop = ML_HOP_FAST_PATH;
  return raw;
}

TEST(MonitorEvent, FastPathConnectsAndSplicesAreNamed) {
  const json j = event_to_json(event(intercepted_fast_path()));
  EXPECT_EQ(j, json::parse(R"({"type":"intercepted","time":"2026-11-25T12:00:00.123456Z",
      "netns":4242,"workload":"pod-a","peer_workload":"pod-b","src":null,
      "dst":"198.18.0.11:8080","orig_dst":"198.18.0.11:8080","reason":"fast_path",
      "hop":"fastpath"})"));
  EXPECT_EQ(format_line(j),
            "12:00:00.123456  intercepted      pod-a       - -> 198.18.0.11:8080 "
            "(orig 198.18.0.11:8080) [fast_path, fastpath]");

  ml_event spliced = spliced_proxy_to_proxy(true);
  spliced.dst_port = 8080;
  spliced.hop = ML_HOP_FAST_PATH;
  const json s = event_to_json(event(spliced));
  EXPECT_EQ(s["hop"], "fastpath");
  EXPECT_EQ(s["side"], "client");
  EXPECT_EQ(s["peer_workload"], "pod-b");
  EXPECT_EQ(format_line(s),
            "12:00:00.123456  spliced          pod-a       198.18.0.10:40000 -> "
            "198.18.0.11:8080 [client, fastpath]");
}

TEST(MonitorEvent, WorkloadsComeFromTheNetnsAndTheDestination) {
  Event out = event(intercepted_outbound());
  EXPECT_EQ(out.workload, "pod-a");
  EXPECT_EQ(out.peer_workload, "pod-b");  // the pod the app asked for, not its sidecar
  ml_event local = intercepted_outbound();
  local.orig_dst_port = 0;
  EXPECT_EQ(event(local).peer_workload, "pod-a");  // 127.0.0.1 inside pod-a's namespace
  Event client = event(spliced_proxy_to_proxy(true));
  EXPECT_EQ(client.workload, "pod-a");
  EXPECT_EQ(client.peer_workload, "pod-b");
  Event server = event(spliced_proxy_to_proxy(false));
  EXPECT_EQ(server.workload, "pod-b");
  EXPECT_EQ(server.peer_workload, "pod-a");

  // Unknown namespace: the local address names the workload, if any.
  ml_event raw = spliced_proxy_to_proxy(true);
  raw.netns_cookie = 1;
  EXPECT_EQ(event(raw).workload, "pod-a");
  set_address(raw.src_ip6, "198.18.0.99");
  EXPECT_EQ(event(raw).workload, "");
}

TEST(MonitorEvent, InterceptedJsonCarriesTheOriginalDestination) {
  const json j = event_to_json(event(intercepted_outbound()));
  EXPECT_EQ(j, json::parse(R"({"type":"intercepted","time":"2026-11-25T12:00:00.123456Z",
      "netns":4242,"workload":"pod-a","peer_workload":"pod-b","src":null,
      "dst":"127.0.0.1:15001","orig_dst":"198.18.0.11:8080","reason":"outbound",
      "hop":"app_to_proxy"})"));

  ml_event tc{};
  tc.type = ML_EVENT_INTERCEPTED;
  tc.netns_cookie = kCookieB;
  set_address(tc.src_ip6, "fd00::100");
  tc.src_port = 50000;
  set_address(tc.dst_ip6, "fd00::11");
  tc.dst_port = 15006;
  set_address(tc.orig_dst_ip6, "fd00::11");
  tc.orig_dst_port = 8080;
  tc.reason = ML_REASON_INBOUND_TC;
  const json t = event_to_json(event(tc));
  EXPECT_EQ(t["src"], "[fd00::100]:50000");
  EXPECT_EQ(t["orig_dst"], "[fd00::11]:8080");
  EXPECT_EQ(t["reason"], "inbound_tc");
  EXPECT_FALSE(t.contains("hop"));  // tc does not know the hop kind
  EXPECT_EQ(t["workload"], "pod-b");
}

TEST(MonitorEvent, SocketEventsSayWhichEndAndOnlyTheClientKnowsTheHop) {
  const json client = event_to_json(event(spliced_proxy_to_proxy(true)));
  EXPECT_EQ(client["type"], "spliced");
  EXPECT_EQ(client["side"], "client");
  EXPECT_EQ(client["hop"], "proxy_to_proxy");
  EXPECT_EQ(client["src"], "198.18.0.10:40000");
  EXPECT_EQ(client["dst"], "198.18.0.11:15006");
  EXPECT_FALSE(client.contains("orig_dst"));
  const json server = event_to_json(event(spliced_proxy_to_proxy(false)));
  EXPECT_EQ(server["side"], "server");
  EXPECT_TRUE(server["hop"].is_null());

  ml_event full = spliced_proxy_to_proxy(true);
  full.type = ML_EVENT_MAP_FULL;
  full.error = -E2BIG;
  const json f = event_to_json(event(full));
  EXPECT_EQ(f["errno"], E2BIG);
  EXPECT_EQ(f["error"], std::strerror(E2BIG));

  ml_event fallback = spliced_proxy_to_proxy(true);
  fallback.type = ML_EVENT_FALLBACK;
  fallback.side = 0;
  fallback.detail = 512;
  const json b = event_to_json(event(fallback));
  EXPECT_EQ(b["bytes"], 512);
  EXPECT_FALSE(b.contains("side"));

  ml_event denied{};
  denied.type = ML_EVENT_DENIED;
  denied.netns_cookie = kCookieA;
  set_address(denied.dst_ip6, "198.18.0.11");
  denied.dst_port = 5432;
  set_address(denied.orig_dst_ip6, "198.18.0.11");
  denied.orig_dst_port = 5432;
  denied.reason = ML_REASON_POLICY;
  denied.detail = 7;
  const json d = event_to_json(event(denied));
  EXPECT_EQ(d["reason"], "policy");
  EXPECT_EQ(d["rule"], 7);
  EXPECT_EQ(d["peer_workload"], "pod-b");
}

TEST(MonitorFormat, OneReadableLinePerEvent) {
  EXPECT_EQ(format_line(event_to_json(event(intercepted_outbound()))),
            "12:00:00.123456  intercepted      pod-a       - -> 127.0.0.1:15001 "
            "(orig 198.18.0.11:8080) [outbound, app_to_proxy]");
  EXPECT_EQ(format_line(event_to_json(event(spliced_proxy_to_proxy(false)))),
            "12:00:00.123456  spliced          pod-b       198.18.0.11:15006 -> "
            "198.18.0.10:40000 [server]");
  ml_event fallback = spliced_proxy_to_proxy(true);
  fallback.type = ML_EVENT_FALLBACK;
  fallback.side = 0;
  fallback.detail = 512;
  EXPECT_EQ(format_line(event_to_json(event(fallback))),
            "12:00:00.123456  fallback         pod-a       198.18.0.10:40000 -> "
            "198.18.0.11:15006 [send of 512 B]");
  EXPECT_EQ(format_line(drop_notice(12, "client_queue")),
            "!! 12 event(s) dropped (this client read too slowly)");
  EXPECT_EQ(format_line(drop_notice(3, "kernel_ring")),
            "!! 3 event(s) dropped in the kernel (ring buffer full)");
  // Members a newer daemon adds do not break an older meshlanectl.
  json extra = event_to_json(event(intercepted_outbound()));
  extra["new_member"] = {1, 2};
  EXPECT_NE(format_line(extra).find("intercepted"), std::string::npos);
}

TEST(MonitorFormat, TimeIsUtcWithMicroseconds) {
  EXPECT_EQ(time_text(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(time_text(kNoon), "2026-11-25T12:00:00.123456Z");
}

// ---- filters ---------------------------------------------------------------------------------

Filter parsed(const json& params) {
  auto filter = parse_filter(params);
  EXPECT_TRUE(std::holds_alternative<Filter>(filter)) << std::get<ControlError>(filter).message;
  return std::holds_alternative<Filter>(filter) ? std::get<Filter>(filter) : Filter{};
}

std::string rejected(const json& params) {
  auto filter = parse_filter(params);
  EXPECT_TRUE(std::holds_alternative<ControlError>(filter)) << params.dump();
  if (!std::holds_alternative<ControlError>(filter)) {
    return "";
  }
  EXPECT_EQ(std::get<ControlError>(filter).code, ErrorCode::kInvalidParams);
  return std::get<ControlError>(filter).message;
}

TEST(MonitorFilter, EmptyMatchesEverything) {
  const Filter all = parsed(json::object());
  EXPECT_EQ(all.types, kAllTypes);
  EXPECT_TRUE(all.matches(event(intercepted_outbound())));
  EXPECT_TRUE(all.matches(event(spliced_proxy_to_proxy(false))));
  EXPECT_EQ(all.to_json(), json::parse(R"({"types":["intercepted","spliced","denied","map_full",
      "fallback","skipped_blocking","skipped_short"],"workload":null,"port":null,"ip":null})"));
}

TEST(MonitorFilter, TypesWorkloadPortAndAddressMustAllMatch) {
  const Event intercepted = event(intercepted_outbound());
  const Event client = event(spliced_proxy_to_proxy(true));
  const Event server = event(spliced_proxy_to_proxy(false));

  EXPECT_FALSE(parsed({{"types", {"spliced"}}}).matches(intercepted));
  EXPECT_TRUE(parsed({{"types", {"spliced", "intercepted"}}}).matches(intercepted));

  // A workload matches where the event happened and where it goes.
  const Filter pod_b = parsed({{"workload", "pod-b"}});
  EXPECT_TRUE(pod_b.matches(intercepted));
  EXPECT_FALSE(parsed({{"workload", "pod-c"}}).matches(intercepted));
  EXPECT_TRUE(pod_b.matches(client));
  EXPECT_TRUE(pod_b.matches(server));

  // Ports: either end or the original destination.
  EXPECT_TRUE(parsed({{"port", 8080}}).matches(intercepted));
  EXPECT_TRUE(parsed({{"port", 15001}}).matches(intercepted));
  EXPECT_TRUE(parsed({{"port", 40000}}).matches(server));
  EXPECT_FALSE(parsed({{"port", 8080}}).matches(client));

  // Addresses and prefixes, IPv4 compared in its v4-mapped form.
  EXPECT_TRUE(parsed({{"ip", "198.18.0.11"}}).matches(intercepted));
  EXPECT_TRUE(parsed({{"ip", "198.18.0.0/24"}}).matches(client));
  EXPECT_FALSE(parsed({{"ip", "198.18.1.0/24"}}).matches(client));
  EXPECT_TRUE(parsed({{"ip", "::ffff:198.18.0.10"}}).matches(client));
  EXPECT_FALSE(parsed({{"ip", "fd00::/8"}}).matches(client));

  const Filter all_of = parsed({{"types", {"spliced"}}, {"workload", "pod-b"}, {"port", 15006}});
  EXPECT_TRUE(all_of.matches(client));
  EXPECT_FALSE(all_of.matches(intercepted));
  EXPECT_EQ(all_of.to_json(),
            json::parse(R"({"types":["spliced"],"workload":"pod-b","port":15006,"ip":null})"));
  EXPECT_EQ(parsed({{"ip", "198.18.0.0/15"}}).to_json()["ip"], "198.18.0.0/15");
  EXPECT_EQ(parsed({{"ip", "fd00::10"}}).to_json()["ip"], "fd00::10");
}

TEST(MonitorFilter, BadParamsAreNamed) {
  EXPECT_NE(rejected({{"type", {"spliced"}}}).find("type"), std::string::npos);
  EXPECT_NE(rejected({{"types", {"spliced", "nope"}}}).find("params.types[1]: \"nope\""),
            std::string::npos);
  EXPECT_NE(rejected({{"types", json::array()}}).find("params.types"), std::string::npos);
  EXPECT_NE(rejected({{"types", "spliced"}}).find("params.types"), std::string::npos);
  EXPECT_NE(rejected({{"port", 0}}).find("params.port"), std::string::npos);
  EXPECT_NE(rejected({{"port", 70000}}).find("params.port"), std::string::npos);
  EXPECT_NE(rejected({{"ip", "198.18.0.300"}}).find("params.ip"), std::string::npos);
  EXPECT_NE(rejected({{"ip", "198.18.0.1/15"}}).find("params.ip"), std::string::npos);
  EXPECT_NE(rejected({{"workload", 3}}).find("params.workload"), std::string::npos);
}

// ---- the hub -----------------------------------------------------------------------------------

struct GateLog {
  std::vector<std::uint64_t> masks;
  Hub::GateFn fn() {
    return [this](std::uint64_t mask) { masks.push_back(mask); };
  }
};

std::vector<json> lines_of(const std::string& text) {
  std::vector<json> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    EXPECT_NE(end, std::string::npos) << "unterminated line in " << text;
    if (end == std::string::npos) {
      break;
    }
    lines.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return lines;
}

TEST(MonitorHub, GateIsTheUnionOfSubscribedTypesAndOffWhenNobodyListens) {
  GateLog gate;
  Hub hub(gate.fn());
  EXPECT_EQ(hub.gate(), 0u);
  auto spliced = hub.subscribe(parsed({{"types", {"spliced"}}}));
  auto denied = hub.subscribe(parsed({{"types", {"denied", "spliced"}}}));
  EXPECT_EQ(hub.gate(), type_bit(ML_EVENT_SPLICED) | type_bit(ML_EVENT_DENIED));
  spliced->stop();
  EXPECT_EQ(hub.gate(), type_bit(ML_EVENT_SPLICED) | type_bit(ML_EVENT_DENIED));
  EXPECT_EQ(hub.subscribers(), 1u);
  denied.reset();  // a subscription dropped without stop() unsubscribes too
  EXPECT_EQ(hub.subscribers(), 0u);
  EXPECT_EQ(hub.gate(), 0u);
  // Written only on change.
  EXPECT_EQ(gate.masks, (std::vector<std::uint64_t>{
                            type_bit(ML_EVENT_SPLICED),
                            type_bit(ML_EVENT_SPLICED) | type_bit(ML_EVENT_DENIED), 0}));
}

TEST(MonitorHub, EventsGoOnlyToMatchingSubscribersInOrder) {
  GateLog gate;
  Hub hub(gate.fn());
  auto all = hub.subscribe(Filter{});
  auto spliced = hub.subscribe(parsed({{"types", {"spliced"}}}));
  int wakes = 0;
  all->start([&wakes] { ++wakes; });
  hub.publish(event(intercepted_outbound()));
  hub.publish(event(spliced_proxy_to_proxy(true)));
  EXPECT_GE(wakes, 1);
  std::string out;
  ASSERT_TRUE(all->take(out));
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "intercepted");
  EXPECT_EQ(lines[1]["type"], "spliced");
  out.clear();
  EXPECT_FALSE(all->take(out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(spliced->take(out));
  lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["type"], "spliced");
}

TEST(MonitorHub, AFullQueueDropsNewEventsAndSaysHowManyAfterTheQueuedOnes) {
  GateLog gate;
  Hub hub(gate.fn(), 4);
  auto slow = hub.subscribe(Filter{});
  auto fast = hub.subscribe(Filter{});
  for (int i = 0; i < 10; ++i) {
    ml_event raw = spliced_proxy_to_proxy(true);
    raw.src_port = static_cast<std::uint16_t>(41000 + i);
    hub.publish(event(raw));
    if (i % 2 == 1) {
      std::string ignored;
      fast->take(ignored);  // keeps up
    }
  }
  EXPECT_EQ(slow->queued(), 4u);
  EXPECT_EQ(slow->dropped_total(), 6u);
  EXPECT_EQ(fast->dropped_total(), 0u);
  std::string out;
  ASSERT_TRUE(slow->take(out));
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(lines[i]["src"], "198.18.0.10:" + std::to_string(41000 + i));  // the oldest kept
  }
  EXPECT_EQ(lines[4], drop_notice(6, "client_queue"));
  // Reported once; the queue takes events again.
  hub.publish(event(intercepted_outbound()));
  out.clear();
  ASSERT_TRUE(slow->take(out));
  lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["type"], "intercepted");
}

TEST(MonitorHub, KernelDropsReachEverySubscriberWhateverItsFilter) {
  GateLog gate;
  Hub hub(gate.fn());
  auto a = hub.subscribe(parsed({{"types", {"denied"}}}));
  auto b = hub.subscribe(Filter{});
  bool woken = false;
  a->start([&woken] { woken = true; });
  hub.publish_kernel_drops(5);
  EXPECT_TRUE(woken);
  for (auto* subscription : {a.get(), b.get()}) {
    std::string out;
    ASSERT_TRUE(subscription->take(out));
    EXPECT_EQ(lines_of(out), std::vector<json>{drop_notice(5, "kernel_ring")});
  }
}

TEST(MonitorHub, SubscriptionsMayOutliveTheHub) {
  std::shared_ptr<Subscription> left;
  {
    GateLog gate;
    Hub hub(gate.fn());
    left = hub.subscribe(Filter{});
  }
  left->stop();  // no hub to detach from: nothing happens
  std::string out;
  EXPECT_FALSE(left->take(out));
}

TEST(MonitorHub, AWakeUpThatEndsASubscriptionDoesNotDisturbTheOthers) {
  GateLog gate;
  Hub hub(gate.fn());
  auto first = hub.subscribe(Filter{});
  auto second = hub.subscribe(Filter{});
  first->start([&first] { first->stop(); });  // as a session closing on a failed write
  hub.publish(event(intercepted_outbound()));
  EXPECT_EQ(hub.subscribers(), 1u);
  std::string out;
  EXPECT_TRUE(second->take(out));
}

// ---- the monitor method --------------------------------------------------------------------

class HubBackend final : public control::ControlBackend {
 public:
  explicit HubBackend(Hub* hub) : hub_(hub) {}
  json status() override { return json::object(); }
  Result<Counters> counters() override { return Counters{}; }
  Result<std::vector<ml_sock_key>> sockhash_keys() override { return std::vector<ml_sock_key>{}; }
  std::optional<std::uint64_t> netns_cookie(const std::string&) override { return std::nullopt; }
  control::Outcome<std::shared_ptr<Subscription>> subscribe(const Filter& filter) override {
    if (hub_ == nullptr) {
      return ControlBackend::subscribe(filter);
    }
    return hub_->subscribe(filter);
  }

 private:
  Hub* hub_;
};

class MonitorMethodTest : public ::testing::Test {
 protected:
  MonitorMethodTest()
      : registry_([](const std::vector<WorkloadConfig>&) { return Status(); },
                  [](const std::vector<WorkloadConfig>&) { return Status(); }) {}

  control::Reply send(control::ControlApi& api, const json& params,
                      const control::PeerCredentials& peer = {1, 0, 0, {}}) {
    std::string line = control::encode_request(9, "monitor", params);
    line.pop_back();
    return api.handle_line(peer, line);
  }

  GateLog gate_;
  Hub hub_{gate_.fn()};
  control::WorkloadRegistry registry_;
};

TEST_F(MonitorMethodTest, AcknowledgesWithTheFilterAndHandsOverTheStream) {
  HubBackend backend(&hub_);
  control::ControlApi api(backend, registry_, {});
  control::Reply reply = send(api, {{"types", {"spliced"}}, {"port", 15006}});
  ASSERT_NE(reply.stream, nullptr);
  EXPECT_FALSE(reply.close);
  auto response = control::parse_response(reply.line.substr(0, reply.line.size() - 1));
  ASSERT_TRUE(response.ok());
  ASSERT_TRUE(response->result.has_value()) << reply.line;
  EXPECT_EQ(response->id, 9);
  EXPECT_EQ((*response->result)["subscribed"], true);
  EXPECT_EQ((*response->result)["filter"]["types"], json::array({"spliced"}));
  EXPECT_EQ((*response->result)["filter"]["port"], 15006);
  EXPECT_EQ((*response->result)["queue_limit"], kDefaultQueueLimit);
  EXPECT_EQ(hub_.gate(), type_bit(ML_EVENT_SPLICED));
  reply.stream->stop();
  EXPECT_EQ(hub_.gate(), 0u);
}

TEST_F(MonitorMethodTest, BadFiltersAccessAndNoMonitorAreErrors) {
  HubBackend backend(&hub_);
  control::ControlApi api(backend, registry_, {});
  control::Reply bad = send(api, {{"types", {"nope"}}});
  EXPECT_EQ(bad.stream, nullptr);
  EXPECT_NE(bad.line.find("invalid_params"), std::string::npos) << bad.line;
  control::Reply denied = send(api, json::object(), {2, 65534, 65534, {}});
  EXPECT_EQ(denied.stream, nullptr);
  EXPECT_NE(denied.line.find("permission_denied"), std::string::npos) << denied.line;
  EXPECT_EQ(hub_.subscribers(), 0u);

  // call() has nowhere to put a stream.
  control::Request request;
  request.method = "monitor";
  auto outcome = api.call({1, 0, 0, {}}, request);
  ASSERT_TRUE(std::holds_alternative<ControlError>(outcome));
  EXPECT_EQ(std::get<ControlError>(outcome).code, ErrorCode::kInternal);
  EXPECT_EQ(hub_.subscribers(), 0u);

  HubBackend none(nullptr);
  control::ControlApi without(none, registry_, {});
  control::Reply unavailable = send(without, json::object());
  EXPECT_EQ(unavailable.stream, nullptr);
  EXPECT_NE(unavailable.line.find("unavailable"), std::string::npos) << unavailable.line;
}

// ---- streaming on a real socket --------------------------------------------------------------

class MonitorStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "meshlane-mon-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    options_.path = dir_ + "/ctl.sock";
    options_.mode = 0600;
    options_.idle_timeout = std::chrono::milliseconds(300);  // streams must outlive it
    hub_ = std::make_unique<Hub>([this](std::uint64_t mask) { gate_ = mask; }, 8);
    backend_ = std::make_unique<HubBackend>(hub_.get());
    api_ = std::make_unique<control::ControlApi>(*backend_, registry_, control::AccessPolicy{});
    auto server = control::Server::start(
        io_, options_, [this](const control::PeerCredentials& peer, std::string_view line) {
          return api_->handle_line(peer, line);
        });
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server.value());
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    on_io([this] { server_.reset(); });
    io_.stop();
    thread_.join();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Runs fn on the io thread (the hub and the server live there) and waits for it.
  template <typename Fn>
  void on_io(Fn fn) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void publish(const ml_event& raw, int times = 1) {
    on_io([&] {
      for (int i = 0; i < times; ++i) {
        hub_->publish(event(raw));
      }
    });
  }

  std::size_t subscribers() {
    std::size_t count = 0;
    on_io([&] { count = hub_->subscribers(); });
    return count;
  }

  bool wait_for_subscribers(std::size_t wanted) {
    for (int i = 0; i < 200; ++i) {
      if (subscribers() == wanted) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  control::Client subscribe(const json& params) {
    auto client = control::Client::connect(options_.path, std::chrono::milliseconds(5000));
    EXPECT_TRUE(client.ok());
    auto ack = client->call("monitor", params);
    EXPECT_TRUE(ack.ok() && ack->result.has_value());
    EXPECT_TRUE(wait_for_subscribers(1));
    return std::move(client.value());
  }

  std::string dir_;
  control::ServerOptions options_;
  boost::asio::io_context io_;
  std::atomic<std::uint64_t> gate_{0};
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<HubBackend> backend_;
  control::WorkloadRegistry registry_{[](const std::vector<WorkloadConfig>&) { return Status(); },
                                      [](const std::vector<WorkloadConfig>&) { return Status(); }};
  std::unique_ptr<control::ControlApi> api_;
  std::unique_ptr<control::Server> server_;
  std::thread thread_;
};

TEST_F(MonitorStreamTest, EventsFollowTheAcknowledgementPastTheIdleTimeout) {
  control::Client client = subscribe({{"types", {"intercepted"}}});
  EXPECT_EQ(gate_.load(), type_bit(ML_EVENT_INTERCEPTED));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // twice the idle timeout
  publish(spliced_proxy_to_proxy(true));                        // filtered out
  publish(intercepted_outbound());
  auto line = client.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  const json first = json::parse(line.value());
  EXPECT_EQ(first["type"], "intercepted");
  EXPECT_EQ(first["orig_dst"], "198.18.0.11:8080");
  // Requests sent on a stream are not answered; the stream goes on.
  ASSERT_TRUE(client.send_raw(control::encode_request(2, "status", json::object())).ok());
  publish(intercepted_outbound());
  line = client.read_line();
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(json::parse(line.value())["type"], "intercepted");
}

TEST_F(MonitorStreamTest, DisconnectingEndsTheSubscriptionAndClearsTheGate) {
  {
    control::Client client = subscribe(json::object());
    EXPECT_EQ(gate_.load(), kAllTypes);
  }
  EXPECT_TRUE(wait_for_subscribers(0));
  EXPECT_EQ(gate_.load(), 0u);

  // Shutting down the sending side ends it too.
  control::Client half = subscribe(json::object());
  ASSERT_EQ(::shutdown(half.fd(), SHUT_WR), 0);
  EXPECT_TRUE(wait_for_subscribers(0));
  EXPECT_EQ(gate_.load(), 0u);
}

TEST_F(MonitorStreamTest, ASlowClientLosesEventsNotTheDaemon) {
  control::Client slow = subscribe(json::object());
  // Far more than the socket buffers and the queue of 8 hold, while the client reads nothing;
  // in batches, so that the daemon writes between them until the socket is full.
  constexpr int kBatches = 100;
  constexpr int kBatch = 200;
  constexpr int kEvents = kBatches * kBatch;
  for (int i = 0; i < kBatches; ++i) {
    publish(spliced_proxy_to_proxy(true), kBatch);
  }
  // The daemon still answers others at once.
  auto other = control::Client::connect(options_.path, std::chrono::milliseconds(2000));
  ASSERT_TRUE(other.ok());
  auto status = other->call("stats", json::object());
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_TRUE(status->result.has_value());

  // Reading now: events, then a drop notice; delivered + dropped = published.
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  while (delivered + dropped < kEvents) {
    auto line = slow.read_line();
    ASSERT_TRUE(line.ok()) << line.error().message() << " after " << delivered << " + " << dropped;
    const json j = json::parse(line.value());
    if (j["type"] == "dropped") {
      EXPECT_EQ(j["source"], "client_queue");
      dropped += j["count"].get<std::uint64_t>();
    } else {
      ++delivered;
    }
  }
  EXPECT_EQ(delivered + dropped, static_cast<std::uint64_t>(kEvents));
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(delivered, 0u);
}

}  // namespace
}  // namespace meshlane::monitor
