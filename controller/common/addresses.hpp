// IP addresses, prefixes and listen addresses as meshlane keeps them: IPv4 v4-mapped
// (::ffff:a.b.c.d), because the datapath compares every address as 16 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshlane {

// An address prefix, IPv4 or IPv6. IPv4 prefixes are kept as v4-mapped IPv6 (::ffff:a.b.c.d,
// prefix length + 96), the form the datapath compares against.
struct Cidr {
  std::array<std::uint8_t, 16> address{};  // network byte order
  std::uint8_t prefix_length = 0;          // 0..128, in the v4-mapped space for IPv4
  bool is_ipv4 = false;

  bool operator==(const Cidr&) const = default;
};

// An IPv4 or IPv6 address, IPv4 kept v4-mapped.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};  // network byte order
  bool is_ipv4 = false;

  bool operator==(const IpAddress&) const = default;
};

// An IP address and a TCP port to listen on.
struct ListenAddress {
  IpAddress address;
  std::uint16_t port = 0;

  bool operator==(const ListenAddress&) const = default;
};

// Parses "198.18.0.10", "fd00::10", "::ffff:1.2.3.4". nullopt when malformed.
std::optional<IpAddress> parse_ip_address(std::string_view text);
// Parses "198.18.0.0/15", "fd00::/8"; a bare address is a full-length prefix. Host bits must
// be zero. nullopt when malformed.
std::optional<Cidr> parse_cidr(std::string_view text);
std::string to_string(const IpAddress& address);
// "198.18.0.0/16", "fd00::/8" (IPv4 prefix lengths as written, not in the v4-mapped space).
std::string to_string(const Cidr& cidr);
// 127.0.0.0/8 (also v4-mapped) or ::1.
bool is_loopback(const IpAddress& address);
// "127.0.0.1:9464", "[::1]:9464".
std::string to_string(const ListenAddress& listen);

}  // namespace meshlane
