// Address and prefix parsing for the configuration: IPv4 is kept v4-mapped (::ffff:a.b.c.d)
// because the datapath compares every address as 16 bytes, whatever the socket's family.
//
// is_ipv4 means "lies in the v4-mapped space", not "was written in dotted form": the text
// "::ffff:1.2.3.4" and "1.2.3.4" name the same peer on the wire, so they parse to equal values.

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/addresses.hpp"

namespace meshlane {
namespace {

using Bytes = std::array<std::uint8_t, 16>;

constexpr std::uint8_t kMappedPrefixLength = 96;  // ::ffff:0:0/96
constexpr std::uint8_t kIpv4Bits = 32;
constexpr std::uint8_t kIpv6Bits = 128;

bool is_v4_mapped(const Bytes& bytes) {
  constexpr Bytes kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(bytes.begin(), bytes.begin() + 12, kMappedPrefix.begin());
}

// True when every bit after the first `prefix_length` bits is zero.
bool host_bits_are_zero(const Bytes& bytes, std::uint8_t prefix_length) {
  for (std::size_t bit = prefix_length; bit < kIpv6Bits; ++bit) {
    if ((bytes[bit / 8] & (0x80u >> (bit % 8))) != 0) {
      return false;
    }
  }
  return true;
}

// Strict decimal: digits only, no sign, no leading zero ("08" is more likely a typo than 8).
std::optional<unsigned> parse_prefix_length(std::string_view text) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text.front() == '0')) {
    return std::nullopt;
  }
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  // inet_pton stops at a NUL, so "1.2.3.4\0junk" would otherwise pass.
  if (text.empty() || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string terminated(text);
  IpAddress address;
  if (text.find(':') != std::string_view::npos) {
    if (::inet_pton(AF_INET6, terminated.c_str(), address.bytes.data()) != 1) {
      return std::nullopt;
    }
    address.is_ipv4 = is_v4_mapped(address.bytes);
    return address;
  }
  if (::inet_pton(AF_INET, terminated.c_str(), address.bytes.data() + 12) != 1) {
    return std::nullopt;
  }
  address.bytes[10] = 0xff;
  address.bytes[11] = 0xff;
  address.is_ipv4 = true;
  return address;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  const std::optional<IpAddress> address = parse_ip_address(address_text);
  if (!address) {
    return std::nullopt;
  }
  // The prefix length is counted in the family it was written in.
  const bool written_as_ipv4 = address_text.find(':') == std::string_view::npos;
  const unsigned family_bits = written_as_ipv4 ? kIpv4Bits : kIpv6Bits;
  unsigned length = family_bits;
  if (slash != std::string_view::npos) {
    const std::optional<unsigned> parsed = parse_prefix_length(text.substr(slash + 1));
    if (!parsed || *parsed > family_bits) {
      return std::nullopt;
    }
    length = *parsed;
  }
  Cidr cidr;
  cidr.address = address->bytes;
  cidr.prefix_length =
      static_cast<std::uint8_t>(written_as_ipv4 ? length + kMappedPrefixLength : length);
  if (!host_bits_are_zero(cidr.address, cidr.prefix_length)) {
    return std::nullopt;
  }
  // Only a prefix wholly inside ::ffff:0:0/96 is IPv4; "::/0" also covers IPv4 but is not one.
  cidr.is_ipv4 = cidr.prefix_length >= kMappedPrefixLength && is_v4_mapped(cidr.address);
  return cidr;
}

std::string to_string(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.is_ipv4) {
    ::inet_ntop(AF_INET, address.bytes.data() + 12, text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, address.bytes.data(), text, sizeof text);
  }
  return text;
}

std::string to_string(const Cidr& cidr) {
  const unsigned length = cidr.is_ipv4 ? cidr.prefix_length - 96u : cidr.prefix_length;
  return to_string(IpAddress{cidr.address, cidr.is_ipv4}) + "/" + std::to_string(length);
}

bool is_loopback(const IpAddress& address) {
  if (address.is_ipv4) {
    return address.bytes[12] == 127;
  }
  constexpr Bytes kIpv6Loopback = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return address.bytes == kIpv6Loopback;
}

std::string to_string(const ListenAddress& listen) {
  const std::string host = to_string(listen.address);
  return (listen.address.is_ipv4 ? host : "[" + host + "]") + ":" + std::to_string(listen.port);
}

}  // namespace meshlane
