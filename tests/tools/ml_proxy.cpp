// ml_proxy: a minimal Envoy-like transparent TCP proxy for the meshlane integration tests.
//
//   ml_proxy --listen PORT [--listen PORT ...] [--source PORT:ADDR ...] --log FILE
//            [--ready-file FILE] [--connect-timeout SEC] [--backlog N] [--ask-twice]
//
// For each --listen PORT it listens on [::]:PORT, dual stack (IPv4 clients appear as
// v4-mapped addresses). For every accepted connection it asks for the connection's original
// destination the way Envoy does:
//   - IPv6 peer:               getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST (80), sockaddr_in6)
//   - IPv4 (v4-mapped) peer:   getsockopt(SOL_IP,   SO_ORIGINAL_DST (80),      sockaddr_in)
// then connects there and relays bytes in both directions, passing on half-closes (EOF from
// one side becomes shutdown(SHUT_WR) towards the other once everything before it is written).
// HAProxy only ever asks SOL_IP, so this stands in for Envoy on IPv6.
//
// --source PORT:ADDR binds the upstream socket of connections accepted on listen port PORT to
// ADDR (port 0) before connecting, e.g. "15006:127.0.0.6" and "15006:::6" for Istio's inbound
// passthrough source. Repeatable; per port at most one IPv4 and one IPv6 ADDR, the one of the
// original destination's family is used.
//
// --backlog N is the listen() backlog (default 1024): a small one with the proxy stopped
// (SIGSTOP) leaves handshakes half done, as a proxy whose accept queue is full does.
// --ask-twice asks for the original destination a second time and logs an error line when the
// answers differ (a real proxy may ask more than once).
//
// Every socket is non-blocking from the start (listeners before listen(), accepted sockets via
// accept4(SOCK_NONBLOCK), upstream sockets before connect()), as in Envoy, so that meshlane's
// datapath may splice them. One thread per connection, waiting with poll().
//
// Log (one line per event, appended to --log FILE, flushed at once):
//   accepted client=ADDR:PORT local=ADDR:PORT orig=ADDR:PORT
//   error client=ADDR:PORT local=ADDR:PORT getsockopt(SOL_IP|SOL_IPV6, 80): <strerror>
//   error client=ADDR:PORT orig=ADDR:PORT asked again: ADDR:PORT|<strerror>   (--ask-twice)
//   error client=ADDR:PORT orig=ADDR:PORT connect from SRC: <strerror>
//   error client=ADDR:PORT orig=ADDR:PORT is this proxy's own listener   (orig is the listening
//     port: a loop, not connected)
//   done client=ADDR:PORT orig=ADDR:PORT upstream=SRC:PORT up=N down=N [error=...]
// Addresses are printed as a.b.c.d:port (IPv4 and v4-mapped) or [v6]:port.
// Exit status: 0 on SIGTERM/SIGINT, 2 on usage or setup errors.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kOriginalDst = 80;  // SO_ORIGINAL_DST == IP6T_SO_ORIGINAL_DST == 80
constexpr size_t kBufSize = size_t{64} * 1024;

struct Sources {
  std::optional<sockaddr_in> v4;
  std::optional<sockaddr_in6> v6;
};

struct Options {
  std::vector<int> ports;
  std::map<int, Sources> sources;
  std::string log_path;
  std::string ready_file;
  int connect_timeout_ms = 10000;
  int backlog = 1024;
  bool ask_twice = false;
};

int g_log_fd = -1;  // O_APPEND: each line is one write(), so lines never interleave

void log_line(const std::string& line) {
  const std::string text = line + "\n";
  if (write(g_log_fd, text.data(), text.size()) < 0) {
    std::fprintf(stderr, "ml_proxy: writing the log: %s\n", std::strerror(errno));
  }
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr,
               "ml_proxy: %s\n"
               "usage: ml_proxy --listen PORT [--listen PORT ...] [--source PORT:ADDR ...] "
               "--log FILE [--ready-file FILE] [--connect-timeout SEC] [--backlog N] "
               "[--ask-twice]\n",
               msg.c_str());
  std::exit(2);
}

[[noreturn]] void die_errno(const std::string& what) {
  std::fprintf(stderr, "ml_proxy: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

int parse_port(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) {
    usage_error("bad port '" + s + "'");
  }
  int p = std::stoi(s);
  if (p < 1 || p > 65535) {
    usage_error("bad port '" + s + "'");
  }
  return p;
}

// Formats any of AF_INET / AF_INET6 (v4-mapped shown as IPv4).
std::string format_addr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(sin6->sin6_port));
    }
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  return "?";
}

bool is_v4_mapped(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return true;
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage_error("option " + a + " needs a value");
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage_error("help");
    } else if (a == "--listen") {
      o.ports.push_back(parse_port(value()));
    } else if (a == "--source") {
      std::string v = value();
      auto colon = v.find(':');
      if (colon == std::string::npos) {
        usage_error("--source wants PORT:ADDR, got '" + v + "'");
      }
      int port = parse_port(v.substr(0, colon));
      std::string addr = v.substr(colon + 1);
      Sources& s = o.sources[port];
      sockaddr_in sin{};
      sockaddr_in6 sin6{};
      if (inet_pton(AF_INET, addr.c_str(), &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        s.v4 = sin;
      } else if (inet_pton(AF_INET6, addr.c_str(), &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        s.v6 = sin6;
      } else {
        usage_error("bad source address '" + addr + "'");
      }
    } else if (a == "--log") {
      o.log_path = value();
    } else if (a == "--ready-file") {
      o.ready_file = value();
    } else if (a == "--connect-timeout") {
      o.connect_timeout_ms = std::atoi(value().c_str()) * 1000;
      if (o.connect_timeout_ms <= 0) {
        usage_error("bad --connect-timeout");
      }
    } else if (a == "--backlog") {
      o.backlog = std::atoi(value().c_str());
      if (o.backlog <= 0) {
        usage_error("bad --backlog");
      }
    } else if (a == "--ask-twice") {
      o.ask_twice = true;
    } else {
      usage_error("unknown argument '" + a + "'");
    }
  }
  if (o.ports.empty()) {
    usage_error("at least one --listen PORT is required");
  }
  if (o.log_path.empty()) {
    usage_error("--log FILE is required");
  }
  return o;
}

// Waits for a non-blocking connect; returns 0 or an errno value.
int wait_connected(int fd, int timeout_ms) {
  pollfd p{fd, POLLOUT, 0};
  int r = 0;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    return errno;
  }
  if (r == 0) {
    return ETIMEDOUT;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
    return errno;
  }
  return err;
}

// One direction of the relay.
struct Pipe {
  int from;
  int to;
  std::vector<char> buf = std::vector<char>(kBufSize);
  size_t len = 0;  // bytes in buf not yet written
  size_t off = 0;  // start of them
  bool eof = false;
  bool shut = false;  // EOF passed on (shutdown(to, SHUT_WR) done)
  unsigned long long total = 0;
};

// Relays until both directions have seen EOF and passed it on, or an error. Returns "" or the
// error text.
std::string relay(int a, int b, unsigned long long& up, unsigned long long& down) {
  Pipe p[2] = {{a, b}, {b, a}};
  std::string err;
  while (!(p[0].shut && p[1].shut)) {
    // Wanted events per fd.
    pollfd fds[2] = {{a, 0, 0}, {b, 0, 0}};
    for (int d = 0; d < 2; ++d) {
      Pipe& q = p[d];
      short& in_ev = fds[d].events;       // q.from is fds[d].fd
      short& out_ev = fds[1 - d].events;  // q.to is the other one
      if (q.len == 0 && !q.eof) {
        in_ev |= POLLIN;
      }
      if (q.len > 0) {
        out_ev |= POLLOUT;
      }
    }
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      err = std::string("poll: ") + std::strerror(errno);
      break;
    }
    // A reset socket reports POLLERR even when no event is asked for: end instead of spinning.
    for (int f = 0; f < 2 && err.empty(); ++f) {
      if (fds[f].revents & (POLLERR | POLLNVAL)) {
        int e = 0;
        socklen_t elen = sizeof e;
        getsockopt(fds[f].fd, SOL_SOCKET, SO_ERROR, &e, &elen);
        err = std::string(f == 0 ? "client socket: " : "upstream socket: ") +
              (e != 0 ? std::strerror(e) : "POLLERR");
      }
    }
    if (!err.empty()) {
      break;
    }
    for (int d = 0; d < 2 && err.empty(); ++d) {
      Pipe& q = p[d];
      if (q.len == 0 && !q.eof) {
        ssize_t n = recv(q.from, q.buf.data(), q.buf.size(), 0);
        if (n > 0) {
          q.len = static_cast<size_t>(n);
          q.off = 0;
          q.total += static_cast<unsigned long long>(n);
        } else if (n == 0) {
          q.eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          err = std::string(d == 0 ? "recv from client: " : "recv from upstream: ") +
                std::strerror(errno);
          break;
        }
      }
      while (q.len > 0) {
        ssize_t n = send(q.to, q.buf.data() + q.off, q.len, MSG_NOSIGNAL);
        if (n > 0) {
          q.off += static_cast<size_t>(n);
          q.len -= static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          break;
        }
        err =
            std::string(d == 0 ? "send to upstream: " : "send to client: ") + std::strerror(errno);
        break;
      }
      if (err.empty() && q.eof && q.len == 0 && !q.shut) {
        shutdown(q.to, SHUT_WR);
        q.shut = true;
      }
    }
    if (!err.empty()) {
      break;
    }
  }
  up = p[0].total;
  down = p[1].total;
  return err;
}

// The connection's original destination, asked as Envoy does; 0 or -1 with errno set.
int ask_original_dst(int cfd, bool v4, sockaddr_storage& orig) {
  int rc = -1;
  if (v4) {
    sockaddr_in sin{};
    socklen_t len = sizeof sin;
    rc = getsockopt(cfd, SOL_IP, kOriginalDst, &sin, &len);
    if (rc == 0) {
      std::memcpy(&orig, &sin, sizeof sin);
    }
  } else {
    sockaddr_in6 sin6{};
    socklen_t len = sizeof sin6;
    rc = getsockopt(cfd, SOL_IPV6, kOriginalDst, &sin6, &len);
    if (rc == 0) {
      std::memcpy(&orig, &sin6, sizeof sin6);
    }
  }
  return rc;
}

void handle(int cfd, const Options& opt, int listen_port) {
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  getpeername(cfd, reinterpret_cast<sockaddr*>(&peer), &plen);
  getsockname(cfd, reinterpret_cast<sockaddr*>(&local), &llen);
  const std::string client = format_addr(peer);
  const std::string local_s = format_addr(local);

  sockaddr_storage orig{};
  const bool v4 = is_v4_mapped(peer);
  int rc = ask_original_dst(cfd, v4, orig);
  if (rc != 0) {
    log_line("error client=" + client + " local=" + local_s + " getsockopt(" +
             (v4 ? "SOL_IP" : "SOL_IPV6") + ", 80): " + std::strerror(errno));
    close(cfd);
    return;
  }
  const std::string orig_s = format_addr(orig);
  log_line("accepted client=" + client + " local=" + local_s + " orig=" + orig_s);
  if (opt.ask_twice) {
    sockaddr_storage again{};
    if (ask_original_dst(cfd, v4, again) != 0) {
      log_line("error client=" + client + " orig=" + orig_s +
               " asked again: " + std::strerror(errno));
    } else if (format_addr(again) != orig_s) {
      log_line("error client=" + client + " orig=" + orig_s +
               " asked again: " + format_addr(again));
    }
  }
  const in_port_t orig_port =
      ntohs(orig.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&orig)->sin_port
                                      : reinterpret_cast<sockaddr_in6*>(&orig)->sin6_port);
  if (orig_port == listen_port) {
    // Not redirected (or answered with the listener's own port): connecting would loop into
    // itself. A connection handed to the listener at the socket lookup keeps its destination,
    // so its local address is the original destination, which is fine.
    log_line("error client=" + client + " orig=" + orig_s + " is this proxy's own listener");
    close(cfd);
    return;
  }

  const int family = orig.ss_family;
  int ufd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ufd < 0) {
    log_line("error client=" + client + " orig=" + orig_s + " socket: " + std::strerror(errno));
    close(cfd);
    return;
  }
  std::string src_s = "any";
  auto it = opt.sources.find(listen_port);
  if (it != opt.sources.end()) {
    int brc = 0;
    bool bound = false;
    if (family == AF_INET && it->second.v4) {
      brc = bind(ufd, reinterpret_cast<const sockaddr*>(&*it->second.v4), sizeof(sockaddr_in));
      bound = true;
    } else if (family == AF_INET6 && it->second.v6) {
      brc = bind(ufd, reinterpret_cast<const sockaddr*>(&*it->second.v6), sizeof(sockaddr_in6));
      bound = true;
    }
    if (bound) {
      sockaddr_storage s{};
      if (family == AF_INET) {
        std::memcpy(&s, &*it->second.v4, sizeof(sockaddr_in));
      } else {
        std::memcpy(&s, &*it->second.v6, sizeof(sockaddr_in6));
      }
      src_s = format_addr(s);
      if (brc < 0) {
        log_line("error client=" + client + " orig=" + orig_s + " bind " + src_s + ": " +
                 std::strerror(errno));
        close(ufd);
        close(cfd);
        return;
      }
    }
  }
  const socklen_t olen = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  int cerr = 0;
  if (connect(ufd, reinterpret_cast<const sockaddr*>(&orig), olen) < 0) {
    cerr = errno == EINPROGRESS ? wait_connected(ufd, opt.connect_timeout_ms) : errno;
  }
  if (cerr != 0) {
    log_line("error client=" + client + " orig=" + orig_s + " connect from " + src_s + ": " +
             std::strerror(cerr));
    close(ufd);
    close(cfd);
    return;
  }
  sockaddr_storage up_local{};
  socklen_t ulen = sizeof up_local;
  getsockname(ufd, reinterpret_cast<sockaddr*>(&up_local), &ulen);
  const std::string up_s = format_addr(up_local);

  unsigned long long up = 0, down = 0;
  std::string err = relay(cfd, ufd, up, down);
  log_line("done client=" + client + " orig=" + orig_s + " upstream=" + up_s +
           " up=" + std::to_string(up) + " down=" + std::to_string(down) +
           (err.empty() ? "" : " error=" + err));
  close(ufd);
  close(cfd);
}

int listen_on(int port, int backlog) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die_errno("socket");
  }
  int zero = 0, one = 1;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) {
    die_errno("setsockopt(IPV6_V6ONLY)");
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_any;
  sin6.sin6_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sin6), sizeof sin6) < 0) {
    die_errno("bind [::]:" + std::to_string(port));
  }
  if (listen(fd, backlog) < 0) {
    die_errno("listen");
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  g_log_fd = open(opt.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_log_fd < 0) {
    die_errno("open " + opt.log_path);
  }

  std::vector<pollfd> fds;
  for (int port : opt.ports) {
    fds.push_back({listen_on(port, opt.backlog), POLLIN, 0});
  }
  if (!opt.ready_file.empty()) {
    int fd = open(opt.ready_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      die_errno("open " + opt.ready_file);
    }
    close(fd);
  }
  std::fprintf(stdout, "listening\n");
  std::fflush(stdout);

  for (;;) {
    int r = poll(fds.data(), fds.size(), -1);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      die_errno("poll");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) {
        continue;
      }
      for (;;) {
        int cfd = accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            std::fprintf(stderr, "ml_proxy: accept: %s\n", std::strerror(errno));
          }
          break;
        }
        std::thread(handle, cfd, std::cref(opt), opt.ports[i]).detach();
      }
    }
  }
}
