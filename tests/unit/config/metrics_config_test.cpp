// The [metrics] table: off by default, listen addresses with their port, and the loopback rule.

#include <gtest/gtest.h>

#include <string>

#include "config/config.hpp"

#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::parse_error;
using test::parse_ok;

TEST(MetricsConfig, OffByDefault) {
  const Config config = parse_ok("");
  EXPECT_EQ(config.metrics.listen, "");
  EXPECT_FALSE(config.metrics.listen_address.has_value());
  EXPECT_FALSE(config.metrics.allow_non_loopback);
  EXPECT_FALSE(parse_ok("[metrics]\nlisten = \"\"\n").metrics.listen_address.has_value());
}

TEST(MetricsConfig, LoopbackAddressesAreParsed) {
  const Config v4 = parse_ok("[metrics]\nlisten = \"127.0.0.1:9464\"\n");
  ASSERT_TRUE(v4.metrics.listen_address.has_value());
  EXPECT_EQ(v4.metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(v4.metrics.listen_address->port, 9464);
  EXPECT_EQ(to_string(v4.metrics.listen_address->address), "127.0.0.1");
  EXPECT_EQ(to_string(*v4.metrics.listen_address), "127.0.0.1:9464");

  const Config v6 = parse_ok("[metrics]\nlisten = \"[::1]:19464\"\n");
  ASSERT_TRUE(v6.metrics.listen_address.has_value());
  EXPECT_EQ(to_string(*v6.metrics.listen_address), "[::1]:19464");
  EXPECT_TRUE(parse_ok("[metrics]\nlisten = \"127.8.9.10:1\"\n").metrics.listen_address);
}

TEST(MetricsConfig, MalformedAddressesAreRejectedWithTheKey) {
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"127.0.0.1\"\n"),
                       "meshlane.toml:2:10: metrics.listen: \"127.0.0.1\" has no port 1..65535"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"127.0.0.1:0\"\n"), "has no port"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"127.0.0.1:65536\"\n"), "has no port"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"::1:9464\"\n"), "has no port"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"localhost:9464\"\n"),
                       "does not start with an IPv4 or IPv6 address"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = 9464\n"), "expected a string"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nport = 9464\n"),
                       "metrics.port: unknown key (known keys: listen, allow_non_loopback)"));
}

TEST(MetricsConfig, NonLoopbackNeedsExplicitConsent) {
  const std::string refused = parse_error("[metrics]\nlisten = \"0.0.0.0:9464\"\n");
  EXPECT_TRUE(contains(refused, "metrics.listen: \"0.0.0.0:9464\" is not a loopback address"));
  EXPECT_TRUE(contains(refused, "metrics.allow_non_loopback = true"));
  EXPECT_TRUE(contains(parse_error("[metrics]\nlisten = \"[fd00::1]:9464\"\n"),
                       "is not a loopback address"));
  // Whatever the key order.
  const Config allowed =
      parse_ok("[metrics]\nlisten = \"198.18.0.1:9464\"\nallow_non_loopback = true\n");
  ASSERT_TRUE(allowed.metrics.listen_address.has_value());
  EXPECT_FALSE(is_loopback(allowed.metrics.listen_address->address));
  EXPECT_TRUE(parse_ok("[metrics]\nallow_non_loopback = true\nlisten = \"[::]:9464\"\n")
                  .metrics.listen_address);
}

TEST(MetricsConfig, LoopbackMeansTheLoopbackRanges) {
  EXPECT_TRUE(is_loopback(*parse_ip_address("127.0.0.1")));
  EXPECT_TRUE(is_loopback(*parse_ip_address("127.255.0.3")));
  EXPECT_TRUE(is_loopback(*parse_ip_address("::ffff:127.0.0.1")));
  EXPECT_TRUE(is_loopback(*parse_ip_address("::1")));
  EXPECT_FALSE(is_loopback(*parse_ip_address("128.0.0.1")));
  EXPECT_FALSE(is_loopback(*parse_ip_address("0.0.0.0")));
  EXPECT_FALSE(is_loopback(*parse_ip_address("::")));
  EXPECT_FALSE(is_loopback(*parse_ip_address("::2")));
}

}  // namespace
}  // namespace meshlane
