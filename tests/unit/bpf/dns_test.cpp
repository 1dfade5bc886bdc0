// DNS capture's decisions (bpf/include/meshlane/dns.h, and the TCP branch of the connect
// decision in intercept.h), checked against istio-iptables' DNS rules they mirror.
#include <gtest/gtest.h>

#include <cstdint>

#include "bpf_ip6.hpp"

extern "C" {
#include "meshlane/dns.h"
#include "meshlane/intercept.h"
}

namespace {

using meshlane::testing::Ip6;
using meshlane::testing::ip6;
using meshlane::testing::same_ip;
using meshlane::testing::set_ip;

constexpr std::uint32_t kAppUid = 1000;
constexpr std::uint32_t kProxyId = 1337;

ml_workload capturing() {
  ml_workload wl{};
  wl.id = 1;
  wl.proxy_uid = kProxyId;
  wl.proxy_gid = kProxyId;
  wl.outbound_port = 15001;
  wl.inbound_port = 15006;
  wl.flags = ML_WL_DNS_CAPTURE;
  wl.dns_proxy_port = 15053;
  wl.netns_cookie = 100;
  return wl;
}

TEST(DnsCaptures, AnAppsQueryToPort53) {
  const ml_workload wl = capturing();
  EXPECT_TRUE(ml_dns_captures(&wl, kAppUid, kAppUid, ip6("::ffff:10.96.0.10").words, 53, 0));
  EXPECT_TRUE(ml_dns_captures(&wl, kAppUid, kAppUid, ip6("fd00::a").words, 53, 0));
}

TEST(DnsCaptures, NotOtherPortsNorTheProxysOwnQueries) {
  const ml_workload wl = capturing();
  const Ip6 server = ip6("::ffff:10.96.0.10");
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, server.words, 5353, 0));
  // istio: -m owner --uid-owner 1337 -j RETURN, and the same for --gid-owner.
  EXPECT_FALSE(ml_dns_captures(&wl, kProxyId, kAppUid, server.words, 53, 0));
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kProxyId, server.words, 53, 0));
}

TEST(DnsCaptures, NotLoopbackNorExcludedCidrs) {
  const ml_workload wl = capturing();
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, ip6("::ffff:127.0.0.53").words, 53, 0));
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, ip6("::1").words, 53, 0));
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, ip6("::ffff:10.96.0.10").words, 53, 1));
}

TEST(DnsCaptures, OnlyWhenTheWorkloadAsksForItWithAProxyPort) {
  ml_workload wl = capturing();
  const Ip6 server = ip6("::ffff:10.96.0.10");
  EXPECT_FALSE(ml_dns_captures(nullptr, kAppUid, kAppUid, server.words, 53, 0));
  wl.flags = 0;
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, server.words, 53, 0));
  wl = capturing();
  wl.dns_proxy_port = 0;  // an entry written before the field existed
  EXPECT_FALSE(ml_dns_captures(&wl, kAppUid, kAppUid, server.words, 53, 0));
}

TEST(DnsProxyAddress, LoopbackOfTheFamilyAsked) {
  __u32 out[4];
  ml_dns_proxy_address(1, out);
  EXPECT_TRUE(same_ip(out, "::ffff:127.0.0.1"));
  ml_dns_proxy_address(0, out);
  EXPECT_TRUE(same_ip(out, "::1"));
}

TEST(DnsOrigin, ReplyFromTheProxyIsShownFromTheServerAsked) {
  ml_dns_origin origin{};
  const Ip6 server = ip6("::ffff:10.96.0.10");
  const Ip6 proxy = ip6("::ffff:127.0.0.1");
  EXPECT_FALSE(ml_dns_reply_from_proxy(&origin, proxy.words, 15053));  // nothing captured yet
  EXPECT_EQ(ml_dns_note_query(&origin, server.words, 53, proxy.words, 15053), 0);
  EXPECT_TRUE(ml_dns_reply_from_proxy(&origin, proxy.words, 15053));
  EXPECT_TRUE(same_ip(origin.server_ip6, "::ffff:10.96.0.10"));
  EXPECT_EQ(origin.server_port, 53);
  // Anything else the socket receives keeps its sender.
  EXPECT_FALSE(ml_dns_reply_from_proxy(&origin, proxy.words, 15054));
  EXPECT_FALSE(ml_dns_reply_from_proxy(&origin, ip6("::ffff:127.0.0.2").words, 15053));
  EXPECT_FALSE(ml_dns_reply_from_proxy(&origin, server.words, 53));
  EXPECT_FALSE(ml_dns_reply_from_proxy(nullptr, proxy.words, 15053));
}

TEST(DnsOrigin, AskingAnotherServerMovesTheRecordAndSaysSo) {
  ml_dns_origin origin{};
  const Ip6 proxy = ip6("::1");
  EXPECT_EQ(ml_dns_note_query(&origin, ip6("fd00::a").words, 53, proxy.words, 15053), 0);
  EXPECT_EQ(ml_dns_note_query(&origin, ip6("fd00::a").words, 53, proxy.words, 15053), 0);
  EXPECT_EQ(ml_dns_note_query(&origin, ip6("fd00::b").words, 53, proxy.words, 15053), 1);
  EXPECT_TRUE(same_ip(origin.server_ip6, "fd00::b"));
  EXPECT_EQ(origin.queries, 3u);
}

// TCP to port 53 is decided with the other connects (intercept.h).
ml_connect_request tcp_request(const char* dst, std::uint16_t port, std::uint32_t uid) {
  ml_connect_request req{};
  set_ip(req.dst_ip6, ip6(dst));
  req.dst_port = port;
  req.dst_is_mapped = ml_ip6_is_mapped_v4(req.dst_ip6);
  req.uid = uid;
  req.gid = uid;
  req.netns_cookie = 100;
  return req;
}

TEST(DnsCaptureTcp, AppConnectToPort53GoesToTheDnsProxyWithItsOriginalDestination) {
  const ml_workload wl = capturing();
  const ml_connect_rules rules{};
  ml_connect_verdict v{};
  ml_connect_request req = tcp_request("::ffff:10.96.0.10", 53, kAppUid);
  ml_decide_connect(&req, &wl, nullptr, &rules, &v);
  EXPECT_EQ(v.action, ML_CONNECT_REDIRECT);
  EXPECT_TRUE(same_ip(v.new_ip6, "::ffff:127.0.0.1"));
  EXPECT_EQ(v.new_port, 15053);
  EXPECT_EQ(v.counter, ML_CTR_DNS_CAPTURED_TCP);
  EXPECT_EQ(v.record_orig_dst, 1);  // SO_ORIGINAL_DST is answered
  req = tcp_request("fd00::a", 53, kAppUid);
  ml_decide_connect(&req, &wl, nullptr, &rules, &v);
  EXPECT_TRUE(same_ip(v.new_ip6, "::1"));
  EXPECT_EQ(v.new_port, 15053);
}

TEST(DnsCaptureTcp, WithoutCaptureOrFromTheProxyItIsAnOrdinaryConnect) {
  ml_workload wl = capturing();
  const ml_connect_rules rules{};
  ml_connect_verdict v{};
  ml_connect_request req = tcp_request("::ffff:10.96.0.10", 53, kProxyId);
  ml_decide_connect(&req, &wl, nullptr, &rules, &v);
  EXPECT_EQ(v.action, ML_CONNECT_PASS);
  EXPECT_EQ(v.counter, ML_CTR_BYPASS_PROXY);
  wl.flags = 0;
  req = tcp_request("::ffff:10.96.0.10", 53, kAppUid);
  ml_decide_connect(&req, &wl, nullptr, &rules, &v);
  EXPECT_EQ(v.new_port, 15001);  // the outbound sidecar, as before
  EXPECT_EQ(v.counter, ML_CTR_INTERCEPT_OUTBOUND);
}

TEST(DnsCaptureTcp, ExcludedCidrPasses) {
  const ml_workload wl = capturing();
  ml_connect_rules rules{};
  rules.out_cidr_exclude = 1;
  ml_connect_verdict v{};
  ml_connect_request req = tcp_request("::ffff:10.96.0.10", 53, kAppUid);
  ml_decide_connect(&req, &wl, nullptr, &rules, &v);
  EXPECT_EQ(v.action, ML_CONNECT_PASS);
  EXPECT_EQ(v.counter, ML_CTR_BYPASS_EXCLUDED);
}

}  // namespace
