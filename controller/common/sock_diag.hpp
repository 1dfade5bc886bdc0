// Asking the kernel about one TCP socket through NETLINK_SOCK_DIAG (inet_diag).
#pragma once

#include <array>
#include <cstdint>

#include "common/error.hpp"

namespace meshlane {

// One end of a TCP connection as its socket sees it. Addresses in network byte order, IPv4 as
// v4-mapped IPv6 (::ffff:a.b.c.d), the way the datapath's maps hold them.
struct TcpTuple {
  std::array<std::uint8_t, 16> local{};
  std::array<std::uint8_t, 16> remote{};
  std::uint16_t local_port = 0;
  std::uint16_t remote_port = 0;
};

// Whether a TCP connection socket with exactly this tuple exists, in any state but LISTEN
// (TIME_WAIT and half-open included), in the calling thread's network namespace. An IPv4 tuple also
// finds a dual-stack (AF_INET6) socket speaking IPv4, as packet delivery would.
Result<bool> tcp_socket_exists(const TcpTuple& tuple);

}  // namespace meshlane
