// The skip, bypass, denied-rule and back-pressure forms of monitor events, and explain: the
// decision log, which records concern a connection, and the answer they give.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "monitor_fixtures.hpp"
#include "observe/decisions.hpp"

namespace meshlane::monitor {
namespace {

using nlohmann::json;

using namespace fixtures;  // NOLINT(google-build-using-namespace)

// pod-a's app socket 198.18.0.10:40000 -> 198.18.0.11:8080 not spliced for `reason`.
ml_event skipped_app(std::uint8_t type, std::uint8_t reason, bool client) {
  ml_event raw = spliced_proxy_to_proxy(client);
  raw.type = type;
  raw.reason = reason;
  raw.hop = ML_HOP_OTHER;
  if (client) {
    raw.dst_port = 8080;
  } else {
    raw.src_port = 8080;
  }
  return raw;
}

// pod-a's connect to 198.18.0.11:3306 left alone: its port is excluded.
ml_event bypassed(std::uint8_t reason) {
  ml_event raw{};
  raw.type = ML_EVENT_BYPASSED;
  raw.netns_cookie = kCookieA;
  set_address(raw.dst_ip6, "198.18.0.11");
  raw.dst_port = 3306;
  raw.reason = reason;
  return raw;
}

Event at(const ml_event& raw, std::int64_t offset_ns) {
  return make_event(raw, kNoon + offset_ns, index());
}

TEST(SkipEvents, EveryReasonHasItsName) {
  const std::vector<std::pair<std::uint8_t, std::string>> names = {
      {ML_SKIP_PORT, "port"},
      {ML_SKIP_WORKLOAD, "workload"},
      {ML_SKIP_PEER, "peer"},
      {ML_SKIP_BLOCKING, "blocking"},
      {ML_SKIP_SHORT, "short"},
      {ML_SKIP_STEERED, "steered"},
      {ML_SKIP_ACCEL_OFF, "acceleration_off"},
      {ML_SKIP_EXCLUDED_PORT, "excluded_port"},
      {ML_SKIP_EXCLUDED_CIDR, "excluded_cidr"},
      {ML_SKIP_PROXY, "proxy"},
      {ML_SKIP_ORIG_DST_FULL, "orig_dst_full"},
      {ML_SKIP_TC_FLOWS_FULL, "tc_flows_full"},
      {ML_SKIP_TC_FLOW_COLLISION, "tc_flow_collision"}};
  ASSERT_EQ(names.size(), static_cast<std::size_t>(ML_SKIP_MAX - 1));
  for (const auto& [reason, name] : names) {
    EXPECT_EQ(skip_reason_name(reason), name);
  }
  EXPECT_EQ(skip_reason_name(ML_SKIP_NONE), nullptr);
  EXPECT_EQ(skip_reason_name(ML_SKIP_MAX), nullptr);
  EXPECT_EQ(type_from_name("skipped"), std::optional<std::uint32_t>(ML_EVENT_SKIPPED));
  EXPECT_EQ(type_from_name("bypassed"), std::optional<std::uint32_t>(ML_EVENT_BYPASSED));
}

TEST(SkipEvents, SkippedCarriesReasonSideAndOriginalDestination) {
  ml_event raw = skipped_app(ML_EVENT_SKIPPED, ML_SKIP_PORT, true);
  const json port = event_to_json(event(raw));
  EXPECT_EQ(port["type"], "skipped");
  EXPECT_EQ(port["reason"], "port");
  EXPECT_EQ(port["side"], "client");
  EXPECT_FALSE(port.contains("orig_dst"));
  EXPECT_EQ(format_line(port),
            "12:00:00.123456  skipped          pod-a       198.18.0.10:40000 -> "
            "198.18.0.11:8080 [port, client, other]");

  // An intercepted connection's end names where its client wanted to go.
  set_address(raw.orig_dst_ip6, "198.18.0.11");
  raw.orig_dst_port = 9090;
  raw.reason = ML_SKIP_WORKLOAD;
  const json workload = event_to_json(event(raw));
  EXPECT_EQ(workload["reason"], "workload");
  EXPECT_EQ(workload["orig_dst"], "198.18.0.11:9090");

  // The older types keep their names and gain the same reason member, whatever the byte says
  // (programs before the reason byte left it 0).
  EXPECT_EQ(event_to_json(event(skipped_app(ML_EVENT_SKIPPED_BLOCKING, 0, false)))["reason"],
            "blocking");
  EXPECT_EQ(
      event_to_json(event(skipped_app(ML_EVENT_SKIPPED_SHORT, ML_SKIP_SHORT, true)))["reason"],
      "short");
  EXPECT_EQ(event_to_json(event(skipped_app(ML_EVENT_SKIPPED, 200, true)))["reason"], "unknown");
}

TEST(SkipEvents, BypassedNamesTheInterceptionRule) {
  const json port = event_to_json(event(bypassed(ML_SKIP_EXCLUDED_PORT)));
  EXPECT_EQ(port["type"], "bypassed");
  EXPECT_EQ(port["reason"], "excluded_port");
  EXPECT_EQ(port["workload"], "pod-a");
  EXPECT_EQ(port["peer_workload"], "pod-b");
  EXPECT_TRUE(port["src"].is_null());
  EXPECT_EQ(format_line(port),
            "12:00:00.123456  bypassed         pod-a       - -> 198.18.0.11:3306 [excluded_port]");
  EXPECT_EQ(event_to_json(event(bypassed(ML_SKIP_PROXY)))["reason"], "proxy");
}

TEST(DeniedEvents, CarryTheRuleOrWhyTheDefaultDenied) {
  Event by_rule = event(denied_by_rule(3));
  by_rule.rule_name = "db-in ingress[1] deny";
  const json r = event_to_json(by_rule);
  EXPECT_EQ(r["rule"], 3);
  EXPECT_EQ(r["rule_name"], "db-in ingress[1] deny");
  EXPECT_FALSE(r.contains("default_deny"));
  EXPECT_NE(format_line(r).find("[policy, rule 3 (db-in ingress[1] deny)]"), std::string::npos);

  // A rule the daemon cannot name (installed by an earlier daemon): the number alone.
  EXPECT_TRUE(event_to_json(event(denied_by_rule(3)))["rule_name"].is_null());

  const json d = event_to_json(event(denied_by_rule(ML_DENY_DEFAULT_INGRESS)));
  EXPECT_EQ(d["rule"], 0);
  EXPECT_EQ(d["default_deny"], json({"destination_ingress_isolated"}));
  EXPECT_NE(
      format_line(d).find("rule 0 (no rule matched: default deny, destination_ingress_isolated)"),
      std::string::npos);
  // A rule entry of a trie compiled before rule ids: not the default.
  const json unnamed = event_to_json(event(denied_by_rule(ML_DENY_RULE_UNNAMED)));
  EXPECT_EQ(unnamed["rule"], 0);
  EXPECT_EQ(unnamed["rule_unnamed"], true);
  EXPECT_FALSE(unnamed.contains("default_deny"));
  EXPECT_NE(format_line(unnamed).find("compiled by an earlier daemon"), std::string::npos);
  const json both =
      event_to_json(event(denied_by_rule(ML_DENY_DEFAULT_INGRESS | ML_DENY_DEFAULT_EGRESS)));
  EXPECT_EQ(both["default_deny"], json({"source_egress_isolated", "destination_ingress_isolated"}));
}

// A fallback event of a proxy-to-proxy socket, as the monitor shows it.
json fallback_event(std::uint8_t reason, std::uint32_t detail) {
  ml_event raw = spliced_proxy_to_proxy(true);
  raw.type = ML_EVENT_FALLBACK;
  raw.side = 0;
  raw.reason = reason;
  raw.detail = detail;
  return event_to_json(event(raw));
}

TEST(FallbackEvents, BackPressureSaysHowFarTheReaderWasBehind) {
  const json behind = fallback_event(ML_FALLBACK_READER_BEHIND, 300000);
  EXPECT_EQ(behind["reason"], "reader_behind");
  EXPECT_EQ(behind["unread_bytes"], 300000);
  EXPECT_FALSE(behind.contains("bytes"));
  EXPECT_NE(format_line(behind).find("[reader_behind, 300000 B unread]"), std::string::npos);

  const json peer = fallback_event(ML_FALLBACK_PEER, 512);
  EXPECT_EQ(peer["reason"], "peer_not_spliced");
  EXPECT_EQ(peer["bytes"], 512);
}

TEST(FallbackEvents, ASpinningReaderIsNamedWithTheSizeOfTheLastSend) {
  const json spinning = fallback_event(ML_FALLBACK_READER_SPINNING, 64);
  EXPECT_EQ(spinning["reason"], "reader_spinning");
  EXPECT_EQ(spinning["bytes"], 64);
  EXPECT_FALSE(spinning.contains("unread_bytes"));
}

TEST(FallbackEvents, APeerThatLeftFirstIsNamedWithTheSizeOfTheSend) {
  const json left = fallback_event(ML_FALLBACK_PEER_LEFT, 4096);
  EXPECT_EQ(left["reason"], "peer_left");
  EXPECT_EQ(left["bytes"], 4096);
  EXPECT_FALSE(left.contains("unread_bytes"));
}

// ---- explain ---------------------------------------------------------------------------------

TEST(ExplainQuery, EndpointsParseAndPrint) {
  auto v4 = parse_endpoint("198.18.0.10:40000");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->port, 40000);
  EXPECT_EQ(to_string(*v4), "198.18.0.10:40000");
  auto v6 = parse_endpoint("[fd00::10]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(to_string(*v6), "[fd00::10]:80");
  auto bare = parse_endpoint("fd00::10");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port, 0);
  EXPECT_EQ(to_string(*bare), "fd00::10");
  for (const char* bad : {"", "198.18.0.10:", "198.18.0.10:0", "198.18.0.10:65536", "[fd00::10",
                          "[fd00::10]80", "host:80", "198.18.0.10:8x"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

TEST(ExplainQuery, ParamsNeedADestinationWithAPort) {
  auto ok = parse_explain_query({{"dst", "198.18.0.11:8080"}, {"src", "198.18.0.10"}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value().dst.port, 8080);
  ASSERT_TRUE(ok.value().src);
  EXPECT_EQ(ok.value().src->port, 0);
  EXPECT_FALSE(parse_explain_query(json::object()).ok());
  EXPECT_FALSE(parse_explain_query({{"dst", "198.18.0.11"}}).ok());
  EXPECT_FALSE(parse_explain_query({{"dst", "198.18.0.11:80"}, {"src", "nope"}}).ok());
  EXPECT_FALSE(parse_explain_query({{"dst", "198.18.0.11:80"}, {"other", 1}}).ok());
}

ExplainQuery query(const std::string& src, const std::string& dst) {
  auto parsed = parse_explain_query({{"src", src}, {"dst", dst}});
  EXPECT_TRUE(parsed.ok());
  return parsed.value();
}

TEST(ExplainLog, KeepsTheLastCapacityEvents) {
  DecisionLog log(2);
  log.record(at(bypassed(ML_SKIP_EXCLUDED_PORT), 0));
  log.record(at(bypassed(ML_SKIP_EXCLUDED_CIDR), 1));
  log.record(at(bypassed(ML_SKIP_PROXY), 2));
  EXPECT_EQ(log.size(), 2u);
  EXPECT_EQ(log.recorded_total(), 3u);
  const auto found = log.matching(query("198.18.0.10:40000", "198.18.0.11:3306"));
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].raw.reason, ML_SKIP_EXCLUDED_CIDR);
  DecisionLog off(0);
  off.record(at(bypassed(ML_SKIP_PROXY), 0));
  EXPECT_EQ(off.size(), 0u);
}

TEST(ExplainMatch, SocketEventsMatchEitherEndAndTheOriginalDestination) {
  const ExplainQuery q = query("198.18.0.10:40000", "198.18.0.11:8080");
  EXPECT_TRUE(concerns(event(skipped_app(ML_EVENT_SKIPPED, ML_SKIP_PEER, true)), q));
  EXPECT_TRUE(concerns(event(skipped_app(ML_EVENT_SKIPPED, ML_SKIP_PEER, false)), q));
  EXPECT_FALSE(concerns(event(skipped_app(ML_EVENT_SKIPPED, ML_SKIP_PEER, true)),
                        query("198.18.0.10:40001", "198.18.0.11:8080")));
  // The app's socket to its sidecar, reached by the address it asked for.
  ml_event to_sidecar = spliced_proxy_to_proxy(true);
  set_address(to_sidecar.dst_ip6, "127.0.0.1");
  to_sidecar.dst_port = 15001;
  set_address(to_sidecar.orig_dst_ip6, "198.18.0.11");
  to_sidecar.orig_dst_port = 8080;
  EXPECT_TRUE(concerns(event(to_sidecar), q));
  // The app's socket is bound to 127.0.0.1 in pod-a: asked about as pod-a's address, it
  // matches only when the daemon says the address is pod-a's.
  ml_event loopback_end = to_sidecar;
  set_address(loopback_end.src_ip6, "127.0.0.1");
  const ExplainQuery by_pod = query("198.18.0.10", "198.18.0.11:8080");
  EXPECT_FALSE(concerns(event(loopback_end), by_pod));
  EXPECT_TRUE(concerns(event(loopback_end), by_pod, "pod-a"));
  EXPECT_FALSE(concerns(event(loopback_end), by_pod, "pod-b"));
  // Its connect named no client port: it matches any.
  EXPECT_TRUE(concerns(event(intercepted_outbound()), q));
  EXPECT_FALSE(concerns(event(intercepted_outbound()), query("198.18.0.10", "198.18.0.11:9090")));
}

TEST(Explain, InterceptedAndSpliced) {
  const ExplainQuery q = query("198.18.0.10:40000", "198.18.0.11:8080");
  ml_event client = skipped_app(ML_EVENT_SPLICED, 0, true);
  ml_event server = skipped_app(ML_EVENT_SPLICED, 0, false);
  const json answer = explain(q, {at(intercepted_outbound(), 0), at(client, 10), at(server, 20)},
                              {4096, 3, 3, std::string("pod-a")});
  EXPECT_EQ(answer["interception"]["decision"], "intercepted");
  EXPECT_EQ(answer["interception"]["rule"], "outbound");
  EXPECT_EQ(answer["splicing"]["decision"], "spliced");
  EXPECT_EQ(answer["records"].size(), 3u);
  EXPECT_FALSE(answer.contains("note"));
  const std::string text = format_explain(answer);
  EXPECT_NE(text.find("interception: intercepted (rule: outbound)"), std::string::npos) << text;
  EXPECT_NE(text.find("splicing: spliced"), std::string::npos) << text;
}

TEST(Explain, TheFirstSkipDecidesAndBypassNamesItsRule) {
  const ExplainQuery q = query("198.18.0.10:40000", "198.18.0.11:3306");
  ml_event client = skipped_app(ML_EVENT_SKIPPED, ML_SKIP_WORKLOAD, true);
  client.dst_port = 3306;
  ml_event server = skipped_app(ML_EVENT_SKIPPED, ML_SKIP_PEER, false);
  server.src_port = 3306;
  const json answer =
      explain(q, {at(bypassed(ML_SKIP_EXCLUDED_PORT), 0), at(client, 10), at(server, 20)},
              {4096, 3, 3, std::string("pod-a")});
  EXPECT_EQ(answer["interception"]["decision"], "not_intercepted");
  EXPECT_EQ(answer["interception"]["rule"], "excluded_port");
  EXPECT_EQ(answer["splicing"]["decision"], "not_spliced");
  EXPECT_EQ(answer["splicing"]["rule"], "workload");
  EXPECT_EQ(answer["splicing"]["side"], "client");
}

TEST(Explain, DeniedNamesTheRule) {
  Event by_rule = at(denied_by_rule(2), 0);
  by_rule.rule_name = "db-in ingress[0] deny";
  const json answer =
      explain(query("198.18.0.10", "198.18.0.11:5432"), {by_rule}, {4096, 1, 1, "pod-a"});
  EXPECT_EQ(answer["interception"]["decision"], "denied");
  EXPECT_EQ(answer["interception"]["rule"], "db-in ingress[0] deny");
  EXPECT_EQ(answer["splicing"]["decision"], "no_record");
}

// What explain says of a spliced connection whose client end then fell back for `reason`.
json explain_fallback(std::uint8_t reason, std::uint32_t detail) {
  ml_event client = skipped_app(ML_EVENT_SPLICED, 0, true);
  ml_event server = skipped_app(ML_EVENT_SPLICED, 0, false);
  ml_event fallback = client;
  fallback.type = ML_EVENT_FALLBACK;
  fallback.reason = reason;
  fallback.detail = detail;
  return explain(query("198.18.0.10:40000", "198.18.0.11:8080"),
                 {at(client, 0), at(server, 1), at(fallback, 2)}, {16, 3, 3, "pod-a"});
}

TEST(Explain, BackPressureFallback) {
  const json answer = explain_fallback(ML_FALLBACK_READER_BEHIND, 400000);
  EXPECT_EQ(answer["splicing"]["decision"], "fell_back");
  EXPECT_EQ(answer["splicing"]["rule"], "reader_behind");
}

TEST(Explain, SpinningReaderFallback) {
  const json answer = explain_fallback(ML_FALLBACK_READER_SPINNING, 64);
  EXPECT_EQ(answer["splicing"]["decision"], "fell_back");
  EXPECT_EQ(answer["splicing"]["rule"], "reader_spinning");
  EXPECT_NE(answer["splicing"]["explanation"].get<std::string>().find("leave_spinning_readers"),
            std::string::npos);
}

TEST(Explain, PeerLeftFallback) {
  const json answer = explain_fallback(ML_FALLBACK_PEER_LEFT, 64);
  EXPECT_EQ(answer["splicing"]["decision"], "fell_back");
  EXPECT_EQ(answer["splicing"]["rule"], "peer_left");
  EXPECT_NE(answer["splicing"]["explanation"].get<std::string>().find("both directions"),
            std::string::npos);
}

TEST(Explain, LoopbackIsNeverIntercepted) {
  const json answer = explain(query("127.0.0.1", "127.0.0.1:9000"), {}, {64, 0, 0, ""});
  EXPECT_EQ(answer["interception"]["decision"], "not_intercepted");
  EXPECT_EQ(answer["interception"]["rule"], "loopback");
}

TEST(Explain, NoRecordSaysWhy) {
  const json off = explain(query("198.18.0.99:1", "198.18.0.11:80"), {}, {0, 0, 0, ""});
  EXPECT_EQ(off["splicing"]["decision"], "no_record");
  // Not a workload's address: the registry says it is never intercepted.
  EXPECT_EQ(off["interception"]["decision"], "not_intercepted");
  EXPECT_EQ(off["interception"]["rule"], "not_a_workload");
  EXPECT_NE(off["note"].get<std::string>().find("daemon.decision_log = 0"), std::string::npos);
  const json none = explain(query("198.18.0.10:1", "198.18.0.11:80"), {}, {64, 10, 99, "pod-a"});
  EXPECT_EQ(none["interception"]["decision"], "no_record");
  EXPECT_NE(none["note"].get<std::string>().find("no record"), std::string::npos);
  EXPECT_NE(format_explain(none).find("no record"), std::string::npos);
}

}  // namespace
}  // namespace meshlane::monitor
