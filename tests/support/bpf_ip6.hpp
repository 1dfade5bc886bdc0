// IPv6 addresses (v4 as "::ffff:a.b.c.d") for the tests of the BPF programs' logic compiled for
// the host (tests/unit/bpf): the programs keep every address as four network-order words.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/types.h>

#include <cstring>

namespace meshlane::testing {

struct Ip6 {
  __u32 words[4]{};
};

// Any textual IPv6 address, including "::ffff:a.b.c.d"; network byte order.
inline Ip6 ip6(const char* text) {
  Ip6 out;
  in6_addr address{};
  EXPECT_EQ(inet_pton(AF_INET6, text, &address), 1) << text;
  std::memcpy(out.words, &address, sizeof(out.words));
  return out;
}

inline void set_ip(__u32 dst[4], const Ip6& ip) { std::memcpy(dst, ip.words, sizeof(ip.words)); }

// EXPECT_TRUE(same_ip(verdict.new_ip6, "::1")) says which address it got instead.
inline ::testing::AssertionResult same_ip(const __u32 actual[4], const char* expected_text) {
  const Ip6 expected = ip6(expected_text);
  if (std::memcmp(actual, expected.words, sizeof(expected.words)) == 0) {
    return ::testing::AssertionSuccess();
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, actual, text, sizeof(text));
  return ::testing::AssertionFailure() << "address is " << text << ", expected " << expected_text;
}

}  // namespace meshlane::testing
