// [[workload]] sections, mesh presets and the address/prefix parsers they use.
// Over 600 lines on purpose: every key and error message of the [[workload]] section in one
// place.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

#include "test_support.hpp"

namespace meshlane {
namespace {

using Bytes = std::array<std::uint8_t, 16>;
using Ports = std::vector<std::uint16_t>;
using Texts = std::vector<std::string>;

using test::contains;
using test::kSource;
using test::parse_error;
using test::parse_ok;

// A valid [[workload]] section (header on line 1) followed by `extra` keys from line 5 on.
std::string workload_text(const std::string& extra = "", const std::string& name = "a") {
  return "[[workload]]\nname = \"" + name + "\"\nnetns = \"/var/run/netns/" + name +
         "\"\nips = [\"10.0.0.5\"]\n" + extra;
}

// Parses one workload section that is expected to be valid.
WorkloadConfig parse_workload(const std::string& extra) {
  const Config config = parse_ok(workload_text(extra));
  EXPECT_EQ(config.workloads.size(), 1u);
  return config.workloads.empty() ? WorkloadConfig{} : config.workloads.front();
}

std::string workload_error(const std::string& extra) { return parse_error(workload_text(extra)); }

Bytes mapped(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

IpAddress address(std::string_view text) {
  const std::optional<IpAddress> parsed = parse_ip_address(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress{});
}

std::string text_of(const std::optional<IpAddress>& parsed) {
  return parsed ? to_string(*parsed) : "(unset)";
}

Texts texts_of(const std::vector<IpAddress>& addresses) {
  Texts texts;
  for (const IpAddress& a : addresses) {
    texts.push_back(to_string(a));
  }
  return texts;
}

// ---- parse_ip_address / to_string -----------------------------------------------------------

TEST(ParseIpAddress, Ipv4IsStoredV4Mapped) {
  const IpAddress ip = address("198.18.0.10");
  EXPECT_EQ(ip.bytes, mapped(198, 18, 0, 10));
  EXPECT_TRUE(ip.is_ipv4);
  EXPECT_EQ(to_string(ip), "198.18.0.10");
}

TEST(ParseIpAddress, Ipv6) {
  const IpAddress ip = address("fd00::10");
  EXPECT_EQ(ip.bytes, (Bytes{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}));
  EXPECT_FALSE(ip.is_ipv4);
  EXPECT_EQ(to_string(ip), "fd00::10");
  EXPECT_EQ(to_string(address("FD00:0:0::0:1")), "fd00::1");  // printed canonically
  EXPECT_EQ(to_string(address("::")), "::");
}

TEST(ParseIpAddress, V4MappedTextIsTheIpv4Address) {
  const IpAddress ip = address("::ffff:1.2.3.4");
  EXPECT_EQ(ip.bytes, mapped(1, 2, 3, 4));
  EXPECT_TRUE(ip.is_ipv4);
  EXPECT_EQ(ip.bytes, address("1.2.3.4").bytes);
  EXPECT_EQ(to_string(ip), "1.2.3.4");
  // The v4-compatible form (::a.b.c.d, deprecated) is a plain IPv6 address.
  EXPECT_FALSE(address("::1.2.3.4").is_ipv4);
}

TEST(ParseIpAddress, MalformedIsRejected) {
  for (std::string_view text : {"", "garbage", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4",
                                " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/32", "fd00::1::2", "fd00:::1",
                                "fe80::1%eth0", "[fd00::1]", "12345::", "1.2.3.4:80"}) {
    EXPECT_FALSE(parse_ip_address(text).has_value()) << "\"" << text << "\"";
  }
  // inet_pton stops at a NUL; what follows it must not be ignored.
  EXPECT_FALSE(parse_ip_address(std::string_view("1.2.3.4\0junk", 12)).has_value());
}

// ---- parse_cidr -----------------------------------------------------------------------------

TEST(ParseCidr, Ipv4PrefixIsMappedWithLengthPlus96) {
  const std::optional<Cidr> cidr = parse_cidr("198.18.0.0/15");
  ASSERT_TRUE(cidr.has_value());
  EXPECT_EQ(cidr->address, mapped(198, 18, 0, 0));
  EXPECT_EQ(cidr->prefix_length, 111);
  EXPECT_TRUE(cidr->is_ipv4);
  EXPECT_EQ(parse_cidr("0.0.0.0/0")->prefix_length, 96);
  EXPECT_EQ(parse_cidr("1.2.3.4/32")->prefix_length, 128);
}

TEST(ParseCidr, Ipv6Prefix) {
  const std::optional<Cidr> cidr = parse_cidr("fd00::/8");
  ASSERT_TRUE(cidr.has_value());
  EXPECT_EQ(cidr->address, (Bytes{0xfd}));
  EXPECT_EQ(cidr->prefix_length, 8);
  EXPECT_FALSE(cidr->is_ipv4);
  EXPECT_EQ(parse_cidr("fd00::1/128")->prefix_length, 128);
  // ::/0 covers IPv4 too, but is not an IPv4 prefix.
  EXPECT_EQ(parse_cidr("::/0")->prefix_length, 0);
  EXPECT_FALSE(parse_cidr("::/0")->is_ipv4);
}

TEST(ParseCidr, BareAddressIsAFullLengthPrefix) {
  EXPECT_EQ(parse_cidr("10.1.2.3")->prefix_length, 128);
  EXPECT_TRUE(parse_cidr("10.1.2.3")->is_ipv4);
  EXPECT_EQ(parse_cidr("fd00::1")->prefix_length, 128);
}

TEST(ParseCidr, V4MappedTextCountsTheLengthInIpv6Bits) {
  const std::optional<Cidr> cidr = parse_cidr("::ffff:10.0.0.0/104");
  ASSERT_TRUE(cidr.has_value());
  EXPECT_EQ(cidr->address, mapped(10, 0, 0, 0));
  EXPECT_EQ(cidr->prefix_length, 104);
  EXPECT_TRUE(cidr->is_ipv4);
  EXPECT_EQ(parse_cidr("10.0.0.0/8")->prefix_length, 104);
  // Shorter than /96, the prefix reaches outside the v4-mapped space.
  EXPECT_FALSE(parse_cidr("::ffff:0:0/80").has_value());  // host bits: the ffff
  EXPECT_FALSE(parse_cidr("::/80")->is_ipv4);
}

TEST(ParseCidr, HostBitsAreRejected) {
  EXPECT_FALSE(parse_cidr("10.0.0.1/8").has_value());
  EXPECT_FALSE(parse_cidr("11.0.0.0/7").has_value());
  EXPECT_TRUE(parse_cidr("10.0.0.0/7").has_value());
  EXPECT_FALSE(parse_cidr("fd00::1/8").has_value());
  EXPECT_FALSE(parse_cidr("fd00::/7").has_value());
  EXPECT_TRUE(parse_cidr("fc00::/7").has_value());
}

TEST(ParseCidr, MalformedIsRejected) {
  for (std::string_view text :
       {"", "garbage", "garbage/8", "1.2.3.4/33", "fd00::/129", "1.2.3.4/", "/8", "1.2.3.4/-1",
        "1.2.3.4/+8", "10.0.0.0/08", "1.2.3.4/8/8", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0.0/1000",
        "fd00::/1x", "1.2.3/24"}) {
    EXPECT_FALSE(parse_cidr(text).has_value()) << "\"" << text << "\"";
  }
}

// ---- Presets --------------------------------------------------------------------------------

TEST(WorkloadPreset, Istio) {
  const WorkloadConfig preset = workload_preset(MeshKind::kIstio);
  EXPECT_EQ(preset.mesh, MeshKind::kIstio);
  EXPECT_EQ(preset.proxy_uid, 1337u);
  EXPECT_EQ(preset.proxy_gid, 1337u);
  EXPECT_EQ(preset.outbound_port, 15001);
  EXPECT_EQ(preset.inbound_port, 15006);
  EXPECT_EQ(preset.exclude_inbound_ports, (Ports{15008, 15020, 15021, 15090}));
  EXPECT_TRUE(preset.exclude_outbound_ports.empty());
  EXPECT_TRUE(preset.include_inbound_ports.empty());
  EXPECT_TRUE(preset.include_outbound_ports.empty());
  // Envoy's upstream source addresses toward the app: 127.0.0.6 for IPv4, ::6 for IPv6.
  ASSERT_EQ(preset.inbound_passthrough_sources.size(), 2u);
  EXPECT_EQ(preset.inbound_passthrough_sources[0].bytes, mapped(127, 0, 0, 6));
  EXPECT_TRUE(preset.inbound_passthrough_sources[0].is_ipv4);
  EXPECT_EQ(preset.inbound_passthrough_sources[1].bytes,
            (Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6}));
  EXPECT_FALSE(preset.inbound_passthrough_sources[1].is_ipv4);
  EXPECT_LE(preset.inbound_passthrough_sources.size(), kMaxPassthroughSources);
  EXPECT_FALSE(preset.node_proxy_address.has_value());
  EXPECT_EQ(preset.interface, "eth0");
}

TEST(WorkloadPreset, Linkerd) {
  const WorkloadConfig preset = workload_preset(MeshKind::kLinkerd);
  EXPECT_EQ(preset.mesh, MeshKind::kLinkerd);
  EXPECT_EQ(preset.proxy_uid, 2102u);
  EXPECT_EQ(preset.proxy_gid, 2102u);
  EXPECT_EQ(preset.outbound_port, 4140);
  EXPECT_EQ(preset.inbound_port, 4143);
  EXPECT_EQ(preset.exclude_inbound_ports, (Ports{4190, 4191}));
  EXPECT_TRUE(preset.exclude_outbound_ports.empty());
  EXPECT_TRUE(preset.inbound_passthrough_sources.empty());
}

TEST(WorkloadPreset, CustomIsAllZero) {
  const WorkloadConfig preset = workload_preset(MeshKind::kCustom);
  EXPECT_EQ(preset.mesh, MeshKind::kCustom);
  EXPECT_EQ(preset.proxy_uid, 0u);
  EXPECT_EQ(preset.proxy_gid, 0u);
  EXPECT_EQ(preset.outbound_port, 0);
  EXPECT_EQ(preset.inbound_port, 0);
  EXPECT_TRUE(preset.exclude_inbound_ports.empty());
  EXPECT_TRUE(preset.inbound_passthrough_sources.empty());
}

TEST(WorkloadPreset, MeshNames) {
  EXPECT_STREQ(to_string(MeshKind::kIstio), "istio");
  EXPECT_STREQ(to_string(MeshKind::kLinkerd), "linkerd");
  EXPECT_STREQ(to_string(MeshKind::kCustom), "custom");
}

// ---- [[workload]]: presets and overrides ----------------------------------------------------

TEST(ParseWorkload, NoWorkloadsByDefault) {
  EXPECT_TRUE(parse_ok("").workloads.empty());
  EXPECT_TRUE(parse_ok("workload = []\n").workloads.empty());
}

TEST(ParseWorkload, IstioPresetIsTheDefault) {
  const WorkloadConfig w = parse_workload("");
  EXPECT_EQ(w.name, "a");
  EXPECT_EQ(w.netns, "/var/run/netns/a");
  ASSERT_EQ(w.ips.size(), 1u);
  EXPECT_EQ(w.ips[0].bytes, mapped(10, 0, 0, 5));
  EXPECT_EQ(w.mesh, MeshKind::kIstio);
  EXPECT_EQ(w.proxy_uid, 1337u);
  EXPECT_EQ(w.proxy_gid, 1337u);
  EXPECT_EQ(w.outbound_port, 15001);
  EXPECT_EQ(w.inbound_port, 15006);
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{15008, 15020, 15021, 15090}));
  EXPECT_EQ(texts_of(w.inbound_passthrough_sources), (Texts{"127.0.0.6", "::6"}));
  EXPECT_TRUE(w.include_outbound_cidrs.empty());
  EXPECT_FALSE(w.node_proxy_address.has_value());
  EXPECT_EQ(w.node_proxy_port, 0);
  EXPECT_EQ(w.interface, "eth0");
  EXPECT_EQ(parse_workload("mesh = \"istio\"\n").exclude_inbound_ports.size(), 4u);
}

TEST(ParseWorkload, LinkerdPreset) {
  const WorkloadConfig w = parse_workload("mesh = \"linkerd\"\n");
  EXPECT_EQ(w.mesh, MeshKind::kLinkerd);
  EXPECT_EQ(w.proxy_uid, 2102u);
  EXPECT_EQ(w.proxy_gid, 2102u);
  EXPECT_EQ(w.outbound_port, 4140);
  EXPECT_EQ(w.inbound_port, 4143);
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{4190, 4191}));
  EXPECT_TRUE(w.exclude_outbound_ports.empty());
  EXPECT_TRUE(w.inbound_passthrough_sources.empty());
}

TEST(ParseWorkload, OverridingOnePortKeepsTheRestOfThePreset) {
  const WorkloadConfig w = parse_workload("outbound_port = 15111\n");
  EXPECT_EQ(w.outbound_port, 15111);
  EXPECT_EQ(w.inbound_port, 15006);
  EXPECT_EQ(w.proxy_uid, 1337u);
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{15008, 15020, 15021, 15090}));
  EXPECT_EQ(texts_of(w.inbound_passthrough_sources), (Texts{"127.0.0.6", "::6"}));
}

// toml++ hands keys over sorted by name; "inbound_port" sorts before "mesh" and must still win
// over the linkerd preset, wherever it is written.
TEST(ParseWorkload, OverrideWinsWhateverTheKeyOrder) {
  for (const char* extra : {"inbound_port = 5000\nproxy_gid = 7\nmesh = \"linkerd\"\n",
                            "mesh = \"linkerd\"\ninbound_port = 5000\nproxy_gid = 7\n"}) {
    const WorkloadConfig w = parse_workload(extra);
    EXPECT_EQ(w.mesh, MeshKind::kLinkerd);
    EXPECT_EQ(w.inbound_port, 5000);
    EXPECT_EQ(w.outbound_port, 4140);
    EXPECT_EQ(w.proxy_uid, 2102u);
    EXPECT_EQ(w.proxy_gid, 7u);
  }
}

TEST(ParseWorkload, GivenListReplacesThePresetList) {
  EXPECT_EQ(parse_workload("exclude_inbound_ports = [9901]\n").exclude_inbound_ports,
            (Ports{9901}));
  EXPECT_TRUE(parse_workload("exclude_inbound_ports = []\n").exclude_inbound_ports.empty());
  const WorkloadConfig w = parse_workload("mesh = \"linkerd\"\nexclude_inbound_ports = [4191]\n");
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{4191}));
}

TEST(ParseWorkload, GivenPassthroughSourcesReplaceThePresets) {
  EXPECT_EQ(texts_of(parse_workload("inbound_passthrough_sources = [\"127.0.0.7\"]\n")
                         .inbound_passthrough_sources),
            (Texts{"127.0.0.7"}));
  EXPECT_EQ(texts_of(parse_workload("inbound_passthrough_sources = [\"::7\", \"127.0.0.7\"]\n")
                         .inbound_passthrough_sources),
            (Texts{"::7", "127.0.0.7"}));
  // Under linkerd, whose preset has none, a list adds them.
  EXPECT_EQ(texts_of(parse_workload("mesh = \"linkerd\"\ninbound_passthrough_sources = "
                                    "[\"127.0.0.6\"]\n")
                         .inbound_passthrough_sources),
            (Texts{"127.0.0.6"}));
}

// An empty list is how istio's preset addresses are removed (with the old single-address key
// there was no way to).
TEST(ParseWorkload, EmptyPassthroughSourcesRemoveThePresets) {
  const WorkloadConfig w = parse_workload("inbound_passthrough_sources = []\n");
  EXPECT_EQ(w.mesh, MeshKind::kIstio);
  EXPECT_TRUE(w.inbound_passthrough_sources.empty());
  EXPECT_EQ(w.inbound_port, 15006);  // the rest of the preset stays
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{15008, 15020, 15021, 15090}));
  EXPECT_TRUE(parse_workload("mesh = \"linkerd\"\ninbound_passthrough_sources = []\n")
                  .inbound_passthrough_sources.empty());
}

TEST(ParseWorkload, EveryKeyIsParsed) {
  const Config config = parse_ok(R"(
[[workload]]
name = "reviews-v1.canary_2"
netns = "/run/netns/reviews"
ips = ["10.244.1.17", "fd00:10:244:1::17"]
mesh = "custom"
proxy_uid = 1
proxy_gid = 4294967294
outbound_port = 1
inbound_port = 65535
inbound_passthrough_sources = ["fd00::6", "10.244.1.6"]
include_outbound_ports = [80, 443]
exclude_outbound_ports = [3306]
include_inbound_ports = [8080]
exclude_inbound_ports = [9901, 15090]
include_outbound_cidrs = ["10.96.0.0/12", "fd00:10:96::/112"]
exclude_outbound_cidrs = ["10.96.0.10"]
exclude_inbound_cidrs = ["::/0"]
node_proxy = "[fd00::1]:15008"
interface = "veth-0123456789"
)");
  ASSERT_EQ(config.workloads.size(), 1u);
  const WorkloadConfig& w = config.workloads[0];
  EXPECT_EQ(w.name, "reviews-v1.canary_2");
  EXPECT_EQ(w.netns, "/run/netns/reviews");
  ASSERT_EQ(w.ips.size(), 2u);
  EXPECT_EQ(to_string(w.ips[0]), "10.244.1.17");
  EXPECT_EQ(to_string(w.ips[1]), "fd00:10:244:1::17");
  EXPECT_EQ(w.mesh, MeshKind::kCustom);
  EXPECT_EQ(w.proxy_uid, 1u);
  EXPECT_EQ(w.proxy_gid, 4294967294u);
  EXPECT_EQ(w.outbound_port, 1);
  EXPECT_EQ(w.inbound_port, 65535);
  EXPECT_EQ(texts_of(w.inbound_passthrough_sources), (Texts{"fd00::6", "10.244.1.6"}));
  EXPECT_EQ(w.include_outbound_ports, (Ports{80, 443}));
  EXPECT_EQ(w.exclude_outbound_ports, (Ports{3306}));
  EXPECT_EQ(w.include_inbound_ports, (Ports{8080}));
  EXPECT_EQ(w.exclude_inbound_ports, (Ports{9901, 15090}));
  ASSERT_EQ(w.include_outbound_cidrs.size(), 2u);
  EXPECT_EQ(w.include_outbound_cidrs[0].address, mapped(10, 96, 0, 0));
  EXPECT_EQ(w.include_outbound_cidrs[0].prefix_length, 108);
  EXPECT_TRUE(w.include_outbound_cidrs[0].is_ipv4);
  EXPECT_EQ(w.include_outbound_cidrs[1].prefix_length, 112);
  EXPECT_FALSE(w.include_outbound_cidrs[1].is_ipv4);
  ASSERT_EQ(w.exclude_outbound_cidrs.size(), 1u);
  EXPECT_EQ(w.exclude_outbound_cidrs[0].prefix_length, 128);
  ASSERT_EQ(w.exclude_inbound_cidrs.size(), 1u);
  EXPECT_EQ(w.exclude_inbound_cidrs[0].prefix_length, 0);
  EXPECT_EQ(text_of(w.node_proxy_address), "fd00::1");
  EXPECT_EQ(w.node_proxy_port, 15008);
  EXPECT_EQ(w.interface, "veth-0123456789");
}

TEST(ParseWorkload, SeveralWorkloadsKeepTheirOrder) {
  const Config config =
      parse_ok(workload_text("", "a") + workload_text("mesh = \"linkerd\"\n", "b"));
  ASSERT_EQ(config.workloads.size(), 2u);
  EXPECT_EQ(config.workloads[0].name, "a");
  EXPECT_EQ(config.workloads[0].mesh, MeshKind::kIstio);
  EXPECT_EQ(config.workloads[1].name, "b");
  EXPECT_EQ(config.workloads[1].mesh, MeshKind::kLinkerd);
}

TEST(ParseWorkload, InlineArrayOfTablesIsEquivalent) {
  const Config config = parse_ok(
      "workload = [{ name = \"a\", netns = \"/n/a\", ips = [\"fd00::5\"], mesh = \"linkerd\" }]\n");
  ASSERT_EQ(config.workloads.size(), 1u);
  EXPECT_EQ(config.workloads[0].outbound_port, 4140);
}

// ---- [[workload]]: required keys ------------------------------------------------------------

TEST(ParseWorkload, CustomMeshRequiresIdsAndPorts) {
  const std::string first = workload_text("", "a");  // lines 1-4
  const std::string second =
      "\n\n\n\n\n\n\n[[workload]]\n"  // header on line 12
      "name = \"b\"\nnetns = \"/n/b\"\nips = [\"10.0.0.6\"]\n"
      "mesh = \"custom\"\nproxy_uid = 1000\nproxy_gid = 1000\n"
      "inbound_port = 9001\n";
  EXPECT_EQ(parse_error(first + second),
            "meshlane.toml:12:1: workload[1].outbound_port: required when mesh = \"custom\"");

  const std::string custom = "mesh = \"custom\"\n";
  EXPECT_TRUE(contains(workload_error(custom),
                       "meshlane.toml:1:1: workload[0].proxy_uid: "
                       "required when mesh = \"custom\""));
  EXPECT_TRUE(contains(workload_error(custom + "proxy_uid = 1\n"),
                       "workload[0].proxy_gid: required when mesh = \"custom\""));
  EXPECT_TRUE(contains(workload_error(custom + "proxy_uid = 1\nproxy_gid = 1\noutbound_port = 2\n"),
                       "workload[0].inbound_port: required when mesh = \"custom\""));
  const WorkloadConfig w = parse_workload(
      custom + "proxy_uid = 1\nproxy_gid = 2\noutbound_port = 3\ninbound_port = 4\n");
  EXPECT_EQ(w.proxy_uid, 1u);
  EXPECT_EQ(w.proxy_gid, 2u);
  EXPECT_EQ(w.outbound_port, 3);
  EXPECT_EQ(w.inbound_port, 4);
  EXPECT_TRUE(w.exclude_inbound_ports.empty());
  EXPECT_TRUE(w.inbound_passthrough_sources.empty());
}

TEST(ParseWorkload, NameNetnsAndIpsAreRequired) {
  EXPECT_EQ(parse_error("\n  [[workload]]\n  netns = \"/n/a\"\n  ips = [\"10.0.0.5\"]\n"),
            "meshlane.toml:2:3: workload[0].name: required");
  EXPECT_EQ(parse_error("[[workload]]\nname = \"a\"\nips = [\"10.0.0.5\"]\n"),
            "meshlane.toml:1:1: workload[0].netns: required");
  EXPECT_EQ(parse_error("[[workload]]\nname = \"a\"\nnetns = \"/n/a\"\n"),
            "meshlane.toml:1:1: workload[0].ips: required");
  EXPECT_EQ(parse_error("[[workload]]\n"), "meshlane.toml:1:1: workload[0].name: required");
}

TEST(ParseWorkload, IpsMustNotBeEmpty) {
  EXPECT_EQ(parse_error("[[workload]]\nname = \"a\"\nnetns = \"/n/a\"\nips = []\n"),
            "meshlane.toml:4:7: workload[0].ips: must list at least one address of the pod");
}

// ---- [[workload]]: rejected values ----------------------------------------------------------

TEST(ParseWorkload, DuplicateNamesAreRejected) {
  const std::string text =
      workload_text("", "a") + workload_text("", "b") + workload_text("mesh = \"linkerd\"\n", "a");
  EXPECT_EQ(parse_error(text),
            "meshlane.toml:10:8: workload[2].name: duplicate workload name \"a\" (also used by "
            "workload[0])");
}

TEST(ParseWorkload, BadNamesAreRejected) {
  const std::vector<std::string> names = {"",           "has space", "slash/name",
                                          "colon:name", "\xc3\xa9",  std::string(64, 'n')};
  for (const std::string& name : names) {
    EXPECT_TRUE(contains(parse_error(workload_text("", "x") + workload_text("", "y") +
                                     "[[workload]]\nname = \"" + name + "\"\n"),
                         "meshlane.toml:10:8: workload[2].name: \"" + name +
                             "\" is not a valid workload name (1..63 characters from A-Z a-z "
                             "0-9 _ . -)"));
  }
  EXPECT_EQ(parse_ok(workload_text("", std::string(63, 'n'))).workloads.size(), 1u);
}

TEST(ParseWorkload, NetnsMustBeAbsolute) {
  EXPECT_TRUE(contains(parse_error("[[workload]]\nnetns = \"run/netns/a\"\n"),
                       "meshlane.toml:2:9: workload[0].netns: \"run/netns/a\" is not an absolute "
                       "path"));
  EXPECT_TRUE(contains(parse_error("[[workload]]\nnetns = \"\"\n"),
                       "workload[0].netns: \"\" is not an absolute path"));
}

TEST(ParseWorkload, UnknownMeshIsRejected) {
  EXPECT_EQ(workload_error("mesh = \"consul\"\n"),
            "meshlane.toml:5:8: workload[0].mesh: unknown mesh \"consul\" (allowed: istio, "
            "linkerd, custom)");
  EXPECT_TRUE(
      contains(workload_error("mesh = 1\n"), "workload[0].mesh: expected a string, got integer"));
}

TEST(ParseWorkload, UnknownKeyNamesLineAndKnownKeys) {
  EXPECT_EQ(workload_error("\n  colour = \"blue\"\n"),
            "meshlane.toml:6:3: workload[0].colour: unknown key (known keys: name, netns, ips, "
            "mesh, proxy_uid, proxy_gid, outbound_port, inbound_port, "
            "inbound_passthrough_sources, include_outbound_ports, exclude_outbound_ports, "
            "include_inbound_ports, exclude_inbound_ports, include_outbound_cidrs, "
            "exclude_outbound_cidrs, exclude_inbound_cidrs, node_proxy, interface, labels, "
            "acceleration, exclude_acceleration_ports, fast_path, fast_path_exclude_ports, "
            "dns_capture, dns_proxy_port)");
}

TEST(ParseWorkload, WorkloadMustBeAnArrayOfTables) {
  EXPECT_TRUE(contains(parse_error("[workload]\nname = \"a\"\n"),
                       "meshlane.toml:1:1: workload: expected an array of tables (write each "
                       "workload as a [[workload]] section), got table"));
  EXPECT_TRUE(contains(parse_error("workload = 3\n"), "workload: expected an array of tables"));
  EXPECT_TRUE(
      contains(parse_error("workload = [3]\n"), "workload[0]: expected a table, got integer"));
}

TEST(ParseWorkload, BadAddressIsRejected) {
  EXPECT_EQ(parse_error("[[workload]]\nname = \"a\"\nnetns = \"/n/a\"\n"
                        "ips = [\"10.0.0.5\", \"10.0.0.300\"]\n"),
            "meshlane.toml:4:20: workload[0].ips[1]: \"10.0.0.300\" is not an IPv4 or IPv6 "
            "address");
  EXPECT_EQ(workload_error("inbound_passthrough_sources = [\"::6\", \"localhost\"]\n"),
            "meshlane.toml:5:39: workload[0].inbound_passthrough_sources[1]: \"localhost\" is "
            "not an IPv4 or IPv6 address");
  EXPECT_TRUE(contains(workload_error("inbound_passthrough_sources = [127]\n"),
                       "workload[0].inbound_passthrough_sources[0]: expected an address string, "
                       "e.g. \"10.0.0.5\" or \"fd00::5\", got integer"));
  // The old single-address form is not accepted.
  EXPECT_TRUE(contains(workload_error("inbound_passthrough_sources = \"127.0.0.6\"\n"),
                       "meshlane.toml:5:31: workload[0].inbound_passthrough_sources: expected an "
                       "array of address strings, e.g. [\"127.0.0.6\", \"::6\"], got string"));
  EXPECT_TRUE(contains(workload_error("inbound_passthrough_source = \"127.0.0.6\"\n"),
                       "meshlane.toml:5:1: workload[0].inbound_passthrough_source: unknown key"));
  EXPECT_TRUE(contains(parse_error("[[workload]]\nips = \"10.0.0.5\"\n"),
                       "workload[0].ips: expected an array of address strings"));
}

TEST(ParseWorkload, DuplicateAddressIsRejectedInEitherForm) {
  EXPECT_TRUE(contains(parse_error("[[workload]]\nips = [\"10.0.0.5\", \"::ffff:10.0.0.5\"]\n"),
                       "workload[0].ips[1]: duplicate address 10.0.0.5 (each address may be "
                       "listed once)"));
  EXPECT_EQ(workload_error("inbound_passthrough_sources = [\"127.0.0.6\", \"::ffff:127.0.0.6\"]\n"),
            "meshlane.toml:5:45: workload[0].inbound_passthrough_sources[1]: duplicate address "
            "127.0.0.6 (each address may be listed once)");
}

TEST(ParseWorkload, AtMostTwoPassthroughSources) {
  ASSERT_EQ(kMaxPassthroughSources, 2u);
  EXPECT_EQ(workload_error("inbound_passthrough_sources = [\"127.0.0.6\", \"::6\", "
                           "\"127.0.0.7\"]\n"),
            "meshlane.toml:5:31: workload[0].inbound_passthrough_sources: lists 3 addresses (at "
            "most 2 allowed, e.g. one IPv4 and one IPv6 address)");
  // Two of one family are fine; the limit is on the count only.
  EXPECT_EQ(
      texts_of(parse_workload("inbound_passthrough_sources = [\"127.0.0.6\", \"127.0.0.7\"]\n")
                   .inbound_passthrough_sources),
      (Texts{"127.0.0.6", "127.0.0.7"}));
}

TEST(ParseWorkload, CidrWithHostBitsNamesTheNetwork) {
  EXPECT_EQ(workload_error("exclude_outbound_cidrs = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n"),
            "meshlane.toml:5:41: workload[0].exclude_outbound_cidrs[1]: \"10.1.2.3/8\" has host "
            "bits set (every bit after the first 8 must be zero; the network is "
            "\"10.0.0.0/8\")");
  EXPECT_TRUE(contains(workload_error("include_outbound_cidrs = [\"fd00:1::1/32\"]\n"),
                       "workload[0].include_outbound_cidrs[0]: \"fd00:1::1/32\" has host bits "
                       "set (every bit after the first 32 must be zero; the network is "
                       "\"fd00:1::/32\")"));
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = [\"::ffff:10.1.2.3/104\"]\n"),
                       "the network is \"::ffff:10.0.0.0/104\""));
}

TEST(ParseWorkload, MalformedCidrIsRejected) {
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = [\"1.2.3.4/33\"]\n"),
                       "workload[0].exclude_inbound_cidrs[0]: \"1.2.3.4/33\": the prefix length "
                       "must be 0..32 for IPv4 or 0..128 for IPv6"));
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = [\"fd00::/129\"]\n"),
                       "\"fd00::/129\": the prefix length must be"));
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = [\"ten/8\"]\n"),
                       "\"ten/8\" is not an address prefix (expected e.g. \"10.0.0.0/8\" or "
                       "\"fd00::/8\")"));
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = [8]\n"),
                       "workload[0].exclude_inbound_cidrs[0]: expected an address prefix "
                       "string, e.g. \"10.0.0.0/8\" or \"fd00::/8\", got integer"));
  EXPECT_TRUE(contains(workload_error("exclude_inbound_cidrs = \"10.0.0.0/8\"\n"),
                       "workload[0].exclude_inbound_cidrs: expected an array of address "
                       "prefixes"));
}

TEST(ParseWorkload, DuplicateCidrIsRejected) {
  EXPECT_TRUE(contains(workload_error("exclude_outbound_cidrs = [\"10.0.0.0/8\", "
                                      "\"::ffff:10.0.0.0/104\"]\n"),
                       "workload[0].exclude_outbound_cidrs[1]: duplicate prefix 10.0.0.0/8"));
  // Same address, other length: two different prefixes.
  EXPECT_EQ(parse_workload("exclude_outbound_cidrs = [\"10.0.0.0/8\", \"10.0.0.0/16\"]\n")
                .exclude_outbound_cidrs.size(),
            2u);
}

TEST(ParseWorkload, PortsAndIdsAreRangeChecked) {
  EXPECT_TRUE(contains(workload_error("outbound_port = 0\n"),
                       "meshlane.toml:5:17: workload[0].outbound_port: 0 is out of range "
                       "(allowed 1..65535)"));
  EXPECT_TRUE(contains(workload_error("inbound_port = 65536\n"), "out of range"));
  EXPECT_TRUE(contains(workload_error("proxy_uid = 4294967295\n"),
                       "workload[0].proxy_uid: 4294967295 is out of range (allowed "
                       "1..4294967294)"));
  EXPECT_TRUE(contains(workload_error("proxy_gid = -1\n"), "workload[0].proxy_gid: -1 is out"));
  // Root as the proxy would let every root process of the pod bypass the mesh.
  EXPECT_TRUE(contains(workload_error("proxy_uid = 0\n"),
                       "workload[0].proxy_uid: 0 (root) cannot be the proxy's id"));
  EXPECT_TRUE(contains(workload_error("proxy_gid = 0\n"),
                       "workload[0].proxy_gid: 0 (root) cannot be the proxy's id"));
  EXPECT_TRUE(contains(workload_error("mesh = \"custom\"\nproxy_uid = 0\nproxy_gid = 7\n"
                                      "outbound_port = 1\ninbound_port = 2\n"),
                       "workload[0].proxy_uid: 0 (root)"));
  EXPECT_TRUE(contains(workload_error("exclude_outbound_ports = [80, 80]\n"),
                       "workload[0].exclude_outbound_ports[1]: duplicate port 80"));
  EXPECT_TRUE(contains(workload_error("include_inbound_ports = [\"http\"]\n"),
                       "workload[0].include_inbound_ports[0]: expected an integer 1..65535"));
}

TEST(ParseWorkload, FastPathIsOffByDefault) {
  const WorkloadConfig w = parse_workload("");
  EXPECT_FALSE(w.fast_path);
  EXPECT_TRUE(w.fast_path_exclude_ports.empty());
  for (const char* mesh : {"istio", "linkerd"}) {
    EXPECT_FALSE(parse_workload(std::string("mesh = \"") + mesh + "\"\n").fast_path) << mesh;
  }
}

TEST(ParseWorkload, DnsCaptureIsOffByDefaultWithEachMeshsProxyPort) {
  const WorkloadConfig istio = parse_workload("");
  EXPECT_FALSE(istio.dns_capture);
  EXPECT_EQ(istio.dns_proxy_port, 15053);
  const WorkloadConfig linkerd = parse_workload("mesh = \"linkerd\"\n");
  EXPECT_FALSE(linkerd.dns_capture);
  EXPECT_EQ(linkerd.dns_proxy_port, 0);  // linkerd has no DNS proxy
}

TEST(ParseWorkload, DnsCaptureKeys) {
  const WorkloadConfig on = parse_workload("dns_capture = true\n");
  EXPECT_TRUE(on.dns_capture);
  EXPECT_EQ(on.dns_proxy_port, 15053);
  const WorkloadConfig port = parse_workload("dns_capture = true\ndns_proxy_port = 5353\n");
  EXPECT_EQ(port.dns_proxy_port, 5353);
  EXPECT_TRUE(contains(workload_error("dns_capture = \"yes\"\n"),
                       "workload[0].dns_capture: expected a boolean"));
  EXPECT_TRUE(contains(workload_error("dns_proxy_port = 0\n"),
                       "workload[0].dns_proxy_port: 0 is out of range"));
}

TEST(ParseWorkload, DnsCaptureNeedsADnsProxy) {
  EXPECT_TRUE(contains(workload_error("mesh = \"linkerd\"\ndns_capture = true\n"),
                       "workload[0].dns_capture: dns_capture = true needs a DNS proxy: "
                       "dns_proxy_port is 0 (linkerd has none)"));
  // Settable for linkerd too when the operator runs a DNS proxy of their own.
  const WorkloadConfig linkerd =
      parse_workload("mesh = \"linkerd\"\ndns_capture = true\ndns_proxy_port = 5353\n");
  EXPECT_TRUE(linkerd.dns_capture);
  EXPECT_EQ(linkerd.dns_proxy_port, 5353);
}

TEST(ParseWorkload, FastPathKeys) {
  const WorkloadConfig w =
      parse_workload("fast_path = true\nfast_path_exclude_ports = [9443, 5432]\n");
  EXPECT_TRUE(w.fast_path);
  EXPECT_EQ(w.fast_path_exclude_ports, (Ports{9443, 5432}));
  // The exclusions may be given with the fast path off (kept for when it is turned on).
  const WorkloadConfig off = parse_workload("fast_path_exclude_ports = [9443]\n");
  EXPECT_FALSE(off.fast_path);
  EXPECT_EQ(off.fast_path_exclude_ports, (Ports{9443}));
  EXPECT_TRUE(parse_workload("fast_path_exclude_ports = []\n").fast_path_exclude_ports.empty());
}

TEST(ParseWorkload, FastPathKeysAreChecked) {
  EXPECT_TRUE(contains(workload_error("fast_path = \"yes\"\n"),
                       "meshlane.toml:5:13: workload[0].fast_path: expected a boolean"));
  EXPECT_TRUE(
      contains(workload_error("fast_path = 1\n"), "workload[0].fast_path: expected a boolean"));
  EXPECT_TRUE(contains(workload_error("fast_path_exclude_ports = [80, 80]\n"),
                       "workload[0].fast_path_exclude_ports[1]: duplicate port 80"));
  EXPECT_TRUE(contains(workload_error("fast_path_exclude_ports = [0]\n"),
                       "workload[0].fast_path_exclude_ports[0]: 0 is out of range (allowed "
                       "1..65535)"));
  EXPECT_TRUE(contains(workload_error("fast_path_exclude_ports = [65536]\n"), "out of range"));
  EXPECT_TRUE(contains(workload_error("fast_path_exclude_ports = [\"https\"]\n"),
                       "workload[0].fast_path_exclude_ports[0]: expected an integer 1..65535"));
  EXPECT_TRUE(contains(workload_error("fast_path_exclude_ports = 443\n"),
                       "workload[0].fast_path_exclude_ports: expected an array of port numbers"));
}

TEST(ParseWorkload, OutboundAndInboundPortMustDiffer) {
  EXPECT_EQ(workload_error("outbound_port = 15006\n"),
            "meshlane.toml:5:17: workload[0].outbound_port: outbound_port and inbound_port are "
            "both 15006 (they must differ)");
  EXPECT_TRUE(contains(workload_error("outbound_port = 7\ninbound_port = 7\n"),
                       "meshlane.toml:6:16: workload[0].inbound_port: outbound_port and "
                       "inbound_port are both 7"));
}

// ---- [[workload]]: node_proxy and interface -------------------------------------------------

TEST(ParseWorkload, NodeProxyForms) {
  struct Case {
    const char* text;
    const char* address;
    std::uint16_t port;
  };
  for (const Case& c : {Case{"10.0.0.1:15001", "10.0.0.1", 15001}, Case{"10.0.0.1", "10.0.0.1", 0},
                        Case{"[fd00::1]:15008", "fd00::1", 15008}, Case{"[fd00::1]", "fd00::1", 0},
                        Case{"fd00::1", "fd00::1", 0}, Case{"[::ffff:10.0.0.1]:1", "10.0.0.1", 1},
                        Case{"10.0.0.1:65535", "10.0.0.1", 65535}}) {
    const WorkloadConfig w = parse_workload(std::string("node_proxy = \"") + c.text + "\"\n");
    EXPECT_EQ(text_of(w.node_proxy_address), c.address) << c.text;
    EXPECT_EQ(w.node_proxy_port, c.port) << c.text;
  }
}

TEST(ParseWorkload, BadNodeProxyIsRejected) {
  EXPECT_EQ(workload_error("node_proxy = \"10.0.0.1:0\"\n"),
            "meshlane.toml:5:14: workload[0].node_proxy: \"10.0.0.1:0\": port \"0\" is not an "
            "integer 1..65535 (expected ADDR, ADDR:PORT or [IPv6]:PORT, e.g. "
            "\"10.0.0.1:15001\" or \"[fd00::1]:15001\")");
  for (const char* text : {"10.0.0.1:65536", "10.0.0.1:", "10.0.0.1:http", "10.0.0.1:+80",
                           "10.0.0.1:080", "[fd00::1]:"}) {
    EXPECT_TRUE(contains(workload_error(std::string("node_proxy = \"") + text + "\"\n"),
                         "is not an integer 1..65535"))
        << text;
  }
  for (const char* text :
       {"", "node:15001", "[fd00::1", "[fd00::1]15001", "fd00::1]:80", "10.0.0.300:80", "[]:80"}) {
    EXPECT_TRUE(contains(workload_error(std::string("node_proxy = \"") + text + "\"\n"),
                         "workload[0].node_proxy: \"" + std::string(text) +
                             "\" does not start with an IPv4 or IPv6 address"))
        << text;
  }
  EXPECT_TRUE(contains(workload_error("node_proxy = 15001\n"),
                       "workload[0].node_proxy: expected a string, got integer"));
}

TEST(ParseWorkload, InterfaceNameIsChecked) {
  EXPECT_EQ(parse_workload("interface = \"0123456789abcde\"\n").interface, "0123456789abcde");
  EXPECT_EQ(workload_error("interface = \"0123456789abcdef\"\n"),
            "meshlane.toml:5:13: workload[0].interface: \"0123456789abcdef\" is not a valid "
            "interface name (1..15 characters, no '/', ':' or spaces, not \".\" or \"..\")");
  for (const char* name : {"", "eth/0", "eth:0", "eth 0", "eth\t0", ".", ".."}) {
    EXPECT_TRUE(contains(workload_error(std::string("interface = \"") + name + "\"\n"),
                         "is not a valid interface name"))
        << name;
  }
}

// ---- The shipped example --------------------------------------------------------------------

// The commented-out example in config/meshlane.toml must parse once uncommented: its key lines
// are written "#key = value" and "#[[workload]]", its documentation "# ...".
TEST(ShippedConfig, WorkloadExampleParsesWhenUncommented) {
  std::ifstream file(MESHLANE_FIXTURE_DIR "/../../config/meshlane.toml");
  ASSERT_TRUE(file.is_open());
  std::ostringstream uncommented;
  int example_lines = 0;
  for (std::string line; std::getline(file, line);) {
    const bool example =
        line.size() > 1 && line[0] == '#' && (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z'));
    if (example) {
      line.erase(0, 1);
      ++example_lines;
    }
    uncommented << line << '\n';
  }
  EXPECT_GE(example_lines, 20);
  const Config config = parse_ok(uncommented.str());
  ASSERT_EQ(config.workloads.size(), 2u);
  const WorkloadConfig& reviews = config.workloads[0];
  EXPECT_EQ(reviews.name, "reviews-v1");
  EXPECT_EQ(reviews.mesh, MeshKind::kIstio);
  EXPECT_EQ(reviews.ips.size(), 2u);
  EXPECT_EQ(reviews.exclude_inbound_ports, (Ports{15008, 15020, 15021, 15090, 9901}));
  EXPECT_EQ(texts_of(reviews.inbound_passthrough_sources), (Texts{"127.0.0.6", "::6"}));
  EXPECT_FALSE(reviews.node_proxy_address.has_value());
  EXPECT_FALSE(reviews.fast_path);  // the example shows the default: off
  EXPECT_EQ(reviews.fast_path_exclude_ports, (Ports{9443}));
  const WorkloadConfig& web = config.workloads[1];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.mesh, MeshKind::kLinkerd);
  EXPECT_EQ(web.outbound_port, 4140);
  EXPECT_EQ(web.exclude_inbound_ports, (Ports{4190, 4191}));
  EXPECT_TRUE(web.inbound_passthrough_sources.empty());
}

}  // namespace
}  // namespace meshlane

namespace meshlane {
namespace {

TEST(ParseWorkloadLabels, LabelsAreReadAndChecked) {
  EXPECT_TRUE(contains(workload_error("labels = { app = \"web\", \"x/y\" = 3 }\n"),
                       "workload[0].labels.x/y: expected a string, got integer"));
  EXPECT_TRUE(
      contains(workload_error("labels = { app = \"no spaces\" }\n"), "not a valid label value"));
  EXPECT_TRUE(contains(workload_error("labels = \"app=web\"\n"), "expected a table of labels"));
}

}  // namespace
}  // namespace meshlane
