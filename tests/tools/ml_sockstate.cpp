// ml_sockstate: what meshlane's socket storage holds for both ends of one TCP connection, read
// back from the kernel by socket fd (the only key a socket-storage map has).
//
//   ml_sockstate --maps BPFFS_DIR --server-netns PATH --client-netns PATH --connect ADDR:PORT
//                [--blocking] [--refused ADDR:PORT] [--bytes N]
//
// Runs in the cgroup meshlane is attached to, and enters the network namespaces itself (paths
// such as /run/netns/NAME) instead of running under `ip netns exec`, which remounts /sys and
// with it the bpffs directory the maps are pinned in. It opens a listener on the any-address of
// --connect's family and port in --server-netns, opens the client socket in --client-netns,
// connects to --connect, accepts, sends --bytes (default 65536) of a counting pattern each way
// and checks every byte.
// Sockets are non-blocking from the start (listener before listen(), client before connect(),
// accepted through accept4(SOCK_NONBLOCK)), or blocking with --blocking.
//
// --refused ADDR:PORT: the client socket first connects there (blocking), which must fail with
// ECONNREFUSED, and then connects to --connect with the same socket, as a client that retries
// with one socket does.
//
// Then it looks both sockets up in the pinned maps ml_sockstate_v1 (struct ml_sock_state, from
// the header the BPF programs use; its value size is checked) and ml_srvlistener_v1, the server
// end also in ml_listenmode_v1 (the record the kernel cloned from its listener: the mode, or
// false when there is none, as for a listener sock_ops marked non-blocking in its flags, which
// user space cannot read), and prints one JSON line:
//   {"ok":true,"bytes":N,
//    "client":{"sockstate":true,"hop":4,"fallback":0,"has_orig_dst":0,"pairing":0,
//              "srvlistener":false},
//    "server":{"sockstate":false,"srvlistener":false,"listenmode":1}}
// Fields of a storage are printed only when the socket has one. Exit status: 0 success, 1 a
// byte was wrong or the exchange failed, 2 usage or set-up errors (also: --refused connected).
//
//   ml_sockstate --maps BPFFS_DIR --listeners-of PID
//
// Instead: the record in ml_listenmode_v1 of each listening TCP socket process PID holds (its
// own, which the kernel clones into what it accepts), read through a duplicate of its file
// (pidfd_getfd), one JSON line sorted by port:
//   {"ok":true,"listeners":[{"port":15001,"listenmode":2},{"port":15006,"listenmode":false}]}

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "meshlane/listener_types.h"
#include "meshlane/splice_types.h"

namespace {

[[noreturn]] void die(int status, const std::string& what) {
  std::fprintf(stderr, "ml_sockstate: %s\n", what.c_str());
  std::printf("{\"ok\":false,\"error\":\"%s\"}\n", what.c_str());
  std::exit(status);
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

long bpf(int cmd, bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

int pinned_map(const std::string& path, std::uint32_t value_size) {
  bpf_attr attr{};
  attr.pathname = reinterpret_cast<std::uint64_t>(path.c_str());
  const int fd = static_cast<int>(bpf(BPF_OBJ_GET, &attr));
  if (fd < 0) {
    die(2, errno_text("cannot open the pinned map " + path));
  }
  bpf_map_info info{};
  bpf_attr get{};
  get.info.bpf_fd = static_cast<std::uint32_t>(fd);
  get.info.info_len = sizeof(info);
  get.info.info = reinterpret_cast<std::uint64_t>(&info);
  if (bpf(BPF_OBJ_GET_INFO_BY_FD, &get) != 0) {
    die(2, errno_text("cannot read the map info of " + path));
  }
  if (info.value_size != value_size) {
    die(2, path + ": value size " + std::to_string(info.value_size) + ", this tool knows " +
               std::to_string(value_size));
  }
  return fd;
}

// Whether the socket `sock` has storage in the map; its value goes to `value`.
bool storage_of(int map, int sock, void* value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<std::uint32_t>(map);
  attr.key = reinterpret_cast<std::uint64_t>(&sock);
  attr.value = reinterpret_cast<std::uint64_t>(value);
  if (bpf(BPF_MAP_LOOKUP_ELEM, &attr) == 0) {
    return true;
  }
  if (errno != ENOENT) {
    die(2, errno_text("cannot look a socket up in a storage map"));
  }
  return false;
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
};

// ADDR:PORT, an IPv6 address in brackets ([fd00::12]:8097).
Address parse_address(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    die(2, "address without a port: " + text);
  }
  std::string host = text.substr(0, colon);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), text.c_str() + colon + 1, &hints, &found) != 0) {
    die(2, "not an address and port: " + text);
  }
  Address out;
  std::memcpy(&out.storage, found->ai_addr, found->ai_addrlen);
  out.length = found->ai_addrlen;
  out.family = found->ai_family;
  ::freeaddrinfo(found);
  if ((out.family == AF_INET6) != bracketed) {
    die(2, "an IPv6 address goes in brackets, an IPv4 one does not: " + text);
  }
  return out;
}

void enter_netns(int netns_fd, const std::string& name) {
  if (::setns(netns_fd, CLONE_NEWNET) != 0) {
    die(2, errno_text("cannot enter the network namespace " + name));
  }
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    die(2, errno_text("cannot make a socket non-blocking"));
  }
}

void wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  if (::poll(&p, 1, 30000) != 1) {
    die(1, "no progress on a socket in 30 s");
  }
}

void enter_netns(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    die(2, errno_text("cannot open the network namespace " + path));
  }
  enter_netns(fd, path);
  ::close(fd);
}

int listen_in(const std::string& netns_path, const Address& at, bool blocking) {
  enter_netns(netns_path);
  const int fd = ::socket(at.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  Address any = at;
  if (at.family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&any.storage)->sin6_addr = in6addr_any;
  } else {
    reinterpret_cast<sockaddr_in*>(&any.storage)->sin_addr.s_addr = htonl(INADDR_ANY);
  }
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    die(2, errno_text("cannot open the listener"));
  }
  if (!blocking) {
    set_nonblocking(fd);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&any.storage), any.length) != 0 ||
      ::listen(fd, 4) != 0) {
    die(2, errno_text("cannot listen in " + netns_path));
  }
  return fd;
}

void connect_refused(int fd, const Address& to) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.storage), to.length) == 0) {
    die(2, "the --refused address accepted the connection");
  }
  if (errno != ECONNREFUSED) {
    die(2, errno_text("the --refused connect failed otherwise than refused"));
  }
}

void connect_to(int fd, const Address& to) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.storage), to.length) == 0) {
    return;
  }
  if (errno != EINPROGRESS) {
    die(2, errno_text("cannot connect"));
  }
  wait_for(fd, POLLOUT);
  int error = 0;
  socklen_t length = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
    errno = error;
    die(2, errno_text("cannot connect"));
  }
}

int accept_from(int listener, bool blocking) {
  wait_for(listener, POLLIN);
  const int fd =
      ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK));
  if (fd < 0) {
    die(2, errno_text("cannot accept"));
  }
  return fd;
}

// Sends `bytes` of the pattern on `from` and reads them on `to`, checking each.
void exchange(int from, int to, std::size_t bytes) {
  std::vector<unsigned char> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out[i] = static_cast<unsigned char>((i * 7U + 3U) & 0xffU);
  }
  std::vector<unsigned char> in(bytes);
  std::size_t sent = 0;
  std::size_t received = 0;
  while (received < bytes) {
    if (sent < bytes) {
      const ssize_t n = ::send(from, out.data() + sent, bytes - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (errno != EAGAIN) {
        die(1, errno_text("send failed"));
      }
    }
    pollfd p{to, POLLIN, 0};
    if (::poll(&p, 1, 30000) != 1) {
      die(1, "no data in 30 s");
    }
    const ssize_t n = ::recv(to, in.data() + received, bytes - received, MSG_DONTWAIT);
    if (n == 0) {
      die(1, "early EOF");
    }
    if (n < 0 && errno != EAGAIN) {
      die(1, errno_text("recv failed"));
    }
    if (n > 0) {
      received += static_cast<std::size_t>(n);
    }
  }
  if (std::memcmp(in.data(), out.data(), bytes) != 0) {
    die(1, "the bytes received differ from the bytes sent");
  }
}

// mode_map: ml_listenmode_v1 for the server end, -1 for the client end.
std::string end_json(int sock, int state_map, int listener_map, int mode_map) {
  ml_sock_state state{};
  ml_server_listener note{};
  ml_listener_state cloned{};
  std::string out = "{";
  if (storage_of(state_map, sock, &state)) {
    out += R"("sockstate":true,"hop":)" + std::to_string(state.hop) +
           ",\"fallback\":" + std::to_string(state.fallback) +
           ",\"has_orig_dst\":" + std::to_string(state.has_orig_dst) +
           ",\"pairing\":" + std::to_string(state.pairing);
  } else {
    out += "\"sockstate\":false";
  }
  out += storage_of(listener_map, sock, &note) ? ",\"srvlistener\":true" : ",\"srvlistener\":false";
  if (mode_map >= 0) {
    out += storage_of(mode_map, sock, &cloned) ? ",\"listenmode\":" + std::to_string(cloned.mode)
                                               : ",\"listenmode\":false";
  }
  return out + "}";
}

// The listening TCP sockets of process `pid`, by port, each with its mode record or false.
std::string listeners_json(pid_t pid, int mode_map) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    die(2, errno_text("cannot open process " + std::to_string(pid)));
  }
  std::multimap<unsigned, std::string> found;
  std::error_code error;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string target = std::filesystem::read_symlink(entry.path(), error).string();
    if (error || target.rfind("socket:", 0) != 0) {
      continue;
    }
    const int number = std::atoi(entry.path().filename().c_str());
    const int sock = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, number, 0));
    if (sock < 0) {
      continue;  // closed since the listing
    }
    int listening = 0;
    int protocol = 0;
    socklen_t size = sizeof(int);
    sockaddr_storage local{};
    socklen_t local_size = sizeof(local);
    const bool tcp_listener =
        ::getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 && listening != 0 &&
        ::getsockopt(sock, SOL_SOCKET, SO_PROTOCOL, &protocol, &size) == 0 &&
        protocol == IPPROTO_TCP &&
        ::getsockname(sock, reinterpret_cast<sockaddr*>(&local), &local_size) == 0;
    if (tcp_listener) {
      const unsigned port =
          ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
      ml_listener_state record{};
      found.emplace(port, storage_of(mode_map, sock, &record) ? std::to_string(record.mode)
                                                              : std::string("false"));
    }
    ::close(sock);
  }
  if (error) {
    die(2, "cannot list " + dir + ": " + error.message());
  }
  ::close(pidfd);
  std::string out = "[";
  for (const auto& [port, mode] : found) {
    out += (out.size() > 1 ? "," : "") + std::string(R"({"port":)") + std::to_string(port) +
           R"(,"listenmode":)" + mode + "}";
  }
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  std::string maps, server_netns, client_netns, connect, refused;
  pid_t listeners_of = 0;
  bool blocking = false;
  std::size_t bytes = 65536;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--blocking") {
      blocking = true;
    } else if (arg == "--maps" && has_value) {
      maps = argv[++i];
    } else if (arg == "--server-netns" && has_value) {
      server_netns = argv[++i];
    } else if (arg == "--client-netns" && has_value) {
      client_netns = argv[++i];
    } else if (arg == "--connect" && has_value) {
      connect = argv[++i];
    } else if (arg == "--refused" && has_value) {
      refused = argv[++i];
    } else if (arg == "--listeners-of" && has_value) {
      listeners_of = static_cast<pid_t>(std::strtol(argv[++i], nullptr, 10));
    } else if (arg == "--bytes" && has_value) {
      bytes = std::strtoul(argv[++i], nullptr, 10);
    } else {
      die(2,
          "usage: ml_sockstate --maps DIR --server-netns PATH --client-netns PATH "
          "--connect ADDR:PORT "
          "[--blocking] [--refused ADDR:PORT] [--bytes N] | ml_sockstate --maps DIR "
          "--listeners-of PID");
    }
  }
  if (listeners_of > 0 && !maps.empty()) {
    const int modes = pinned_map(maps + "/" ML_LISTEN_MODE_MAP_NAME, sizeof(ml_listener_state));
    std::printf("{\"ok\":true,\"listeners\":%s}\n", listeners_json(listeners_of, modes).c_str());
    return 0;
  }
  if (maps.empty() || server_netns.empty() || client_netns.empty() || connect.empty() ||
      bytes == 0) {
    die(2, "--maps, --server-netns, --client-netns and --connect are required, --bytes > 0");
  }
  const int state_map = pinned_map(maps + "/" ML_SOCK_STATE_MAP_NAME, sizeof(ml_sock_state));
  const int listener_map =
      pinned_map(maps + "/" ML_SERVER_LISTENER_MAP_NAME, sizeof(ml_server_listener));
  const int mode_map = pinned_map(maps + "/" ML_LISTEN_MODE_MAP_NAME, sizeof(ml_listener_state));
  const Address to = parse_address(connect);
  const int listener = listen_in(server_netns, to, blocking);
  enter_netns(client_netns);
  const int client = ::socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0) {
    die(2, errno_text("cannot open the client socket"));
  }
  if (!refused.empty()) {
    connect_refused(client, parse_address(refused));
  }
  if (!blocking) {
    set_nonblocking(client);
  }
  connect_to(client, to);
  const int server = accept_from(listener, blocking);
  exchange(client, server, bytes);
  exchange(server, client, bytes);
  std::printf("{\"ok\":true,\"bytes\":%zu,\"client\":%s,\"server\":%s}\n", bytes,
              end_json(client, state_map, listener_map, -1).c_str(),
              end_json(server, state_map, listener_map, mode_map).c_str());
  return 0;
}
