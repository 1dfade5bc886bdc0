// tcp_socket_exists against real sockets on this namespace's loopback.
#include "common/sock_diag.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/unique_fd.hpp"

namespace meshlane {
namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

std::uint16_t port_of(int fd, bool peer) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  EXPECT_EQ(peer ? ::getpeername(fd, generic, &length) : ::getsockname(fd, generic, &length), 0);
  return ntohs(address.sin_port);
}

// 127.0.0.1 as the datapath writes it: v4-mapped.
std::array<std::uint8_t, 16> mapped_loopback() {
  return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
}

// Closes with a RST: no TIME_WAIT is left behind.
void abort_close(UniqueFd& fd) {
  linger hard{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  fd.reset();
}

TEST(SockDiag, FindsAnAcceptedConnectionButNotItsListener) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener);
  sockaddr_in any_port = loopback(0);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&any_port), sizeof(any_port)), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  const std::uint16_t server_port = port_of(listener.get(), false);

  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(client);
  sockaddr_in server = loopback(server_port);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&server), sizeof(server)), 0);
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted);
  const std::uint16_t client_port = port_of(client.get(), false);

  TcpTuple tuple;
  tuple.local = mapped_loopback();
  tuple.remote = mapped_loopback();
  tuple.local_port = server_port;
  tuple.remote_port = client_port;
  auto found = tcp_socket_exists(tuple);
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_TRUE(found.value());

  // Another client port: the kernel's lookup would fall back to the listener, which is not
  // the connection asked for.
  tuple.remote_port = static_cast<std::uint16_t>(client_port == 65535 ? 65534 : client_port + 1);
  auto other = tcp_socket_exists(tuple);
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_FALSE(other.value());

  // Gone once both ends are closed without a TIME_WAIT.
  tuple.remote_port = client_port;
  abort_close(accepted);
  abort_close(client);
  auto gone = tcp_socket_exists(tuple);
  ASSERT_TRUE(gone) << gone.error().message();
  EXPECT_FALSE(gone.value());
}

}  // namespace
}  // namespace meshlane
