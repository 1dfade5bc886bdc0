#include "common/sock_diag.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>

#include "common/unique_fd.hpp"

namespace meshlane {

namespace {

constexpr std::uint8_t kTcpListen = 10;  // TCP_LISTEN in the kernel's tcp_states.h

bool is_v4_mapped(const std::array<std::uint8_t, 16>& address) {
  static constexpr std::array<std::uint8_t, 12> kPrefix = {0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(address.data(), kPrefix.data(), kPrefix.size()) == 0;
}

struct ExactLookup {
  nlmsghdr header;
  inet_diag_req_v2 request;
};

ExactLookup make_lookup(const TcpTuple& tuple) {
  ExactLookup lookup{};
  lookup.header.nlmsg_len = sizeof(lookup);
  lookup.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  lookup.header.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: one socket, found or ENOENT
  lookup.header.nlmsg_seq = 1;
  inet_diag_req_v2& request = lookup.request;
  request.sdiag_protocol = IPPROTO_TCP;
  request.idiag_states = ~0U;
  request.id.idiag_sport = htons(tuple.local_port);
  request.id.idiag_dport = htons(tuple.remote_port);
  request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (is_v4_mapped(tuple.local) && is_v4_mapped(tuple.remote)) {
    request.sdiag_family = AF_INET;
    std::memcpy(&request.id.idiag_src[0], tuple.local.data() + 12, 4);
    std::memcpy(&request.id.idiag_dst[0], tuple.remote.data() + 12, 4);
  } else {
    request.sdiag_family = AF_INET6;
    std::memcpy(request.id.idiag_src, tuple.local.data(), 16);
    std::memcpy(request.id.idiag_dst, tuple.remote.data(), 16);
  }
  return lookup;
}

}  // namespace

Result<bool> tcp_socket_exists(const TcpTuple& tuple) {
  UniqueFd netlink(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!netlink) {
    return make_error(errno, "cannot open a NETLINK_SOCK_DIAG socket");
  }
  // The daemon's event loop waits on this: never for long.
  timeval timeout{.tv_sec = 1, .tv_usec = 0};
  ::setsockopt(netlink.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ExactLookup lookup = make_lookup(tuple);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(netlink.get(), &lookup, sizeof(lookup), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
    return make_error(errno, "cannot send an inet_diag lookup");
  }
  alignas(nlmsghdr) std::array<char, 8192> buffer{};
  const ssize_t length = ::recv(netlink.get(), buffer.data(), buffer.size(), 0);
  if (length < 0) {
    return make_error(errno, "no answer to an inet_diag lookup");
  }
  auto remaining = static_cast<unsigned int>(length);
  for (auto* message = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(message, remaining);
       message = NLMSG_NEXT(message, remaining)) {
    if (message->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      // The kernel looks the tuple up as it would an arriving packet: with no connection of
      // that tuple it answers with the listener of the local port. Only a connected socket
      // (remote port set) is the one asked for.
      const auto* found = static_cast<const inet_diag_msg*>(NLMSG_DATA(message));
      return found->idiag_state != kTcpListen && found->id.idiag_dport == htons(tuple.remote_port);
    }
    if (message->nlmsg_type == NLMSG_ERROR) {
      const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(message));
      if (error->error == -ENOENT) {
        return false;
      }
      return make_error(-error->error, "inet_diag lookup failed");
    }
  }
  return make_error(EPROTO, "unexpected answer to an inet_diag lookup");
}

}  // namespace meshlane
