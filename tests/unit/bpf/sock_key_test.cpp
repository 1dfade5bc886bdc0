// Key construction shared with the sock_ops program (bpf/include/meshlane/sock_key.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

extern "C" {
#include "meshlane/sock_key.h"
}

namespace {

std::uint32_t ip4(const char* text) {
  in_addr address{};
  EXPECT_EQ(inet_pton(AF_INET, text, &address), 1) << text;
  return address.s_addr;
}

void ip6(const char* text, __u32 out[4]) {
  in6_addr address{};
  ASSERT_EQ(inet_pton(AF_INET6, text, &address), 1) << text;
  std::memcpy(out, &address, 16);
}

// bpf_sock_ops.remote_port: the network-order port in the upper 16 bits (little endian hosts).
__u32 sockops_remote_port(std::uint16_t port) { return htonl(port); }

ml_sock_fields v4_fields(const char* local, std::uint16_t lport, const char* remote,
                         std::uint16_t rport) {
  ml_sock_fields fields{};
  fields.family = ML_AF_INET;
  fields.local_ip4 = ip4(local);
  fields.remote_ip4 = ip4(remote);
  fields.local_port = lport;
  fields.remote_port = sockops_remote_port(rport);
  fields.snd_una = 1000;
  fields.rcv_nxt = 2000;
  fields.netns_cookie = 77;
  return fields;
}

ml_sock_fields v6_fields(const char* local, std::uint16_t lport, const char* remote,
                         std::uint16_t rport) {
  ml_sock_fields fields{};
  fields.family = ML_AF_INET6;
  ip6(local, fields.local_ip6);
  ip6(remote, fields.remote_ip6);
  fields.local_port = lport;
  fields.remote_port = sockops_remote_port(rport);
  fields.snd_una = 1000;
  fields.rcv_nxt = 2000;
  fields.netns_cookie = 77;
  return fields;
}

// The other end of the same connection, as its own sock_ops callback sees it.
ml_sock_fields mirror(const ml_sock_fields& fields) {
  ml_sock_fields other = fields;
  std::swap(other.local_ip4, other.remote_ip4);
  std::swap(other.local_ip6, other.remote_ip6);
  other.local_port = ntohl(fields.remote_port);
  other.remote_port = sockops_remote_port(static_cast<std::uint16_t>(fields.local_port));
  std::swap(other.snd_una, other.rcv_nxt);
  return other;
}

bool same_key(const ml_sock_key& a, const ml_sock_key& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

struct Keys {
  ml_sock_key self{};
  ml_sock_key peer{};
};

Keys build(const ml_sock_fields& fields) {
  Keys keys;
  EXPECT_EQ(ml_build_keys(&fields, &keys.self, &keys.peer), 0);
  return keys;
}

TEST(SockKey, KeyIsPaddingFree) {
  // Keys are hashed as raw bytes: every byte must be a named field.
  EXPECT_EQ(sizeof(ml_sock_key), 8u + 16u + 16u + 4u + 4u + 2u + 2u + 4u);
}

TEST(SockKey, Ipv4PeerKeyIsTheOtherEndsOwnKey) {
  auto client = v4_fields("198.18.0.10", 40000, "198.18.0.20", 5201);
  Keys client_keys = build(client);
  Keys server_keys = build(mirror(client));
  EXPECT_TRUE(same_key(client_keys.peer, server_keys.self));
  EXPECT_TRUE(same_key(server_keys.peer, client_keys.self));
  EXPECT_FALSE(same_key(client_keys.self, server_keys.self));
}

TEST(SockKey, Ipv4AddressesAreStoredMapped) {
  Keys keys = build(v4_fields("198.18.0.10", 40000, "198.18.0.20", 5201));
  EXPECT_EQ(keys.self.local_ip6[0], 0u);
  EXPECT_EQ(keys.self.local_ip6[1], 0u);
  EXPECT_EQ(keys.self.local_ip6[2], htonl(0xffff));
  EXPECT_EQ(keys.self.local_ip6[3], ip4("198.18.0.10"));
  EXPECT_EQ(keys.self.local_port, 40000);
  EXPECT_EQ(keys.self.remote_port, 5201);
  EXPECT_EQ(keys.self.local_seq, 1000u);
  EXPECT_EQ(keys.self.remote_seq, 2000u);
}

TEST(SockKey, V4MappedSocketMatchesPlainIpv4Peer) {
  // An AF_INET6 client talking to ::ffff:198.18.0.20 and an AF_INET server.
  auto mapped_client = v6_fields("::ffff:198.18.0.10", 40000, "::ffff:198.18.0.20", 5201);
  auto v4_server = mirror(v4_fields("198.18.0.10", 40000, "198.18.0.20", 5201));
  Keys client_keys = build(mapped_client);
  Keys server_keys = build(v4_server);
  EXPECT_TRUE(same_key(client_keys.peer, server_keys.self));
  EXPECT_TRUE(same_key(server_keys.peer, client_keys.self));
}

TEST(SockKey, Ipv6PeerKeyIsTheOtherEndsOwnKey) {
  auto client = v6_fields("fd00::10", 40000, "fd00::20", 443);
  Keys client_keys = build(client);
  Keys server_keys = build(mirror(client));
  EXPECT_TRUE(same_key(client_keys.peer, server_keys.self));
  EXPECT_EQ(client_keys.self.scope, 0u) << "non-loopback hops may cross namespaces";
}

TEST(SockKey, LoopbackKeysAreScopedToTheNamespace) {
  auto in_a = v4_fields("127.0.0.1", 40000, "127.0.0.1", 5201);
  auto in_b = in_a;
  in_b.netns_cookie = 78;
  Keys a = build(in_a);
  Keys b = build(in_b);
  EXPECT_EQ(a.self.scope, 77u);
  EXPECT_FALSE(same_key(a.self, b.self));
  EXPECT_FALSE(same_key(a.peer, b.self));
  EXPECT_EQ(build(v6_fields("::1", 40000, "::1", 5201)).self.scope, 77u);
  EXPECT_EQ(build(v6_fields("::ffff:127.0.0.5", 1, "::ffff:127.1.2.3", 2)).self.scope, 77u);
}

TEST(SockKey, SameTupleWithOtherSequenceNumbersNeverPairs) {
  auto first = v4_fields("198.18.0.10", 40000, "198.18.0.20", 5201);
  auto second = first;
  second.snd_una = 5000;
  second.rcv_nxt = 6000;
  Keys first_keys = build(first);
  Keys second_server = build(mirror(second));
  EXPECT_FALSE(same_key(first_keys.peer, second_server.self));
}

TEST(SockKey, LoopbackDetection) {
  __u32 address[4];
  ml_ip4_to_mapped(ip4("127.0.0.1"), address);
  EXPECT_TRUE(ml_ip6_is_loopback(address));
  ml_ip4_to_mapped(ip4("128.0.0.1"), address);
  EXPECT_FALSE(ml_ip6_is_loopback(address));
  ip6("::1", address);
  EXPECT_TRUE(ml_ip6_is_loopback(address));
  ip6("::2", address);
  EXPECT_FALSE(ml_ip6_is_loopback(address));
}

TEST(SockKey, UnknownFamilyIsRejected) {
  ml_sock_fields fields{};
  fields.family = 1;  // AF_UNIX
  ml_sock_key self{};
  ml_sock_key peer{};
  EXPECT_EQ(ml_build_keys(&fields, &self, &peer), -1);
}

}  // namespace
