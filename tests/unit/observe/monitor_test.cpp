// meshlanectl monitor's logic: event naming, JSON and text forms, filters and their params, the
// hub's fan-out with bounded per-client queues and the kernel gate. The monitor method and its
// stream are tests/unit/daemon/monitor_method_test.cpp.

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

#include "control/server.hpp"
#include "monitor_fixtures.hpp"
#include "observe/monitor_hub.hpp"

namespace meshlane::monitor {
namespace {

using control::ControlError;
using control::ErrorCode;
using nlohmann::json;

using namespace fixtures;  // NOLINT(google-build-using-namespace)

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

  const json d = event_to_json(event(denied_by_rule(7)));
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
            "198.18.0.11:15006 [peer_not_spliced, send of 512 B]");
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
  EXPECT_TRUE(filter.ok()) << filter.error().message;
  return filter.ok() ? filter.value() : Filter{};
}

std::string rejected(const json& params) {
  auto filter = parse_filter(params);
  EXPECT_FALSE(filter.ok()) << params.dump();
  if (filter.ok()) {
    return "";
  }
  EXPECT_EQ(filter.error().code, ErrorCode::kInvalidParams);
  return filter.error().message;
}

TEST(MonitorFilter, EmptyMatchesEverything) {
  const Filter all = parsed(json::object());
  EXPECT_EQ(all.types, kAllTypes);
  EXPECT_TRUE(all.matches(event(intercepted_outbound())));
  EXPECT_TRUE(all.matches(event(spliced_proxy_to_proxy(false))));
  EXPECT_EQ(all.to_json(), json::parse(R"({"types":["intercepted","spliced","denied","map_full",
      "fallback","skipped_blocking","skipped_short","skipped","bypassed"],"workload":null,
      "port":null,"ip":null})"));
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

}  // namespace
}  // namespace meshlane::monitor
