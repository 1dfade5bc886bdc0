// The inbound tc programs (bpf/tc/inbound_tc.bpf.c) as the kernel runs them, on crafted packets
// (BPF_PROG_TEST_RUN). tc_flow_test.cpp covers the pure decisions; this covers what only the
// compiled object does: parsing the headers, the lookups in the maps the controller fills,
// filing flows and original destinations, counting, and rewriting ports with their checksum.
// Over 600 lines on purpose: most of it is the packet builder and map fixtures the cases share,
// which only this file needs.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "datapath/tc_port_filter.hpp"
#include "inbound_tc.skel.h"

extern "C" {
#include "meshlane/policy.h"
#include "meshlane/shared.h"
#include "meshlane/sock_key.h"
#include "meshlane/tc_flow.h"
#include "meshlane/tc_port_marks.h"
}

namespace {

constexpr std::uint32_t kTcActOk = 0;
constexpr std::uint32_t kTcActShot = 2;

constexpr std::uint16_t kAppPort = 8080;
constexpr std::uint16_t kExcludedPort = 9090;
constexpr std::uint16_t kOtherAppPort = 9091;
constexpr std::uint16_t kInboundPort = 15006;
constexpr std::uint16_t kOutboundPort = 15001;
constexpr std::uint16_t kClientPort = 40000;
constexpr std::uint32_t kWorkloadId = 3;
constexpr std::uint64_t kPodNetnsCookie = 4242;

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;

// An IPv4 or IPv6 address, kept as the 16 bytes the datapath keys on (v4-mapped for IPv4).
struct Address {
  bool v4 = true;
  std::uint8_t bytes[16] = {};

  static Address ip4(const char* text) {
    Address address;
    std::uint32_t ip4 = 0;
    inet_pton(AF_INET, text, &ip4);
    address.bytes[10] = 0xff;
    address.bytes[11] = 0xff;
    std::memcpy(address.bytes + 12, &ip4, 4);
    return address;
  }
  static Address ip6(const char* text) {
    Address address;
    address.v4 = false;
    inet_pton(AF_INET6, text, address.bytes);
    return address;
  }
  void to_words(__u32 out[4]) const { std::memcpy(out, bytes, 16); }
};

// Only test ranges: 198.18.0.0/15 and fd00::/8.
const Address kPodIp4 = Address::ip4("198.19.0.10");
const Address kPodIp6 = Address::ip6("fd00:0:0:1::10");
const Address kClientIp4 = Address::ip4("198.18.1.1");
const Address kClientIp6 = Address::ip6("fd00:0:0:2::1");
const Address kNoPodIp4 = Address::ip4("198.19.0.99");

constexpr std::size_t kEthLen = 14;
constexpr std::size_t kIp4Len = 20;
constexpr std::size_t kIp6Len = 40;
constexpr std::size_t kTcpLen = 20;

void put16(std::vector<std::uint8_t>& packet, std::size_t offset, std::uint16_t value) {
  packet[offset] = static_cast<std::uint8_t>(value >> 8);
  packet[offset + 1] = static_cast<std::uint8_t>(value);
}

std::uint16_t get16(const std::vector<std::uint8_t>& packet, std::size_t offset) {
  return static_cast<std::uint16_t>(packet[offset] << 8 | packet[offset + 1]);
}

std::uint32_t sum16(const std::uint8_t* data, std::size_t length, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < length; i += 2) {
    sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  }
  if (length % 2 != 0) {
    sum += static_cast<std::uint32_t>(data[length - 1] << 8);
  }
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum);
}

std::size_t l4_offset(const std::vector<std::uint8_t>& packet) {
  return kEthLen + (get16(packet, 12) == 0x0800 ? kIp4Len : kIp6Len);
}

// The transport checksum over the pseudo header and the segment, with the checksum field as it
// is in `packet` (a correct one then sums to 0).
std::uint16_t l4_checksum(const std::vector<std::uint8_t>& packet, std::uint8_t protocol) {
  const std::size_t l4 = l4_offset(packet);
  const std::size_t l4_length = packet.size() - l4;
  std::uint32_t sum = 0;
  if (get16(packet, 12) == 0x0800) {
    sum = sum16(packet.data() + kEthLen + 12, 8);
  } else {
    sum = sum16(packet.data() + kEthLen + 8, 32);
  }
  sum += protocol;
  sum += static_cast<std::uint32_t>(l4_length);
  return fold(sum16(packet.data() + l4, l4_length, sum));
}

void set_tcp_checksum(std::vector<std::uint8_t>& packet) {
  const std::size_t check = l4_offset(packet) + 16;
  put16(packet, check, 0);
  put16(packet, check, l4_checksum(packet, kProtoTcp));
}

// Ethernet + IPv4 or IPv6 + a transport segment of `l4_length` bytes (header and zeros),
// addresses and ports filled in; the transport checksum is left to the caller.
std::vector<std::uint8_t> ip_packet(const Address& src, const Address& dst, std::uint8_t protocol,
                                    std::size_t l4_length, std::uint16_t src_port,
                                    std::uint16_t dst_port) {
  std::vector<std::uint8_t> packet(kEthLen + (src.v4 ? kIp4Len : kIp6Len) + l4_length, 0);
  const std::uint8_t pod_mac[6] = {0x02, 0, 0, 0, 0, 0x10};
  const std::uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(packet.data(), pod_mac, 6);
  std::memcpy(packet.data() + 6, peer_mac, 6);
  std::size_t ip = kEthLen;
  if (src.v4) {
    put16(packet, 12, 0x0800);
    packet[ip] = 0x45;
    put16(packet, ip + 2, static_cast<std::uint16_t>(kIp4Len + l4_length));
    put16(packet, ip + 4, 0x1234);  // identification
    put16(packet, ip + 6, 0x4000);  // don't fragment
    packet[ip + 8] = 64;
    packet[ip + 9] = protocol;
    std::memcpy(packet.data() + ip + 12, src.bytes + 12, 4);
    std::memcpy(packet.data() + ip + 16, dst.bytes + 12, 4);
    put16(packet, ip + 10, fold(sum16(packet.data() + ip, kIp4Len)));
  } else {
    put16(packet, 12, 0x86DD);
    packet[ip] = 0x60;
    put16(packet, ip + 4, static_cast<std::uint16_t>(l4_length));
    packet[ip + 6] = protocol;
    packet[ip + 7] = 64;
    std::memcpy(packet.data() + ip + 8, src.bytes, 16);
    std::memcpy(packet.data() + ip + 24, dst.bytes, 16);
  }
  const std::size_t l4 = l4_offset(packet);
  put16(packet, l4, src_port);
  put16(packet, l4 + 2, dst_port);
  return packet;
}

// Sequence numbers of a TCP segment and the data bytes it carries (zeros).
struct SegmentNumbers {
  std::uint32_t seq = 0x10000001;
  std::uint32_t ack = 0x20000002;  // written only with ML_TCP_ACK
  std::size_t payload = 0;
};

std::vector<std::uint8_t> tcp_packet(const Address& src, std::uint16_t src_port, const Address& dst,
                                     std::uint16_t dst_port, std::uint8_t flags,
                                     const SegmentNumbers& numbers = {}) {
  std::vector<std::uint8_t> packet =
      ip_packet(src, dst, kProtoTcp, kTcpLen + numbers.payload, src_port, dst_port);
  const std::size_t tcp = l4_offset(packet);
  put16(packet, tcp + 4, static_cast<std::uint16_t>(numbers.seq >> 16));
  put16(packet, tcp + 6, static_cast<std::uint16_t>(numbers.seq));
  if (flags & ML_TCP_ACK) {
    put16(packet, tcp + 8, static_cast<std::uint16_t>(numbers.ack >> 16));
    put16(packet, tcp + 10, static_cast<std::uint16_t>(numbers.ack));
  }
  packet[tcp + 12] = (kTcpLen / 4) << 4;
  packet[tcp + 13] = flags;
  put16(packet, tcp + 14, 64240);  // window
  set_tcp_checksum(packet);
  return packet;
}

std::vector<std::uint8_t> udp_packet(const Address& src, std::uint16_t src_port, const Address& dst,
                                     std::uint16_t dst_port) {
  constexpr std::size_t kUdpLen = 8;
  std::vector<std::uint8_t> packet = ip_packet(src, dst, kProtoUdp, kUdpLen, src_port, dst_port);
  const std::size_t udp = l4_offset(packet);
  put16(packet, udp + 4, kUdpLen);
  put16(packet, udp + 6, l4_checksum(packet, kProtoUdp));
  return packet;
}

// What a packet must look like after the program rewrote one of its TCP ports: identical but
// for the port and a correct checksum.
std::vector<std::uint8_t> with_port(std::vector<std::uint8_t> packet, bool destination,
                                    std::uint16_t port) {
  put16(packet, l4_offset(packet) + (destination ? 2 : 0), port);
  set_tcp_checksum(packet);
  return packet;
}

ml_workload istio_pod() {
  ml_workload wl{};
  wl.id = kWorkloadId;
  wl.proxy_uid = 1337;
  wl.proxy_gid = 1337;
  wl.outbound_port = kOutboundPort;
  wl.inbound_port = kInboundPort;
  wl.netns_cookie = kPodNetnsCookie;
  return wl;
}

ml_tc_flow_key flow_key(const Address& remote, std::uint16_t remote_port, const Address& local) {
  ml_tc_flow_key key{};
  remote.to_words(key.remote_ip6);
  local.to_words(key.local_ip6);
  key.remote_port = remote_port;
  return key;
}

// The key sock_ops of the inbound proxy's accepted socket looks its original destination up by.
ml_flow_key accepted_key(const Address& client, std::uint16_t client_port, const Address& pod) {
  ml_flow_key key{};
  client.to_words(key.client_ip6);
  pod.to_words(key.server_ip6);
  key.client_port = client_port;
  key.server_port = kInboundPort;
  return key;
}

struct RunResult {
  std::uint32_t verdict = 0;
  std::vector<std::uint8_t> packet;
};

class InboundTcProgram : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "loading and test-running BPF programs needs root (CAP_BPF and "
                      "CAP_NET_ADMIN); not root here, the compiled tc programs are not tested";
    }
    skeleton_ = inbound_tc_bpf__open();
    ASSERT_NE(skeleton_, nullptr) << "cannot open the inbound_tc object: " << std::strerror(errno);
    size_maps();
    const int err = inbound_tc_bpf__load(skeleton_);
    if (err == -EPERM) {
      GTEST_SKIP() << "root, but not allowed to load BPF programs here (EPERM)";
    }
    // Any other failure is the verifier (or libbpf) rejecting the object: a real failure.
    ASSERT_EQ(err, 0) << "cannot load inbound_tc (see libbpf's log above): " << std::strerror(-err);
    add_workload(istio_pod());
  }

  void TearDown() override { inbound_tc_bpf__destroy(skeleton_); }

  // Called between open and load, for tests that need smaller maps.
  virtual void size_maps() {}

  // Registers a pod the way controller/datapath/workload_maps.cpp does: by netns cookie, by each of
  // its addresses, with a per-workload counter entry.
  void add_workload(const ml_workload& wl) {
    const __u64 cookie = wl.netns_cookie;
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_workloads_v1), &cookie, &wl, BPF_ANY),
              0);
    for (const Address* address : {&kPodIp4, &kPodIp6}) {
      ml_ip_key key{};
      address->to_words(key.ip6);
      ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_pod_ips_v1), &key, &wl, BPF_ANY), 0);
    }
    std::vector<ml_wl_counters> zero(cpus());
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_wlcounters_v1), &cookie, zero.data(),
                                  BPF_ANY),
              0);
  }

  void add_port_rule(std::uint16_t port, std::uint8_t direction, std::uint8_t rule) {
    ml_port_rule_key key{};
    key.workload_id = kWorkloadId;
    key.port = port;
    key.direction = direction;
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_portrules_v1), &key, &rule, BPF_ANY),
              0);
  }

  void add_cidr_rule(std::uint32_t list, const Address& prefix, std::uint32_t prefix_length) {
    ml_cidr_rule_key key{};
    key.prefixlen = ML_CIDR_KEY_PREFIX_BITS + prefix_length;
    key.workload_id = htonl(kWorkloadId);
    key.list = htonl(list);
    prefix.to_words(key.ip6);
    const std::uint8_t rule = ML_RULE_INCLUDE;
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_cidrrules_v1), &key, &rule, BPF_ANY),
              0);
  }

  RunResult run(bpf_program* program, const std::vector<std::uint8_t>& packet) {
    RunResult result;
    result.packet.resize(packet.size() + 128);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = packet.data();
    opts.data_size_in = static_cast<__u32>(packet.size());
    opts.data_out = result.packet.data();
    opts.data_size_out = static_cast<__u32>(result.packet.size());
    opts.repeat = 1;
    const int err = bpf_prog_test_run_opts(bpf_program__fd(program), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN failed: " << std::strerror(errno);
    result.packet.resize(opts.data_size_out);
    result.verdict = opts.retval;
    return result;
  }
  RunResult ingress(const std::vector<std::uint8_t>& packet) {
    return run(skeleton_->progs.ml_tc_ingress, packet);
  }
  RunResult egress(const std::vector<std::uint8_t>& packet) {
    return run(skeleton_->progs.ml_tc_egress, packet);
  }

  std::optional<ml_tc_flow> flow(const ml_tc_flow_key& key) {
    ml_tc_flow value{};
    if (bpf_map_lookup_elem(map_fd(skeleton_->maps.ml_tcflows_v3), &key, &value) != 0) {
      return std::nullopt;
    }
    return value;
  }
  std::optional<ml_orig_dst_entry> orig_dst(const ml_flow_key& key) {
    ml_orig_dst_entry value{};
    if (bpf_map_lookup_elem(map_fd(skeleton_->maps.ml_origdst_v2), &key, &value) != 0) {
      return std::nullopt;
    }
    return value;
  }
  std::size_t entries(bpf_map* map) {
    std::size_t count = 0;
    std::vector<std::uint8_t> key(bpf_map__key_size(map)), next(bpf_map__key_size(map));
    const void* previous = nullptr;
    while (bpf_map_get_next_key(map_fd(map), previous, next.data()) == 0) {
      ++count;
      key = next;
      previous = key.data();
    }
    return count;
  }

  std::uint64_t node_counter(std::uint32_t counter) {
    std::vector<std::uint64_t> values(cpus());
    EXPECT_EQ(bpf_map_lookup_elem(map_fd(skeleton_->maps.ml_counters_v1), &counter, values.data()),
              0);
    std::uint64_t sum = 0;
    for (std::uint64_t value : values)
      sum += value;
    return sum;
  }
  std::uint64_t workload_counter(std::uint32_t counter) {
    std::vector<ml_wl_counters> values(cpus());
    const __u64 cookie = kPodNetnsCookie;
    EXPECT_EQ(bpf_map_lookup_elem(map_fd(skeleton_->maps.ml_wlcounters_v1), &cookie, values.data()),
              0);
    std::uint64_t sum = 0;
    for (const ml_wl_counters& value : values)
      sum += value.value[counter];
    return sum;
  }

  // Runs a SYN from the client to the pod's app port and checks that it was steered.
  void steer_syn(const Address& client, const Address& pod) {
    const auto syn = tcp_packet(client, kClientPort, pod, kAppPort, ML_TCP_SYN);
    const RunResult result = ingress(syn);
    ASSERT_EQ(result.verdict, kTcActOk);
    ASSERT_EQ(result.packet, with_port(syn, true, kInboundPort));
  }

  void expect_passed_untouched(const std::vector<std::uint8_t>& sent) {
    const RunResult passed = ingress(sent);
    EXPECT_EQ(passed.verdict, kTcActOk);
    EXPECT_EQ(passed.packet, sent);
    EXPECT_EQ(entries(skeleton_->maps.ml_tcflows_v3), 0u);
    EXPECT_EQ(entries(skeleton_->maps.ml_origdst_v2), 0u);
    EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 0u);
  }

  static int map_fd(const bpf_map* map) { return bpf_map__fd(map); }
  static std::size_t cpus() { return static_cast<std::size_t>(libbpf_num_possible_cpus()); }

  inbound_tc_bpf* skeleton_ = nullptr;
};

// Sends `packet` through ingress and expects it passed on as it came, with nothing filed or
// counted as steered. The trace names the caller's line.
#define EXPECT_PASSED_UNTOUCHED(sent_packet) \
  do {                                       \
    SCOPED_TRACE("expected untouched");      \
    expect_passed_untouched(sent_packet);    \
  } while (0)

// ---- New connections ------------------------------------------------------------------------

TEST_F(InboundTcProgram, Ipv4SynToAnAppPortIsSteeredToTheInboundProxy) {
  const auto syn = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN);

  const RunResult result = ingress(syn);

  EXPECT_EQ(result.verdict, kTcActOk);
  // Only the destination port and the checksum change.
  EXPECT_EQ(result.packet, with_port(syn, true, kInboundPort));
  EXPECT_EQ(l4_checksum(result.packet, kProtoTcp), 0);

  const auto filed = flow(flow_key(kClientIp4, kClientPort, kPodIp4));
  ASSERT_TRUE(filed.has_value());
  EXPECT_EQ(filed->orig_port, kAppPort);
  EXPECT_EQ(filed->inbound_port, kInboundPort);
  EXPECT_EQ(filed->acked, 0);
  EXPECT_EQ(filed->fin_in, 0);
  EXPECT_EQ(filed->fin_out, 0);
  EXPECT_NE(filed->start_ns, 0u);

  const auto original = orig_dst(accepted_key(kClientIp4, kClientPort, kPodIp4));
  ASSERT_TRUE(original.has_value()) << "no original destination for the inbound proxy to ask";
  EXPECT_EQ(original->dst.port, kAppPort);
  EXPECT_EQ(original->dst.family, ML_AF_INET);
  EXPECT_EQ(std::memcmp(original->dst.ip6, kPodIp4.bytes, 16), 0);
  EXPECT_EQ(original->filed_ns, filed->start_ns);

  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 1u);
  EXPECT_EQ(workload_counter(ML_CTR_INTERCEPT_INBOUND_TC), 1u);
}

TEST_F(InboundTcProgram, Ipv6SynToAnAppPortIsSteeredToTheInboundProxy) {
  const auto syn = tcp_packet(kClientIp6, kClientPort, kPodIp6, kAppPort, ML_TCP_SYN);

  const RunResult result = ingress(syn);

  EXPECT_EQ(result.verdict, kTcActOk);
  EXPECT_EQ(result.packet, with_port(syn, true, kInboundPort));
  const auto filed = flow(flow_key(kClientIp6, kClientPort, kPodIp6));
  ASSERT_TRUE(filed.has_value());
  EXPECT_EQ(filed->orig_port, kAppPort);
  const auto original = orig_dst(accepted_key(kClientIp6, kClientPort, kPodIp6));
  ASSERT_TRUE(original.has_value());
  EXPECT_EQ(original->dst.port, kAppPort);
  EXPECT_EQ(original->dst.family, ML_AF_INET6);
  EXPECT_EQ(std::memcmp(original->dst.ip6, kPodIp6.bytes, 16), 0);
  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 1u);
}

TEST_F(InboundTcProgram, RetransmittedSynIsSteeredAgainAndCountedOnce) {
  steer_syn(kClientIp4, kPodIp4);
  steer_syn(kClientIp4, kPodIp4);

  EXPECT_EQ(entries(skeleton_->maps.ml_tcflows_v3), 1u);
  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 1u);
}

TEST_F(InboundTcProgram, SynToAnExcludedPortIsNotSteered) {
  add_port_rule(kExcludedPort, ML_DIR_INBOUND, ML_RULE_EXCLUDE);
  const auto syn = tcp_packet(kClientIp4, kClientPort, kPodIp4, kExcludedPort, ML_TCP_SYN);
  EXPECT_PASSED_UNTOUCHED(syn);

  // The rule is for that port only.
  steer_syn(kClientIp4, kPodIp4);
}

TEST_F(InboundTcProgram, SynToAPortExcludedForOutboundOnlyIsSteered) {
  add_port_rule(kAppPort, ML_DIR_OUTBOUND, ML_RULE_EXCLUDE);
  steer_syn(kClientIp4, kPodIp4);
}

TEST_F(InboundTcProgram, InIncludeModeOnlyListedPortsAreSteered) {
  ml_workload wl = istio_pod();
  wl.flags |= ML_WL_INCLUDE_IN_PORTS;
  add_workload(wl);
  add_port_rule(kAppPort, ML_DIR_INBOUND, ML_RULE_INCLUDE);

  const auto unlisted = tcp_packet(kClientIp4, kClientPort, kPodIp4, kOtherAppPort, ML_TCP_SYN);
  EXPECT_PASSED_UNTOUCHED(unlisted);
  steer_syn(kClientIp4, kPodIp4);
}

TEST_F(InboundTcProgram, SynToTheProxyPortsIsNotSteered) {
  EXPECT_PASSED_UNTOUCHED(tcp_packet(kClientIp4, kClientPort, kPodIp4, kInboundPort, ML_TCP_SYN));
  EXPECT_PASSED_UNTOUCHED(tcp_packet(kClientIp4, kClientPort, kPodIp4, kOutboundPort, ML_TCP_SYN));
}

TEST_F(InboundTcProgram, SynFromAnExcludedSourceRangeIsNotSteered) {
  add_cidr_rule(ML_CIDR_LIST_IN_EXCLUDE, Address::ip4("198.18.1.0"), 96 + 24);
  EXPECT_PASSED_UNTOUCHED(tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN));

  // A client outside the range is steered.
  steer_syn(Address::ip4("198.18.2.1"), kPodIp4);
}

TEST_F(InboundTcProgram, SynToAnAddressOfNoPodIsUntouched) {
  EXPECT_PASSED_UNTOUCHED(tcp_packet(kClientIp4, kClientPort, kNoPodIp4, kAppPort, ML_TCP_SYN));
}

TEST_F(InboundTcProgram, NonTcpIsUntouched) {
  EXPECT_PASSED_UNTOUCHED(udp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort));
}

TEST_F(InboundTcProgram, Ipv4FragmentIsUntouched) {
  auto fragment = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN);
  put16(fragment, kEthLen + 6, 0x2000);  // more fragments: its TCP header cannot be trusted
  put16(fragment, kEthLen + 10, 0);
  put16(fragment, kEthLen + 10, fold(sum16(fragment.data() + kEthLen, kIp4Len)));
  EXPECT_PASSED_UNTOUCHED(fragment);
}

TEST_F(InboundTcProgram, TruncatedTcpHeaderIsUntouched) {
  auto truncated = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN);
  truncated.resize(truncated.size() - 4);
  EXPECT_PASSED_UNTOUCHED(truncated);
}

TEST_F(InboundTcProgram, NonSynOfAnUntrackedFlowIsUntouched) {
  EXPECT_PASSED_UNTOUCHED(tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_ACK));
  // A SYN-ACK arriving at the pod is an answer to the pod's own connect, never a new flow.
  EXPECT_PASSED_UNTOUCHED(
      tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN | ML_TCP_ACK));
}

TEST_F(InboundTcProgram, SynReusingAFlowKeyForAnotherPortIsNotSteered) {
  steer_syn(kClientIp4, kPodIp4);
  const auto collision = tcp_packet(kClientIp4, kClientPort, kPodIp4, kOtherAppPort, ML_TCP_SYN);

  const RunResult result = ingress(collision);

  EXPECT_EQ(result.verdict, kTcActOk);
  EXPECT_EQ(result.packet, collision);
  EXPECT_EQ(node_counter(ML_CTR_TC_FLOW_COLLISIONS), 1u);
  EXPECT_EQ(workload_counter(ML_CTR_TC_FLOW_COLLISIONS), 1u);
  const auto kept = flow(flow_key(kClientIp4, kClientPort, kPodIp4));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->orig_port, kAppPort) << "the live flow must keep its port";
}

// ---- Policy ---------------------------------------------------------------------------------

class InboundTcPolicy : public InboundTcProgram {
 protected:
  // Installs a compiled policy as controller/datapath/policy_map.cpp does: a trie in the one slot.
  void apply_policy(const std::vector<std::pair<ml_policy_key, ml_policy_value>>& entries) {
    bpf_map_create_opts options{};
    options.sz = sizeof(options);
    options.map_flags = BPF_F_NO_PREALLOC;
    policy_fd_ = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "ml_policy_test", sizeof(ml_policy_key),
                                sizeof(ml_policy_value), 64, &options);
    ASSERT_GE(policy_fd_, 0) << std::strerror(errno);
    for (const auto& [key, value] : entries) {
      ASSERT_EQ(bpf_map_update_elem(policy_fd_, &key, &value, BPF_ANY), 0);
    }
    const __u32 slot = 0;
    ASSERT_EQ(
        bpf_map_update_elem(map_fd(skeleton_->maps.ml_policy_v1), &slot, &policy_fd_, BPF_ANY), 0);
  }
  void TearDown() override {
    if (policy_fd_ >= 0)
      ::close(policy_fd_);
    InboundTcProgram::TearDown();
  }

  static std::pair<ml_policy_key, ml_policy_value> isolated_pod(std::uint32_t identity) {
    ml_policy_key key{};
    __u32 words[4];
    kPodIp4.to_words(words);
    ml_policy_ip_key(&key, words, 128);
    ml_policy_value value{};
    value.identity = identity;
    value.isolation = ML_POLICY_ISOLATED_INGRESS;
    return {key, value};
  }

  // Turns the monitor's event gate on for denied events, as the daemon does for a client.
  void watch_denied() {
    const __u32 key = ML_MONITOR_KEY_MASK;
    const __u64 mask = 1ULL << ML_EVENT_DENIED;
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_monitor_v1), &key, &mask, BPF_ANY), 0);
  }

  // Every event the program wrote to the ring so far.
  std::vector<ml_event> ring_events() {
    std::vector<ml_event> events;
    ring_buffer* ring = ring_buffer__new(
        map_fd(skeleton_->maps.ml_events_v1),
        [](void* ctx, void* data, size_t size) {
          if (size >= sizeof(ml_event)) {
            ml_event event{};
            std::memcpy(&event, data, sizeof event);
            static_cast<std::vector<ml_event>*>(ctx)->push_back(event);
          }
          return 0;
        },
        &events, nullptr);
    EXPECT_NE(ring, nullptr) << std::strerror(errno);
    if (ring != nullptr) {
      ring_buffer__consume(ring);
      ring_buffer__free(ring);
    }
    return events;
  }

  int policy_fd_ = -1;
};

TEST_F(InboundTcPolicy, SynDeniedByPolicyIsDropped) {
  apply_policy({isolated_pod(7)});
  const auto syn = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN);

  const RunResult result = ingress(syn);

  EXPECT_EQ(result.verdict, kTcActShot);
  EXPECT_EQ(node_counter(ML_CTR_DENIED_INBOUND_TC), 1u);
  EXPECT_EQ(workload_counter(ML_CTR_DENIED_INBOUND_TC), 1u);
  EXPECT_EQ(entries(skeleton_->maps.ml_tcflows_v3), 0u);
  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 0u);
}

// The denied event names what decided: the rule entry's id, or which isolation made the
// default a denial (item 12: it used to carry rule 0 always).
TEST_F(InboundTcPolicy, DeniedEventCarriesTheRuleOrTheDefault) {
  watch_denied();
  ml_policy_key rule_key{};
  ml_policy_rule_key(&rule_key, 0 /* the world */, 7, kAppPort, 16);
  ml_policy_value deny{};
  deny.verdict = ML_POLICY_DENY;
  deny.rule = 42;
  // Not isolated: only the deny rule refuses kAppPort; kOtherAppPort is allowed.
  auto pod = isolated_pod(7);
  pod.second.isolation = 0;
  apply_policy({pod, {rule_key, deny}});
  EXPECT_EQ(ingress(tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_SYN)).verdict,
            kTcActShot);
  std::vector<ml_event> events = ring_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, ML_EVENT_DENIED);
  EXPECT_EQ(events[0].detail, 42u);
  EXPECT_EQ(events[0].dst_port, kAppPort);

  // Isolated for ingress, no rule for this port: the default denies.
  ::close(policy_fd_);
  apply_policy({isolated_pod(7)});
  EXPECT_EQ(
      ingress(tcp_packet(kClientIp4, kClientPort + 1, kPodIp4, kOtherAppPort, ML_TCP_SYN)).verdict,
      kTcActShot);
  events = ring_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].detail, ML_DENY_DEFAULT_INGRESS);
}

TEST_F(InboundTcPolicy, SynAllowedByARuleIsSteered) {
  ml_policy_key rule_key{};
  ml_policy_rule_key(&rule_key, 0 /* the world */, 7, kAppPort, 16);
  ml_policy_value allow{};
  allow.verdict = ML_POLICY_ALLOW;
  apply_policy({isolated_pod(7), {rule_key, allow}});

  steer_syn(kClientIp4, kPodIp4);
  EXPECT_EQ(node_counter(ML_CTR_DENIED_INBOUND_TC), 0u);

  // The rule names one port: the pod's other ports stay closed to the world.
  const auto other = tcp_packet(kClientIp4, kClientPort + 1, kPodIp4, kOtherAppPort, ML_TCP_SYN);
  EXPECT_EQ(ingress(other).verdict, kTcActShot);
}

// ---- Established flows ----------------------------------------------------------------------

TEST_F(InboundTcProgram, ClientPacketsOfASteeredFlowGoToTheInboundProxy) {
  steer_syn(kClientIp4, kPodIp4);
  const auto ack = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_ACK);

  const RunResult result = ingress(ack);

  EXPECT_EQ(result.verdict, kTcActOk);
  EXPECT_EQ(result.packet, with_port(ack, true, kInboundPort));
  const auto tracked = flow(flow_key(kClientIp4, kClientPort, kPodIp4));
  ASSERT_TRUE(tracked.has_value());
  EXPECT_EQ(tracked->acked, 1) << "past the SYN: the controller's sweep must keep it";
}

TEST_F(InboundTcProgram, PacketOfAFlowKeyToAnotherPortIsUntouched) {
  steer_syn(kClientIp4, kPodIp4);
  const auto ack = tcp_packet(kClientIp4, kClientPort, kPodIp4, kOtherAppPort, ML_TCP_ACK);

  const RunResult result = ingress(ack);

  EXPECT_EQ(result.packet, ack);
  EXPECT_EQ(flow(flow_key(kClientIp4, kClientPort, kPodIp4))->acked, 0);
}

TEST_F(InboundTcProgram, RepliesFromTheInboundProxyGetTheAppPortBack) {
  steer_syn(kClientIp6, kPodIp6);
  const auto syn_ack =
      tcp_packet(kPodIp6, kInboundPort, kClientIp6, kClientPort, ML_TCP_SYN | ML_TCP_ACK);

  const RunResult result = egress(syn_ack);

  EXPECT_EQ(result.verdict, kTcActOk);
  EXPECT_EQ(result.packet, with_port(syn_ack, false, kAppPort));
}

TEST_F(InboundTcProgram, EgressOfUnsteeredTrafficIsUntouched) {
  steer_syn(kClientIp4, kPodIp4);
  // The app answering a connection that was not steered (its source is the app port).
  const auto from_app = tcp_packet(kPodIp4, kAppPort, kClientIp4, kClientPort, ML_TCP_ACK);
  EXPECT_EQ(egress(from_app).packet, from_app);
  // A flow nobody filed.
  const auto unknown = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort + 1, ML_TCP_ACK);
  EXPECT_EQ(egress(unknown).packet, unknown);
}

// Sequence numbers of the close sequences below.
constexpr std::uint32_t kClientSeq = 7000;
constexpr std::uint32_t kPodSeq = 9000;

TEST_F(InboundTcProgram, FlowEndsWithTheAckOfTheSecondFin) {
  steer_syn(kClientIp4, kPodIp4);
  const auto key = flow_key(kClientIp4, kClientPort, kPodIp4);
  // The client's last 100 bytes come with its FIN.
  const auto client_fin = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort,
                                     ML_TCP_FIN | ML_TCP_ACK, {kClientSeq, kPodSeq, 100});
  const auto pod_fin = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort,
                                  ML_TCP_FIN | ML_TCP_ACK, {kPodSeq, kClientSeq + 101});
  const auto last_ack = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_ACK,
                                   {kClientSeq + 101, kPodSeq + 1});

  EXPECT_EQ(ingress(client_fin).packet, with_port(client_fin, true, kInboundPort));
  EXPECT_EQ(flow(key)->fin_in, 1);
  EXPECT_EQ(flow(key)->fin_in_ack, kClientSeq + 101);
  EXPECT_EQ(egress(pod_fin).packet, with_port(pod_fin, false, kAppPort));
  EXPECT_EQ(flow(key)->fin_out, 1);
  EXPECT_EQ(flow(key)->fin_in_acked, 1) << "the pod's FIN acknowledges the client's";
  // The last ACK is still translated, then the flow is gone.
  EXPECT_EQ(ingress(last_ack).packet, with_port(last_ack, true, kInboundPort));
  EXPECT_FALSE(flow(key).has_value());
  EXPECT_EQ(ingress(last_ack).packet, last_ack);
}

// A FIN that arrives after a lost segment: the pod's duplicate ACK, a pure ACK after both FINs,
// must leave the flow for the retransmission (the v2 layout ended it there, and the retransmitted
// segment went to the app port, which reset the connection).
TEST_F(InboundTcProgram, FlowOutlivesADuplicateAckAfterBothFins) {
  steer_syn(kClientIp6, kPodIp6);
  const auto key = flow_key(kClientIp6, kClientPort, kPodIp6);
  const auto pod_fin = tcp_packet(kPodIp6, kInboundPort, kClientIp6, kClientPort,
                                  ML_TCP_FIN | ML_TCP_ACK, {kPodSeq, kClientSeq});
  // [kClientSeq, +1000) is lost; the FIN comes with the 500 bytes after it.
  const auto client_fin =
      tcp_packet(kClientIp6, kClientPort, kPodIp6, kAppPort, ML_TCP_FIN | ML_TCP_ACK,
                 {kClientSeq + 1000, kPodSeq + 1, 500});
  const auto dup_ack = tcp_packet(kPodIp6, kInboundPort, kClientIp6, kClientPort, ML_TCP_ACK,
                                  {kPodSeq + 1, kClientSeq});
  const auto retransmission = tcp_packet(kClientIp6, kClientPort, kPodIp6, kAppPort, ML_TCP_ACK,
                                         {kClientSeq, kPodSeq + 1, 1000});
  const auto last_ack = tcp_packet(kPodIp6, kInboundPort, kClientIp6, kClientPort, ML_TCP_ACK,
                                   {kPodSeq + 1, kClientSeq + 1501});

  egress(pod_fin);
  ingress(client_fin);
  EXPECT_EQ(flow(key)->fin_out_acked, 1);
  EXPECT_EQ(flow(key)->fin_in_ack, kClientSeq + 1501);
  EXPECT_EQ(egress(dup_ack).packet, with_port(dup_ack, false, kAppPort));
  ASSERT_TRUE(flow(key).has_value()) << "removed at a duplicate ACK";
  EXPECT_EQ(ingress(retransmission).packet, with_port(retransmission, true, kInboundPort));
  EXPECT_EQ(egress(last_ack).packet, with_port(last_ack, false, kAppPort));
  EXPECT_FALSE(flow(key).has_value());
}

// Ethernet pads short frames to 60 bytes; at tc ingress the padding is still there. The FIN's
// end comes from the IP length, not the frame's.
TEST_F(InboundTcProgram, EthernetPaddingIsNotPayload) {
  steer_syn(kClientIp4, kPodIp4);
  auto client_fin = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_FIN | ML_TCP_ACK,
                               {kClientSeq, kPodSeq});
  ASSERT_EQ(client_fin.size(), 54u);
  client_fin.resize(60, 0);

  ingress(client_fin);

  const auto tracked = flow(flow_key(kClientIp4, kClientPort, kPodIp4));
  ASSERT_TRUE(tracked.has_value());
  EXPECT_EQ(tracked->fin_in_ack, kClientSeq + 1);
}

TEST_F(InboundTcProgram, RstEndsTheFlow) {
  steer_syn(kClientIp4, kPodIp4);
  const auto rst = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort, ML_TCP_RST);

  EXPECT_EQ(egress(rst).packet, with_port(rst, false, kAppPort));
  EXPECT_FALSE(flow(flow_key(kClientIp4, kClientPort, kPodIp4)).has_value());
}

// ---- Port marks (ml_tcports_v1) ------------------------------------------------------------

class InboundTcPortMarks : public InboundTcProgram {
 protected:
  std::uint64_t slot_value(std::uint32_t slot) {
    std::uint64_t value = 0;
    EXPECT_EQ(bpf_map_lookup_elem(map_fd(skeleton_->maps.ml_tcports_v1), &slot, &value), 0);
    return value;
  }
  void set_slot(std::uint32_t slot, std::uint64_t value) {
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_tcports_v1), &slot, &value, BPF_ANY),
              0);
  }
  void set_armed(bool armed) { set_slot(ML_TC_PORTS_ARMED_SLOT, armed ? 1 : 0); }
  bool armed() { return slot_value(ML_TC_PORTS_ARMED_SLOT) != 0; }
  // Marks `port` alone in its slot, as the controller's arming would.
  void mark(ml_tc_port_set set, std::uint16_t port) {
    set_slot(ml_tc_port_slot(set, port), ml_tc_port_bit(port));
  }
  bool marked(ml_tc_port_set set, std::uint16_t port) {
    return (slot_value(ml_tc_port_slot(set, port)) & ml_tc_port_bit(port)) != 0;
  }
  // A flow as a build without port marks filed it: in the flow map, its ports unmarked.
  void file_unmarked_flow(const Address& client, std::uint16_t client_port, const Address& pod) {
    ml_tc_flow value{};
    value.orig_port = kAppPort;
    value.inbound_port = kInboundPort;
    value.acked = 1;
    const ml_tc_flow_key key = flow_key(client, client_port, pod);
    ASSERT_EQ(bpf_map_update_elem(map_fd(skeleton_->maps.ml_tcflows_v3), &key, &value, BPF_ANY), 0);
  }
};

TEST_F(InboundTcPortMarks, SteeredSynMarksBothPortsBeforeItsPacketsNeedThem) {
  set_armed(true);
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, kAppPort));
  EXPECT_FALSE(marked(ML_TC_PORTS_INBOUND, kInboundPort));

  steer_syn(kClientIp4, kPodIp4);

  EXPECT_TRUE(marked(ML_TC_PORTS_APP, kAppPort));
  EXPECT_TRUE(marked(ML_TC_PORTS_INBOUND, kInboundPort));
  // Only those: a neighbour in the same 64-port word stays unmarked.
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, kAppPort + 1));
  EXPECT_FALSE(marked(ML_TC_PORTS_INBOUND, kAppPort));
  // Armed, the flow's packets still find it both ways.
  const auto ack = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_ACK);
  EXPECT_EQ(ingress(ack).packet, with_port(ack, true, kInboundPort));
  const auto reply = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort, ML_TCP_ACK);
  EXPECT_EQ(egress(reply).packet, with_port(reply, false, kAppPort));
  EXPECT_EQ(flow(flow_key(kClientIp4, kClientPort, kPodIp4))->acked, 1);
}

TEST_F(InboundTcPortMarks, ArmedPacketsOfUnmarkedPortsSkipTheFlowMap) {
  // The only way to see that the lookup is skipped: a flow that is there but whose ports are
  // unmarked (which the controller's arming rules out) is not found.
  file_unmarked_flow(kClientIp6, kClientPort, kPodIp6);
  const auto ack = tcp_packet(kClientIp6, kClientPort, kPodIp6, kAppPort, ML_TCP_ACK);
  const auto reply = tcp_packet(kPodIp6, kInboundPort, kClientIp6, kClientPort, ML_TCP_ACK);

  set_armed(true);
  EXPECT_EQ(ingress(ack).packet, ack);
  EXPECT_EQ(egress(reply).packet, reply);

  // Disarmed (a start in progress), every packet looks its flow up again.
  set_armed(false);
  EXPECT_EQ(ingress(ack).packet, with_port(ack, true, kInboundPort));
  EXPECT_EQ(egress(reply).packet, with_port(reply, false, kAppPort));
}

TEST_F(InboundTcPortMarks, EachDirectionTestsItsOwnSet) {
  file_unmarked_flow(kClientIp4, kClientPort, kPodIp4);
  set_armed(true);
  const auto ack = tcp_packet(kClientIp4, kClientPort, kPodIp4, kAppPort, ML_TCP_ACK);
  const auto reply = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort, ML_TCP_ACK);

  // The app port marked as an inbound port, and the inbound port as an app port: neither
  // direction may take the other's mark.
  mark(ML_TC_PORTS_INBOUND, kAppPort);
  mark(ML_TC_PORTS_APP, kInboundPort);
  EXPECT_EQ(ingress(ack).packet, ack);
  EXPECT_EQ(egress(reply).packet, reply);

  mark(ML_TC_PORTS_APP, kAppPort);
  mark(ML_TC_PORTS_INBOUND, kInboundPort);
  EXPECT_EQ(ingress(ack).packet, with_port(ack, true, kInboundPort));
  EXPECT_EQ(egress(reply).packet, with_port(reply, false, kAppPort));
}

// What meshlaned does at start (controller/datapath/tc_port_filter.cpp), on the programs' maps:
// flows an older build filed unmarked get their marks before the filter is armed.
TEST_F(InboundTcPortMarks, ArmingMarksTheFlowsAnOlderBuildFiled) {
  file_unmarked_flow(kClientIp4, kClientPort, kPodIp4);
  file_unmarked_flow(kClientIp6, kClientPort, kPodIp6);

  auto report = meshlane::arm_tc_port_filter(map_fd(skeleton_->maps.ml_tcports_v1),
                                             map_fd(skeleton_->maps.ml_tcflows_v3));

  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->flows, 2u);
  EXPECT_EQ(report->app_ports, 1u);
  EXPECT_EQ(report->inbound_ports, 1u);
  EXPECT_TRUE(marked(ML_TC_PORTS_APP, kAppPort));
  EXPECT_TRUE(marked(ML_TC_PORTS_INBOUND, kInboundPort));
  const auto ack = tcp_packet(kClientIp6, kClientPort, kPodIp6, kAppPort, ML_TCP_ACK);
  EXPECT_EQ(ingress(ack).packet, with_port(ack, true, kInboundPort));
  const auto reply = tcp_packet(kPodIp4, kInboundPort, kClientIp4, kClientPort, ML_TCP_ACK);
  EXPECT_EQ(egress(reply).packet, with_port(reply, false, kAppPort));
  // Armed, with only the flows' ports marked.
  EXPECT_TRUE(armed());
  EXPECT_FALSE(marked(ML_TC_PORTS_APP, kOtherAppPort));

  ASSERT_TRUE(meshlane::disarm_tc_port_filter(map_fd(skeleton_->maps.ml_tcports_v1)));
  EXPECT_FALSE(armed());
  // Marks stay: only a new map starts without them.
  EXPECT_TRUE(marked(ML_TC_PORTS_APP, kAppPort));
}

// ---- Full maps ------------------------------------------------------------------------------

class InboundTcFullFlows : public InboundTcProgram {
 protected:
  void size_maps() override { bpf_map__set_max_entries(skeleton_->maps.ml_tcflows_v3, 1); }
};

TEST_F(InboundTcFullFlows, SynIsNotSteeredWhenTheFlowMapIsFull) {
  steer_syn(kClientIp4, kPodIp4);
  const auto second = tcp_packet(kClientIp4, kClientPort + 1, kPodIp4, kAppPort, ML_TCP_SYN);

  const RunResult result = ingress(second);

  EXPECT_EQ(result.verdict, kTcActOk);
  EXPECT_EQ(result.packet, second);
  EXPECT_EQ(node_counter(ML_CTR_TC_FLOWS_FULL), 1u);
  EXPECT_EQ(workload_counter(ML_CTR_TC_FLOWS_FULL), 1u);
  EXPECT_EQ(entries(skeleton_->maps.ml_origdst_v2), 1u);
}

bool kernel_at_least(int major, int minor) {
  utsname name{};
  int running_major = 0, running_minor = 0;
  if (::uname(&name) != 0 ||
      std::sscanf(name.release, "%d.%d", &running_major, &running_minor) != 2) {
    return false;
  }
  return running_major > major || (running_major == major && running_minor >= minor);
}

class InboundTcFullOrigDst : public InboundTcProgram {
 protected:
  void SetUp() override {
    // Without bpf_map_sum_elem_count there is no room check: the insert itself fails instead.
    if (!kernel_at_least(6, 6)) {
      GTEST_SKIP() << "the ml_origdst_v2 room check needs kernel >= 6.6 (bpf_map_sum_elem_count)";
    }
    InboundTcProgram::SetUp();
  }

  // Two entries, one of them headroom (ml_map_headroom): the first SYN fills it.
  void size_maps() override { bpf_map__set_max_entries(skeleton_->maps.ml_origdst_v2, 2); }
};

TEST_F(InboundTcFullOrigDst, SynIsNotSteeredWithoutRoomForItsOriginalDestination) {
  steer_syn(kClientIp4, kPodIp4);
  const auto second = tcp_packet(kClientIp4, kClientPort + 1, kPodIp4, kAppPort, ML_TCP_SYN);

  const RunResult result = ingress(second);

  EXPECT_EQ(result.packet, second);
  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_SKIPPED_MAP_FULL), 1u);
  EXPECT_EQ(workload_counter(ML_CTR_INTERCEPT_SKIPPED_MAP_FULL), 1u);
  // Its flow entry is taken back, so its later packets are not steered either.
  EXPECT_FALSE(flow(flow_key(kClientIp4, kClientPort + 1, kPodIp4)).has_value());
  EXPECT_EQ(node_counter(ML_CTR_INTERCEPT_INBOUND_TC), 1u);
}

}  // namespace
