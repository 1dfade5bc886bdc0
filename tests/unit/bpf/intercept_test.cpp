// The connect interception decision shared with the cgroup connect4/connect6 programs
// (bpf/include/meshlane/intercept.h), checked against the istio-iptables behaviour it mirrors.
// Over 600 lines on purpose: every case of this one decision function, side by side.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "bpf_ip6.hpp"

extern "C" {
#include "meshlane/intercept.h"
}

namespace {

constexpr std::uint64_t kSelfCookie = 100;
constexpr std::uint64_t kOtherCookie = 200;
constexpr std::uint32_t kAppUid = 1000;
constexpr std::uint32_t kProxyId = 1337;

using meshlane::testing::Ip6;
using meshlane::testing::ip6;
using meshlane::testing::same_ip;
using meshlane::testing::set_ip;

// The pod making the connect: istio-style sidecar, addresses 10.0.0.5 and fd00::5.
ml_workload istio_self() {
  ml_workload wl{};
  wl.id = 1;
  wl.proxy_uid = kProxyId;
  wl.proxy_gid = kProxyId;
  wl.outbound_port = 15001;
  wl.inbound_port = 15006;
  wl.passthrough_count = 2;
  set_ip(wl.passthrough_ip6[0], ip6("::ffff:127.0.0.6"));
  set_ip(wl.passthrough_ip6[1], ip6("::6"));
  wl.netns_cookie = kSelfCookie;
  return wl;
}

// The same pod under a mesh without passthrough sources (linkerd).
ml_workload linkerd_self() {
  ml_workload wl{};
  wl.id = 1;
  wl.proxy_uid = 2102;
  wl.proxy_gid = 2102;
  wl.outbound_port = 4140;
  wl.inbound_port = 4143;
  wl.netns_cookie = kSelfCookie;
  return wl;
}

// Another pod on this node, 10.0.0.6 / fd00::6, with a different inbound port so that the
// tests can tell whose port a redirect used.
ml_workload other_pod() {
  ml_workload wl{};
  wl.id = 2;
  wl.proxy_uid = kProxyId;
  wl.proxy_gid = kProxyId;
  wl.outbound_port = 15001;
  wl.inbound_port = 15106;
  wl.netns_cookie = kOtherCookie;
  return wl;
}

ml_connect_request request(const char* dst, std::uint16_t port, std::uint32_t uid = kAppUid,
                           std::uint32_t gid = kAppUid) {
  ml_connect_request req{};
  const Ip6 address = ip6(dst);
  set_ip(req.dst_ip6, address);
  req.dst_port = port;
  req.dst_is_mapped = static_cast<__u16>(ml_ip6_is_mapped_v4(address.words));
  req.uid = uid;
  req.gid = gid;
  req.netns_cookie = kSelfCookie;
  return req;
}

ml_connect_request proxy_request(const char* dst, std::uint16_t port) {
  return request(dst, port, kProxyId, kProxyId);
}

// Runs the decision on a verdict pre-filled with junk, so fields it forgets to set show.
ml_connect_verdict decide(const ml_connect_request& req, const ml_workload* self,
                          const ml_workload* dst_pod, const ml_connect_rules& rules = {}) {
  ml_connect_verdict verdict;
  std::memset(&verdict, 0xa5, sizeof(verdict));
  ml_decide_connect(&req, self, dst_pod, &rules, &verdict);
  return verdict;
}

void expect_pass(const ml_connect_verdict& v, std::uint32_t counter, std::uint8_t hop) {
  EXPECT_EQ(v.action, static_cast<std::uint32_t>(ML_CONNECT_PASS));
  EXPECT_EQ(v.counter, counter);
  EXPECT_EQ(v.hop, hop);
  EXPECT_EQ(v.record_orig_dst, 0);
}

void expect_redirect(const ml_connect_verdict& v, const char* address, std::uint16_t port,
                     std::uint32_t counter, std::uint8_t hop) {
  EXPECT_EQ(v.action, static_cast<std::uint32_t>(ML_CONNECT_REDIRECT));
  EXPECT_TRUE(same_ip(v.new_ip6, address));
  EXPECT_EQ(v.new_port, port);
  EXPECT_EQ(v.counter, counter);
  EXPECT_EQ(v.hop, hop);
  EXPECT_EQ(v.record_orig_dst, 1);
}

// ---- Not a workload -------------------------------------------------------------------------

TEST(InterceptConnect, NotAWorkloadPasses) {
  const ml_workload other = other_pod();
  expect_pass(decide(request("::ffff:93.184.216.34", 80), nullptr, nullptr), ML_CTR_MAX,
              ML_HOP_OTHER);
  // Even as uid 1337 and towards a local pod: only workloads are intercepted.
  expect_pass(decide(proxy_request("::ffff:10.0.0.6", 8080), nullptr, &other), ML_CTR_MAX,
              ML_HOP_OTHER);
}

// ---- Application connects -------------------------------------------------------------------

TEST(InterceptConnect, AppToRemoteIpv4GoesToOutboundProxyOnMappedLoopback) {
  const ml_workload self = istio_self();
  expect_redirect(decide(request("::ffff:93.184.216.34", 80), &self, nullptr), "::ffff:127.0.0.1",
                  15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, AppToRemoteIpv6GoesToOutboundProxyOnIpv6Loopback) {
  const ml_workload self = istio_self();
  expect_redirect(decide(request("2001:db8::10", 443), &self, nullptr), "::1", 15001,
                  ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, AppToAnotherLocalPodGoesToItsOwnOutboundProxy) {
  const ml_workload self = istio_self();
  const ml_workload other = other_pod();
  expect_redirect(decide(request("::ffff:10.0.0.6", 8080), &self, &other), "::ffff:127.0.0.1",
                  15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, OutboundPortComesFromTheWorkload) {
  const ml_workload self = linkerd_self();
  expect_redirect(decide(request("::ffff:93.184.216.34", 80), &self, nullptr), "::ffff:127.0.0.1",
                  4140, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, AppToLoopbackPasses) {
  const ml_workload self = istio_self();
  expect_pass(decide(request("::ffff:127.0.0.1", 8080), &self, nullptr), ML_CTR_MAX, ML_HOP_OTHER);
  expect_pass(decide(request("::ffff:127.1.2.3", 8080), &self, nullptr), ML_CTR_MAX, ML_HOP_OTHER);
  expect_pass(decide(request("::1", 8080), &self, nullptr), ML_CTR_MAX, ML_HOP_OTHER);
}

TEST(InterceptConnect, AppToItsOwnPodAddressPasses) {
  const ml_workload self = istio_self();
  // The pod_ips lookup of its own address returns its own workload (same netns cookie).
  expect_pass(decide(request("::ffff:10.0.0.5", 8080), &self, &self), ML_CTR_MAX, ML_HOP_OTHER);
  expect_pass(decide(request("fd00::5", 8080), &self, &self), ML_CTR_MAX, ML_HOP_OTHER);
}

TEST(InterceptConnect, AppToExcludedPortPasses) {
  const ml_workload self = istio_self();
  ml_connect_rules rules{};
  rules.out_port = ML_RULE_EXCLUDE;
  expect_pass(decide(request("::ffff:93.184.216.34", 5432), &self, nullptr, rules),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
  expect_pass(decide(request("2001:db8::10", 5432), &self, nullptr, rules), ML_CTR_BYPASS_EXCLUDED,
              ML_HOP_OTHER);
}

TEST(InterceptConnect, IncludeOutboundPortsInterceptsOnlyListedPorts) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_INCLUDE_OUT_PORTS;
  ml_connect_rules unlisted{};
  expect_pass(decide(request("::ffff:93.184.216.34", 5432), &self, nullptr, unlisted),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);

  ml_connect_rules listed{};
  listed.out_port = ML_RULE_INCLUDE;
  expect_redirect(decide(request("::ffff:93.184.216.34", 80), &self, nullptr, listed),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);

  // Outside include mode an include rule changes nothing.
  const ml_workload plain = istio_self();
  expect_redirect(decide(request("::ffff:93.184.216.34", 80), &plain, nullptr, listed),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, AppToExcludedCidrPasses) {
  const ml_workload self = istio_self();
  ml_connect_rules rules{};
  rules.out_cidr_exclude = 1;
  expect_pass(decide(request("::ffff:169.254.169.254", 80), &self, nullptr, rules),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
}

TEST(InterceptConnect, IncludeOutboundCidrsInterceptsOnlyIncludedAddresses) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_INCLUDE_OUT_CIDRS;
  ml_connect_rules outside{};
  expect_pass(decide(request("::ffff:93.184.216.34", 80), &self, nullptr, outside),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);

  ml_connect_rules inside{};
  inside.out_cidr_include = 1;
  expect_redirect(decide(request("::ffff:10.96.0.10", 80), &self, nullptr, inside),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);

  // Exclusion wins over inclusion.
  ml_connect_rules both = inside;
  both.out_cidr_exclude = 1;
  expect_pass(decide(request("::ffff:10.96.0.10", 80), &self, nullptr, both),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
}

TEST(InterceptConnect, SidecarlessGoesToTheNodeProxy) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_NODE_PROXY;
  set_ip(self.node_proxy_ip6, ip6("::ffff:192.0.2.1"));
  self.node_proxy_port = 15008;
  expect_redirect(decide(request("::ffff:93.184.216.34", 80), &self, nullptr), "::ffff:192.0.2.1",
                  15008, ML_CTR_INTERCEPT_NODE_PROXY, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, SidecarlessWithoutPortUsesTheOutboundPort) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_NODE_PROXY;
  set_ip(self.node_proxy_ip6, ip6("fd00::1"));
  self.node_proxy_port = 0;
  expect_redirect(decide(request("2001:db8::10", 443), &self, nullptr), "fd00::1", 15001,
                  ML_CTR_INTERCEPT_NODE_PROXY, ML_HOP_APP_TO_PROXY);
}

TEST(InterceptConnect, SidecarlessStillHonoursLoopbackAndExclusions) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_NODE_PROXY;
  set_ip(self.node_proxy_ip6, ip6("::ffff:192.0.2.1"));
  expect_pass(decide(request("::ffff:127.0.0.1", 8080), &self, nullptr), ML_CTR_MAX, ML_HOP_OTHER);
  ml_connect_rules rules{};
  rules.out_port = ML_RULE_EXCLUDE;
  expect_pass(decide(request("::ffff:93.184.216.34", 22), &self, nullptr, rules),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
}

// ---- The proxy's own connects ---------------------------------------------------------------

TEST(InterceptConnect, ProxyUidAloneMakesItTheProxy) {
  const ml_workload self = istio_self();
  expect_pass(decide(request("::ffff:93.184.216.34", 80, kProxyId, kAppUid), &self, nullptr),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
}

TEST(InterceptConnect, ProxyGidAloneMakesItTheProxy) {
  const ml_workload self = istio_self();
  expect_pass(decide(request("::ffff:93.184.216.34", 80, kAppUid, kProxyId), &self, nullptr),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
}

TEST(InterceptConnect, ProxyToNonWorkloadAddressPasses) {
  const ml_workload self = istio_self();
  expect_pass(decide(proxy_request("::ffff:93.184.216.34", 80), &self, nullptr),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
  expect_pass(decide(proxy_request("2001:db8::10", 443), &self, nullptr), ML_CTR_BYPASS_PROXY,
              ML_HOP_OTHER);
  // Its own listeners on loopback, e.g. the agent: not a pod address.
  expect_pass(decide(proxy_request("::ffff:127.0.0.1", 15020), &self, nullptr), ML_CTR_BYPASS_PROXY,
              ML_HOP_OTHER);
}

TEST(InterceptConnect, ProxyToAnotherLocalPodGoesToThatPodsInboundProxy) {
  const ml_workload self = istio_self();
  const ml_workload other = other_pod();
  expect_redirect(decide(proxy_request("::ffff:10.0.0.6", 8080), &self, &other), "::ffff:10.0.0.6",
                  15106, ML_CTR_INTERCEPT_INBOUND, ML_HOP_PROXY_TO_PROXY);
  expect_redirect(decide(proxy_request("fd00::6", 8080), &self, &other), "fd00::6", 15106,
                  ML_CTR_INTERCEPT_INBOUND, ML_HOP_PROXY_TO_PROXY);
}

TEST(InterceptConnect, ProxyToAnotherPodsInboundPortPasses) {
  const ml_workload self = istio_self();
  const ml_workload other = other_pod();
  expect_pass(decide(proxy_request("::ffff:10.0.0.6", 15106), &self, &other), ML_CTR_BYPASS_PROXY,
              ML_HOP_OTHER);
}

TEST(InterceptConnect, ProxyToAPodPortExcludedInboundPasses) {
  const ml_workload self = istio_self();
  const ml_workload other = other_pod();
  ml_connect_rules rules{};
  rules.dst_in_port = ML_RULE_EXCLUDE;  // e.g. 15020, the pod's health port
  expect_pass(decide(proxy_request("::ffff:10.0.0.6", 15020), &self, &other, rules),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
}

TEST(InterceptConnect, ProxyToAPodInIncludeInboundModeOnlyForListedPorts) {
  const ml_workload self = istio_self();
  ml_workload other = other_pod();
  other.flags |= ML_WL_INCLUDE_IN_PORTS;
  ml_connect_rules unlisted{};
  expect_pass(decide(proxy_request("::ffff:10.0.0.6", 9090), &self, &other, unlisted),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);

  ml_connect_rules listed{};
  listed.dst_in_port = ML_RULE_INCLUDE;
  expect_redirect(decide(proxy_request("::ffff:10.0.0.6", 8080), &self, &other, listed),
                  "::ffff:10.0.0.6", 15106, ML_CTR_INTERCEPT_INBOUND, ML_HOP_PROXY_TO_PROXY);
}

TEST(InterceptConnect, ProxyIncludeInboundModeIsTheDestinationPodsNotItsOwn) {
  ml_workload self = istio_self();
  self.flags |= ML_WL_INCLUDE_IN_PORTS;  // irrelevant: the rule belongs to the destination
  const ml_workload other = other_pod();
  expect_redirect(decide(proxy_request("::ffff:10.0.0.6", 8080), &self, &other), "::ffff:10.0.0.6",
                  15106, ML_CTR_INTERCEPT_INBOUND, ML_HOP_PROXY_TO_PROXY);
}

TEST(InterceptConnect, ProxyToOwnPodFromPassthroughSourceIsTheInboundUpstream) {
  const ml_workload self = istio_self();
  ml_connect_request v4 = proxy_request("::ffff:10.0.0.5", 8080);
  set_ip(v4.src_ip6, ip6("::ffff:127.0.0.6"));
  expect_pass(decide(v4, &self, &self), ML_CTR_MAX, ML_HOP_PROXY_TO_APP);

  ml_connect_request v6 = proxy_request("fd00::5", 8080);
  set_ip(v6.src_ip6, ip6("::6"));
  expect_pass(decide(v6, &self, &self), ML_CTR_MAX, ML_HOP_PROXY_TO_APP);
}

TEST(InterceptConnect, ProxyToOwnPodFromOtherSourceGoesToOwnInboundWithPassthroughSources) {
  // istio: -o lo ! -d 127.0.0.1 --uid-owner 1337 -j ISTIO_IN_REDIRECT.
  const ml_workload self = istio_self();
  ml_connect_request unbound = proxy_request("::ffff:10.0.0.5", 8080);
  expect_redirect(decide(unbound, &self, &self), "::ffff:10.0.0.5", 15006, ML_CTR_INTERCEPT_INBOUND,
                  ML_HOP_PROXY_TO_PROXY);

  ml_connect_request bound = proxy_request("fd00::5", 8080);
  set_ip(bound.src_ip6, ip6("fd00::5"));
  expect_redirect(decide(bound, &self, &self), "fd00::5", 15006, ML_CTR_INTERCEPT_INBOUND,
                  ML_HOP_PROXY_TO_PROXY);

  // Another loopback source is not a passthrough source.
  ml_connect_request crossed = proxy_request("::ffff:10.0.0.5", 8080);
  set_ip(crossed.src_ip6, ip6("::ffff:127.0.0.7"));
  expect_redirect(decide(crossed, &self, &self), "::ffff:10.0.0.5", 15006, ML_CTR_INTERCEPT_INBOUND,
                  ML_HOP_PROXY_TO_PROXY);
}

TEST(InterceptConnect, PassthroughSourcesBeyondTheCountAreIgnored) {
  ml_workload self = istio_self();
  self.passthrough_count = 1;  // only 127.0.0.6 valid; ::6 is a stale entry
  ml_connect_request v6 = proxy_request("fd00::5", 8080);
  set_ip(v6.src_ip6, ip6("::6"));
  expect_redirect(decide(v6, &self, &self), "fd00::5", 15006, ML_CTR_INTERCEPT_INBOUND,
                  ML_HOP_PROXY_TO_PROXY);
}

TEST(InterceptConnect, ProxyToOwnPodWithoutPassthroughSourcesIsProxyToApp) {
  // linkerd: the inbound proxy reaches its app on the pod address from any source.
  const ml_workload self = linkerd_self();
  ml_connect_request req = request("::ffff:10.0.0.5", 8080, 2102, 2102);
  expect_pass(decide(req, &self, &self), ML_CTR_MAX, ML_HOP_PROXY_TO_APP);
  set_ip(req.src_ip6, ip6("::ffff:10.0.0.5"));
  expect_pass(decide(req, &self, &self), ML_CTR_MAX, ML_HOP_PROXY_TO_APP);
}

TEST(InterceptConnect, ProxyToOwnPodsInboundPortOrExcludedPortPasses) {
  const ml_workload self = istio_self();
  expect_pass(decide(proxy_request("::ffff:10.0.0.5", 15006), &self, &self), ML_CTR_BYPASS_PROXY,
              ML_HOP_OTHER);
  ml_connect_rules rules{};
  rules.dst_in_port = ML_RULE_EXCLUDE;
  expect_pass(decide(proxy_request("::ffff:10.0.0.5", 15008), &self, &self, rules),
              ML_CTR_BYPASS_PROXY, ML_HOP_OTHER);
}

// ---- Flow key for SO_ORIGINAL_DST -----------------------------------------------------------

__u32 sockops_remote_port(std::uint16_t port) { return htonl(port); }

ml_sock_fields v6_fields(const char* local, std::uint16_t lport, const char* remote,
                         std::uint16_t rport, std::uint64_t cookie) {
  ml_sock_fields fields{};
  fields.family = ML_AF_INET6;
  set_ip(fields.local_ip6, ip6(local));
  set_ip(fields.remote_ip6, ip6(remote));
  fields.local_port = lport;
  fields.remote_port = sockops_remote_port(rport);
  fields.snd_una = 1000;
  fields.rcv_nxt = 2000;
  fields.netns_cookie = cookie;
  return fields;
}

ml_sock_key self_key(const ml_sock_fields& fields) {
  ml_sock_key self{};
  ml_sock_key peer{};
  EXPECT_EQ(ml_build_keys(&fields, &self, &peer), 0);
  return self;
}

ml_flow_key flow_of(const ml_sock_key& client) {
  ml_flow_key flow;
  std::memset(&flow, 0xa5, sizeof(flow));
  ml_flow_key_from_client(&client, &flow);
  return flow;
}

// A socket keeps only its peer's key; the pairing entry and sk_msg rebuild its own key by
// mirroring it, which must give exactly the key it was inserted under (padding zeroed too).
TEST(MirrorKey, PeerKeyMirroredIsTheSocketsOwnKey) {
  for (const ml_sock_fields& fields :
       {v6_fields("fd00::5", 41000, "fd00::6", 15106, kSelfCookie),
        v6_fields("::1", 15001, "::1", 52000, kSelfCookie),
        v6_fields("::ffff:127.0.0.6", 40001, "::ffff:198.18.0.12", 8080, kSelfCookie)}) {
    ml_sock_key self{};
    ml_sock_key peer{};
    ASSERT_EQ(ml_build_keys(&fields, &self, &peer), 0);
    ml_sock_key mirrored;
    std::memset(&mirrored, 0xa5, sizeof(mirrored));
    ml_mirror_key(&peer, &mirrored);
    EXPECT_EQ(std::memcmp(&mirrored, &self, sizeof(self)), 0);
    ml_sock_key back;
    std::memset(&back, 0xa5, sizeof(back));
    ml_mirror_key(&mirrored, &back);
    EXPECT_EQ(std::memcmp(&back, &peer, sizeof(peer)), 0);
  }
}

TEST(FlowKeyFromClient, LoopbackHopToTheOutboundProxyIsScopedToTheNamespace) {
  // The app's redirected socket: 127.0.0.1:40000 -> 127.0.0.1:15001.
  const ml_sock_key client =
      self_key(v6_fields("::ffff:127.0.0.1", 40000, "::ffff:127.0.0.1", 15001, kSelfCookie));
  const ml_flow_key flow = flow_of(client);
  EXPECT_EQ(flow.scope, kSelfCookie);
  EXPECT_TRUE(same_ip(flow.client_ip6, "::ffff:127.0.0.1"));
  EXPECT_TRUE(same_ip(flow.server_ip6, "::ffff:127.0.0.1"));
  EXPECT_EQ(flow.client_port, 40000);
  EXPECT_EQ(flow.server_port, 15001);
  EXPECT_EQ(flow.pad, 0u);
}

TEST(FlowKeyFromClient, PodToPodHopIsNotScoped) {
  // A proxy's redirected connect to another pod's inbound port: fd00::5 -> fd00::6:15106.
  const ml_sock_key client = self_key(v6_fields("fd00::5", 41000, "fd00::6", 15106, kSelfCookie));
  const ml_flow_key flow = flow_of(client);
  EXPECT_EQ(flow.scope, 0u);
  EXPECT_TRUE(same_ip(flow.client_ip6, "fd00::5"));
  EXPECT_TRUE(same_ip(flow.server_ip6, "fd00::6"));
  EXPECT_EQ(flow.client_port, 41000);
  EXPECT_EQ(flow.server_port, 15106);
  EXPECT_EQ(flow.pad, 0u);
}

// The key getsockopt builds on the proxy's accepted socket: client = its remote end, server =
// its local end, scope = netns cookie when the client address is loopback. ml_build_keys on
// the accepted socket applies the same rule (scope from the remote address), so its self key
// is that view.
::testing::AssertionResult matches_server_view(const ml_flow_key& flow, const ml_sock_key& server) {
  ml_flow_key expected{};
  expected.scope = server.scope;
  std::memcpy(expected.client_ip6, server.remote_ip6, sizeof(expected.client_ip6));
  std::memcpy(expected.server_ip6, server.local_ip6, sizeof(expected.server_ip6));
  expected.client_port = server.remote_port;
  expected.server_port = server.local_port;
  if (std::memcmp(&flow, &expected, sizeof(flow)) == 0) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "client files scope " << flow.scope << ", server looks up scope " << expected.scope
         << " (ports " << flow.client_port << "->" << flow.server_port << " vs "
         << expected.client_port << "->" << expected.server_port << ")";
}

TEST(FlowKeyFromClient, MatchesTheServerSideLookup) {
  const auto loop = v6_fields("::ffff:127.0.0.1", 40000, "::ffff:127.0.0.1", 15001, kSelfCookie);
  EXPECT_TRUE(matches_server_view(
      flow_of(self_key(loop)),
      self_key(v6_fields("::ffff:127.0.0.1", 15001, "::ffff:127.0.0.1", 40000, kSelfCookie))));
  const auto pods = v6_fields("fd00::5", 41000, "fd00::6", 15106, kSelfCookie);
  EXPECT_TRUE(
      matches_server_view(flow_of(self_key(pods)),
                          self_key(v6_fields("fd00::6", 15106, "fd00::5", 41000, kOtherCookie))));
}

// An app that binds its pod address before connecting to a remote service is redirected to
// 127.0.0.1:15001, so its socket is 10.0.0.5:40000 -> 127.0.0.1:15001 (Linux accepts this).
// Both ends must scope the key the same way (a loopback end on either side means the netns),
// or SO_ORIGINAL_DST would never be answered for it.
TEST(FlowKeyFromClient, BoundPodAddressToOutboundProxyMatchesTheServerSideLookup) {
  const auto client = v6_fields("::ffff:10.0.0.5", 40000, "::ffff:127.0.0.1", 15001, kSelfCookie);
  const auto server = v6_fields("::ffff:127.0.0.1", 15001, "::ffff:10.0.0.5", 40000, kSelfCookie);
  EXPECT_TRUE(matches_server_view(flow_of(self_key(client)), self_key(server)));
}

// Istio's inbound proxy connects to its app from the passthrough source, 127.0.0.6:41000 ->
// 10.0.0.5:8080 (ML_HOP_PROXY_TO_APP): loopback on one end only, and the two sockets must
// still meet in the sockhash.
TEST(FlowKeyFromClient, PassthroughSourceProxyToAppHopKeysPair) {
  const auto proxy = v6_fields("::ffff:127.0.0.6", 41000, "::ffff:10.0.0.5", 8080, kSelfCookie);
  auto app = v6_fields("::ffff:10.0.0.5", 8080, "::ffff:127.0.0.6", 41000, kSelfCookie);
  std::swap(app.snd_una, app.rcv_nxt);
  ml_sock_key proxy_self{};
  ml_sock_key proxy_peer{};
  ASSERT_EQ(ml_build_keys(&proxy, &proxy_self, &proxy_peer), 0);
  const ml_sock_key app_self = self_key(app);
  EXPECT_EQ(proxy_peer.scope, app_self.scope);
  EXPECT_EQ(std::memcmp(&proxy_peer, &app_self, sizeof(app_self)), 0)
      << "the proxy -> app socket pair does not meet in the sockhash";
}

}  // namespace

// ---- The L4 fast path (docs/fast-path.md) ---------------------------------------------------

namespace fast_path {

ml_workload opted_in(ml_workload wl) {
  wl.flags |= ML_WL_FAST_PATH;
  return wl;
}

// Both pods opted in and the destination's app listening on the port: the rules a connect to
// 10.0.0.6:8080 finds when nothing excepts it.
ml_connect_rules listening() {
  ml_connect_rules rules{};
  rules.dst_listening = 1;
  return rules;
}

TEST(FastPath, BothOptedInAndListeningGoesStraightToTheApp) {
  const ml_workload self = opted_in(istio_self());
  const ml_workload dst = opted_in(other_pod());
  for (const char* address : {"::ffff:10.0.0.6", "fd00::6"}) {
    expect_pass(decide(request(address, 8080), &self, &dst, listening()),
                ML_CTR_FAST_PATH_CONNECTIONS, ML_HOP_FAST_PATH);
  }
}

TEST(FastPath, OneSideNotOptedInKeepsTheSidecars) {
  const ml_workload self = opted_in(istio_self());
  const ml_workload dst = opted_in(other_pod());
  const ml_workload plain_self = istio_self();
  const ml_workload plain_dst = other_pod();
  expect_redirect(decide(request("::ffff:10.0.0.6", 8080), &plain_self, &dst, listening()),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
  expect_redirect(decide(request("::ffff:10.0.0.6", 8080), &self, &plain_dst, listening()),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(FastPath, NotListeningExceptedOrMeshPortsKeepTheSidecars) {
  const ml_workload self = opted_in(istio_self());
  const ml_workload dst = opted_in(other_pod());
  ml_connect_rules not_listening{};
  ml_connect_rules src_excepted = listening();
  src_excepted.fast_path_src_excepted = 1;
  ml_connect_rules dst_excepted = listening();
  dst_excepted.fast_path_dst_excepted = 1;
  ml_connect_rules health_port = listening();
  health_port.dst_in_port = ML_RULE_EXCLUDE;  // e.g. 15020, excluded from inbound interception
  for (const ml_connect_rules& rules : {not_listening, src_excepted, dst_excepted, health_port}) {
    expect_redirect(decide(request("::ffff:10.0.0.6", 8080), &self, &dst, rules),
                    "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
  }
  // The destination's own proxy ports never take it.
  expect_redirect(decide(request("::ffff:10.0.0.6", 15106), &self, &dst, listening()),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
  expect_redirect(decide(request("::ffff:10.0.0.6", 15001), &self, &dst, listening()),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
}

TEST(FastPath, ProxiesOffNodeOwnPodAndExclusionsAreUnchanged) {
  const ml_workload self = opted_in(istio_self());
  const ml_workload dst = opted_in(other_pod());
  // The proxy's own connect still goes to the destination's inbound proxy.
  expect_redirect(decide(proxy_request("::ffff:10.0.0.6", 8080), &self, &dst, listening()),
                  "::ffff:10.0.0.6", 15106, ML_CTR_INTERCEPT_INBOUND, ML_HOP_PROXY_TO_PROXY);
  // Off the node (no destination workload): the sidecar.
  expect_redirect(decide(request("::ffff:10.9.9.9", 8080), &self, nullptr, listening()),
                  "::ffff:127.0.0.1", 15001, ML_CTR_INTERCEPT_OUTBOUND, ML_HOP_APP_TO_PROXY);
  // Its own pod: passes as before.
  const ml_workload same = opted_in(istio_self());
  expect_pass(decide(request("::ffff:10.0.0.5", 8080), &self, &same, listening()), ML_CTR_MAX,
              ML_HOP_OTHER);
  // An outbound exclusion still bypasses (and tc then steers it as before).
  ml_connect_rules excluded = listening();
  excluded.out_port = ML_RULE_EXCLUDE;
  expect_pass(decide(request("::ffff:10.0.0.6", 8080), &self, &dst, excluded),
              ML_CTR_BYPASS_EXCLUDED, ML_HOP_OTHER);
}

TEST(FastPath, SidecarlessWorkloadsTakeItBeforeTheNodeProxy) {
  ml_workload self = opted_in(istio_self());
  self.flags |= ML_WL_NODE_PROXY;
  set_ip(self.node_proxy_ip6, ip6("::ffff:10.0.0.1"));
  const ml_workload dst = opted_in(other_pod());
  expect_pass(decide(request("::ffff:10.0.0.6", 8080), &self, &dst, listening()),
              ML_CTR_FAST_PATH_CONNECTIONS, ML_HOP_FAST_PATH);
}

}  // namespace fast_path
