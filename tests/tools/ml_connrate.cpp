// ml_connrate: a connection-rate load generator and its server, for scripts/bench.sh.
//
// Over 600 lines on purpose: like ml_xfer, a load generator that links none of meshlane's
// libraries (it measures them, so it must not share their code), in one self-contained file.
//
//   ml_connrate server --listen ADDR:PORT [--request-size N] [--reply-size N] [--close-after K]
//                      [--threads T] [--ready-file F] [--check-bytes]
//   ml_connrate client --connect ADDR:PORT [--concurrency N] [--duration S] [--warmup S]
//                      [--request-size N] [--reply-size N] [--requests-per-conn K]
//                      [--timeout S] [--bind ADDR] [--progress-file F] [--busy-poll]
//                      [--check-bytes]
//
// The client keeps --concurrency connections in flight for --duration seconds, or, with
// --duration 0, until it gets SIGTERM or SIGINT (background load that a test stops when its
// steps are done, however long they took). Each connection is:
// socket, connect, write a request of --request-size bytes, read a reply of --reply-size bytes
// (repeated --requests-per-conn times), then wait for the server to close (read EOF) and close.
// As soon as one ends, the next one starts in the same slot. The server reads a request, writes
// the reply, and closes after --close-after replies (so TIME_WAIT stays on the server side and
// the client's ephemeral ports are never exhausted); --close-after 0 keeps the connection open
// until the client closes it. Run both with the same sizes and with --requests-per-conn equal
// to --close-after; --requests-per-conn 0 with --close-after 0 is request/response over
// persistent connections (the client closes them at the end).
//
// Every socket is non-blocking from the start, the way event-loop programs use them: the
// listening socket before listen(), accepted sockets through accept4(SOCK_NONBLOCK), client
// sockets before connect(). meshlane's datapath therefore splices them (it skips sockets read
// in blocking mode by default). TCP_NODELAY is set on every connection. One thread drives all
// connections with edge-triggered epoll; the server can use --threads SO_REUSEPORT listeners.
//
// --check-bytes (both sides): every byte of a request is one letter, a..z in turn over the
// connection's requests, and every byte of its reply is that letter in upper case; the server
// checks the request (all one letter) and the client the reply, so a lost, repeated, reordered
// or corrupted byte or message is an error (counted as "other" by the client, in "errors" by
// the server). Without it neither side looks at the bytes (other clients, such as the tests'
// conn_burst.py, send what they like).
//
// --busy-poll: the client calls recv()/send() on its sockets again at once when they would
// block, never waiting in epoll_wait(), as busy-polling applications (sockperf's ping-pong
// client) do.
//
// Latency: for the first request of a connection, from socket() to the last byte of the reply
// (so it includes the handshake: the connection latency); for later requests on the same
// connection, from the request's first write to the reply's last byte. Only requests that
// complete inside the measured window count; --warmup seconds run first and are not counted.
//
// --progress-file F: the client rewrites F (atomically, every 100 ms of the measured run) with
// "REQUESTS ERRORS CONNECTIONS", so that a test can wait for load running in the background to
// have made progress after a step, and see an error at once.
//
// Output: the client prints one JSON object on stdout (with --duration 0, once stopped):
//   {"role":"client","connect":..,"concurrency":..,"duration_s":..,"connections":..,
//    "requests":..,"conn_per_s":..,"req_per_s":..,"latency_us":{"min":..,"p50":..,"p90":..,
//    "p99":..,"p999":..,"max":..,"mean":..},"errors":..,"error_kinds":{..},"first_error":"..",
//    "nonblocking":true,"busy_poll":true|false,"check_bytes":true|false,"ok":true|false}
// The server prints {"role":"server","connections":..,"requests":..,"errors":..,"ok":..} when
// it gets SIGTERM or SIGINT.
//
// Exit status: 0 success (client: at least one request and no error; a client with a positive
// --duration that is stopped early by a signal fails, one with --duration 0 ends that way
// normally); 1 errors during the run; 2 usage or setup errors.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitErrors = 1;
constexpr int kExitUsage = 2;

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

void on_signal(int /*sig*/) { g_stop.store(true); }

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "ml_connrate: %s (see --help)\n", msg.c_str());
  std::exit(kExitUsage);
}

[[noreturn]] void setup_error(const std::string& what, int err) {
  std::fprintf(stderr, "ml_connrate: %s: %s\n", what.c_str(), std::strerror(err));
  std::exit(kExitUsage);
}

void print_help() {
  std::fputs(
      "Usage:\n"
      "  ml_connrate server --listen ADDR:PORT [--request-size N] [--reply-size N]\n"
      "                     [--close-after K] [--threads T] [--ready-file F] [--check-bytes]\n"
      "  ml_connrate client --connect ADDR:PORT [--concurrency N] [--duration S] [--warmup S]\n"
      "                     [--request-size N] [--reply-size N] [--requests-per-conn K]\n"
      "                     [--timeout S] [--bind ADDR] [--progress-file F] [--busy-poll]\n"
      "                     [--check-bytes]\n"
      "\n"
      "Client: keeps N connections in flight for S seconds (default 5; --duration 0 runs until\n"
      "SIGTERM or SIGINT, and that stop is then a success); each connects, sends K requests\n"
      "(default 1) of --request-size bytes (default 64), reads each --reply-size reply\n"
      "(default 64), waits for the server's close and closes; prints one JSON line with\n"
      "conn_per_s, req_per_s and latency percentiles in microseconds; --progress-file F is\n"
      "rewritten every 100 ms with \"REQUESTS ERRORS CONNECTIONS\"; --busy-poll retries\n"
      "recv()/send() at once instead of waiting in epoll_wait().\n"
      "--check-bytes (give it to both): each request is one letter (a..z in turn), its reply\n"
      "the same letter in upper case; a byte out of place is an error.\n"
      "Server: replies to each request, closes after --close-after replies (default 1; 0 =\n"
      "when the client closes). Give the client --requests-per-conn equal to the server's\n"
      "--close-after. All sockets are non-blocking (spliceable by meshlane).\n"
      "ADDR is an IPv4 address or an IPv6 address in brackets, e.g. [fd00::2]:8080.\n",
      stdout);
}

// ---------------------------------------------------------------------------------------------
// Arguments

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

std::optional<Endpoint> parse_host(const std::string& host, std::uint16_t port) {
  Endpoint ep;
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, h.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&ep.addr, &v4, sizeof v4);
    ep.len = sizeof v4;
    ep.family = AF_INET;
    return ep;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&ep.addr, &v6, sizeof v6);
    ep.len = sizeof v6;
    ep.family = AF_INET6;
    return ep;
  }
  return std::nullopt;
}

Endpoint parse_endpoint(const std::string& s, const char* opt) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    usage_error(std::string(opt) + ": expected ADDR:PORT, got '" + s + "'");
  }
  std::string host = s.substr(0, colon);
  char* end = nullptr;
  long port = std::strtol(s.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) {
    usage_error(std::string(opt) + ": bad port in '" + s + "'");
  }
  auto ep = parse_host(host, static_cast<std::uint16_t>(port));
  if (!ep) {
    usage_error(std::string(opt) + ": bad address in '" + s + "'");
  }
  return *ep;
}

long parse_long(const std::string& s, const char* opt, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    usage_error(std::string(opt) + ": expected an integer " + std::to_string(lo) + ".." +
                std::to_string(hi) + ", got '" + s + "'");
  }
  return v;
}

double parse_seconds(const std::string& s, const char* opt, double lo, double hi) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= lo) || !(v <= hi)) {
    usage_error(std::string(opt) + ": expected seconds in " + std::to_string(lo) + ".." +
                std::to_string(hi) + ", got '" + s + "'");
  }
  return v;
}

struct Options {
  std::string role;
  std::string listen_str;
  std::string connect_str;
  std::string bind_str;
  std::string ready_file;
  std::string progress_file;
  long request_size = 64;
  long reply_size = 64;
  long close_after = 1;
  long requests_per_conn = 1;
  long threads = 1;
  long concurrency = 1;
  double duration = 5.0;
  double warmup = 0.0;
  double timeout = 5.0;
  bool busy_poll = false;
  bool check_bytes = false;
};

Options parse_args(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    print_help();
    std::exit(kExitUsage);
  }
  std::string first = argv[1];
  if (first == "-h" || first == "--help") {
    print_help();
    std::exit(kExitOk);
  }
  if (first != "server" && first != "client") {
    usage_error("first argument must be 'server' or 'client', got '" + first + "'");
  }
  o.role = first;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      print_help();
      std::exit(kExitOk);
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage_error(a + " needs a value");
      }
      return argv[++i];
    };
    if (a == "--listen") {
      o.listen_str = value();
    } else if (a == "--connect") {
      o.connect_str = value();
    } else if (a == "--bind") {
      o.bind_str = value();
    } else if (a == "--ready-file") {
      o.ready_file = value();
    } else if (a == "--progress-file") {
      o.progress_file = value();
    } else if (a == "--request-size") {
      o.request_size = parse_long(value(), "--request-size", 1, 1 << 24);
    } else if (a == "--reply-size") {
      o.reply_size = parse_long(value(), "--reply-size", 1, 1 << 24);
    } else if (a == "--close-after") {
      o.close_after = parse_long(value(), "--close-after", 0, 1L << 30);
    } else if (a == "--requests-per-conn") {
      o.requests_per_conn = parse_long(value(), "--requests-per-conn", 0, 1L << 30);
    } else if (a == "--threads") {
      o.threads = parse_long(value(), "--threads", 1, 64);
    } else if (a == "--concurrency") {
      o.concurrency = parse_long(value(), "--concurrency", 1, 10000);
    } else if (a == "--duration") {
      o.duration = parse_seconds(value(), "--duration", 0, 86400);
      if (o.duration > 0 && o.duration < 0.01) {
        usage_error("--duration: expected 0 (until SIGTERM/SIGINT) or at least 0.01 s");
      }
    } else if (a == "--warmup") {
      o.warmup = parse_seconds(value(), "--warmup", 0, 3600);
    } else if (a == "--timeout") {
      o.timeout = parse_seconds(value(), "--timeout", 0.01, 3600);
    } else if (a == "--busy-poll") {
      o.busy_poll = true;
    } else if (a == "--check-bytes") {
      o.check_bytes = true;
    } else {
      usage_error("unknown argument '" + a + "'");
    }
  }
  if (o.role == "server" && o.listen_str.empty()) {
    usage_error("server needs --listen ADDR:PORT");
  }
  if (o.role == "client" && o.connect_str.empty()) {
    usage_error("client needs --connect ADDR:PORT");
  }
  if (o.role == "server" && o.busy_poll) {
    usage_error("--busy-poll is a client option");
  }
  return o;
}

// The letter every byte of a connection's request number `index` (0-based) is, and the one
// every byte of its reply is.
char request_letter(long index) { return static_cast<char>('a' + index % 26); }
char reply_letter(char request) { return static_cast<char>(request - 'a' + 'A'); }

// Whether all of [data, data + n) is `letter`.
bool all_letter(const char* data, std::size_t n, char letter) {
  return std::all_of(data, data + n, [letter](char c) { return c == letter; });
}

void set_nodelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Server

struct ServerConn {
  int fd = -1;
  long in_req = 0;    // bytes of the current request read so far
  long out_left = 0;  // bytes of the current reply still to write
  long replies = 0;
  char letter = 'a';  // of the request being read (request_letter)
};

struct ServerTotals {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
};

int make_listener(const Endpoint& ep, bool reuseport) {
  int fd = socket(ep.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    setup_error("socket", errno);
  }
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    setup_error("setsockopt(SO_REUSEPORT)", errno);
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0) {
    setup_error("bind", errno);
  }
  if (listen(fd, 4096) != 0) {
    setup_error("listen", errno);
  }
  return fd;
}

void server_loop(int lfd, const Options& o, ServerTotals& totals) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    setup_error("epoll_create1", errno);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the listener
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
    setup_error("epoll_ctl(listener)", errno);
  }
  std::vector<char> reply(static_cast<std::size_t>(o.reply_size), 'r');
  std::vector<char> buf(static_cast<std::size_t>(std::max<long>(o.request_size, 65536)));
  std::vector<epoll_event> events(256);

  auto close_conn = [&](ServerConn* c) {
    close(c->fd);  // also removes it from the epoll set
    delete c;
  };
  // Drives one connection as far as it can go; returns false once it is closed.
  auto drive = [&](ServerConn* c) -> bool {
    for (;;) {
      if (c->out_left > 0) {
        std::fill(reply.begin(), reply.end(), reply_letter(c->letter));
        ssize_t n = send(c->fd, reply.data() + (o.reply_size - c->out_left),
                         static_cast<std::size_t>(c->out_left), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true;
          }
          if (errno == EINTR) {
            continue;
          }
          totals.errors++;
          close_conn(c);
          return false;
        }
        c->out_left -= n;
        if (c->out_left > 0) {
          continue;
        }
        c->replies++;
        totals.requests++;
        if (o.close_after > 0 && c->replies >= o.close_after) {
          close_conn(c);
          return false;
        }
      }
      long want = o.request_size - c->in_req;
      ssize_t n = recv(c->fd, buf.data(), static_cast<std::size_t>(want), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          return true;
        }
        if (errno == EINTR) {
          continue;
        }
        // A client aborting at the end of its run resets its connections: not an error.
        if (errno != ECONNRESET) {
          totals.errors++;
        }
        close_conn(c);
        return false;
      }
      if (n == 0) {
        close_conn(c);  // the client closed (persistent mode, or it gave up)
        return false;
      }
      // Every byte of a request is the letter of its place among the connection's requests.
      const char letter = request_letter(c->replies);
      if (o.check_bytes && !all_letter(buf.data(), static_cast<std::size_t>(n), letter)) {
        totals.errors++;
        close_conn(c);
        return false;
      }
      c->letter = letter;
      c->in_req += n;
      if (c->in_req == o.request_size) {
        c->in_req = 0;
        c->out_left = o.reply_size;
      }
    }
  };

  while (!g_stop.load()) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      setup_error("epoll_wait", errno);
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<ServerConn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (;;) {
          int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
              continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
              totals.errors++;
            }
            break;
          }
          set_nodelay(fd);
          totals.connections++;
          auto* nc = new ServerConn{fd, 0, 0, 0};
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          cev.data.ptr = nc;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
            totals.errors++;
            close_conn(nc);
            continue;
          }
          drive(nc);
        }
        continue;
      }
      drive(c);
    }
  }
  close(ep);
}

int run_server(const Options& o) {
  Endpoint ep = parse_endpoint(o.listen_str, "--listen");
  std::vector<int> listeners;
  for (long t = 0; t < o.threads; ++t) {
    listeners.push_back(make_listener(ep, o.threads > 1));
  }
  if (!o.ready_file.empty()) {
    FILE* f = std::fopen(o.ready_file.c_str(), "w");
    if (f == nullptr) {
      setup_error("cannot write --ready-file " + o.ready_file, errno);
    }
    std::fputs("ready\n", f);
    std::fclose(f);
  }
  ServerTotals totals;
  std::vector<std::thread> threads;
  for (int lfd : listeners) {
    threads.emplace_back([lfd, &o, &totals] { server_loop(lfd, o, totals); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int lfd : listeners) {
    close(lfd);
  }
  std::printf(
      "{\"role\":\"server\",\"listen\":\"%s\",\"connections\":%llu,\"requests\":%llu,"
      "\"errors\":%llu,\"nonblocking\":true,\"ok\":%s}\n",
      json_escape(o.listen_str).c_str(), static_cast<unsigned long long>(totals.connections.load()),
      static_cast<unsigned long long>(totals.requests.load()),
      static_cast<unsigned long long>(totals.errors.load()),
      totals.errors.load() == 0 ? "true" : "false");
  std::fflush(stdout);
  return totals.errors.load() == 0 ? kExitOk : kExitErrors;
}

// ---------------------------------------------------------------------------------------------
// Client

enum class State { kIdle, kConnecting, kSending, kReceiving, kDraining };

struct Slot {
  int fd = -1;
  State state = State::kIdle;
  long off = 0;             // bytes of the request written / of the reply read
  long replies = 0;         // replies received on this connection
  Clock::time_point start;  // start of the current request (socket() for the first)
  Clock::time_point conn_start;
  Clock::time_point deadline;  // per-connection timeout
};

struct ClientStats {
  std::uint64_t connections = 0;  // connections that completed all their requests
  std::uint64_t requests = 0;
  std::vector<std::uint32_t> latency_ns;  // capped at ~4.29 s
  std::uint64_t err_connect = 0, err_reset = 0, err_eof = 0, err_timeout = 0, err_other = 0;
  std::string first_error;
  bool recording = false;

  void error(std::uint64_t& counter, const std::string& what) {
    if (!recording) {
      return;
    }
    counter++;
    if (first_error.empty()) {
      first_error = what;
    }
  }
  std::uint64_t errors() const {
    return err_connect + err_reset + err_eof + err_timeout + err_other;
  }
};

class Client {
 public:
  explicit Client(const Options& o)
      : o_(o),
        target_(parse_endpoint(o.connect_str, "--connect")),
        request_(static_cast<std::size_t>(o.request_size), 'q'),
        buf_(static_cast<std::size_t>(std::max<long>(o.reply_size, 65536))),
        slots_(static_cast<std::size_t>(o.concurrency)) {
    if (!o.bind_str.empty()) {
      auto b = parse_host(o.bind_str, 0);
      if (!b) {
        usage_error("--bind: bad address '" + o.bind_str + "'");
      }
      if (b->family != target_.family) {
        usage_error("--bind and --connect must be the same address family");
      }
      bind_ = *b;
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      setup_error("epoll_create1", errno);
    }
  }

  ~Client() {
    for (auto& s : slots_) {
      abort_slot(s);
    }
    close(ep_);
  }

  // Runs for `seconds` (0: until SIGTERM/SIGINT); records stats if `record`. Connections in
  // flight at the end are aborted (not counted).
  void run(double seconds, bool record, ClientStats& st) {
    st.recording = record;
    stats_ = &st;
    const auto t0 = Clock::now();
    const auto end = seconds > 0 ? t0 + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(seconds))
                                 : Clock::time_point::max();
    for (auto& s : slots_) {
      start_slot(s);
    }
    std::vector<epoll_event> events(static_cast<std::size_t>(o_.concurrency) + 16);
    auto last_progress = t0;
    while (!g_stop.load()) {
      auto now = Clock::now();
      if (now >= end) {
        break;
      }
      if (o_.busy_poll) {
        // No waiting: every socket's recv()/send() again at once, as busy-polling clients do.
        for (std::size_t idx = 0; idx < slots_.size(); ++idx) {
          drive(slots_[idx], idx, end);
        }
      } else {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                           static_cast<int>(std::min<long long>(ms + 1, 50)));
        if (n < 0) {
          if (errno == EINTR) {
            continue;
          }
          setup_error("epoll_wait", errno);
        }
        for (int i = 0; i < n; ++i) {
          auto idx = static_cast<std::size_t>(events[i].data.u64);
          drive(slots_[idx], idx, end);
        }
      }
      // Per-connection timeouts (checked at most every 50 ms of idle time).
      now = Clock::now();
      for (std::size_t idx = 0; idx < slots_.size(); ++idx) {
        auto& s = slots_[idx];
        if (s.state == State::kIdle || now <= s.deadline) {
          continue;
        }
        if (s.fd >= 0) {
          st.error(st.err_timeout, "timeout: no progress for " + std::to_string(o_.timeout) + " s");
          abort_slot(s);
        }
        start_slot(s, idx);  // also the retry of a connect() that failed at once
      }
      if (record && now - last_progress >= std::chrono::milliseconds(100)) {
        write_progress(st);
        last_progress = now;
      }
    }
    if (record) {
      write_progress(st);
    }
    measured_ = std::chrono::duration<double>(std::min(Clock::now(), end) - t0).count();
    for (auto& s : slots_) {
      abort_slot(s);
    }
    stats_ = nullptr;
  }

  double measured_seconds() const { return measured_; }

 private:
  // --progress-file: "REQUESTS ERRORS CONNECTIONS", replaced atomically (write + rename).
  void write_progress(const ClientStats& st) const {
    if (o_.progress_file.empty()) {
      return;
    }
    const std::string tmp = o_.progress_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      setup_error("cannot write --progress-file " + tmp, errno);
    }
    std::fprintf(f, "%llu %llu %llu\n", static_cast<unsigned long long>(st.requests),
                 static_cast<unsigned long long>(st.errors()),
                 static_cast<unsigned long long>(st.connections));
    std::fclose(f);
    if (std::rename(tmp.c_str(), o_.progress_file.c_str()) != 0) {
      setup_error("cannot rename " + tmp + " to " + o_.progress_file, errno);
    }
  }

  void abort_slot(Slot& s) {
    if (s.fd >= 0) {
      close(s.fd);
      s.fd = -1;
    }
    s.state = State::kIdle;
  }

  void start_slot(Slot& s) { start_slot(s, static_cast<std::size_t>(&s - slots_.data())); }

  void start_slot(Slot& s, std::size_t idx) {
    s.conn_start = s.start = Clock::now();
    s.deadline = s.start + timeout_dur();
    s.off = 0;
    s.replies = 0;
    s.fd = socket(target_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      setup_error("socket", errno);
    }
    set_nodelay(s.fd);
    if (bind_ && bind(s.fd, reinterpret_cast<const sockaddr*>(&bind_->addr), bind_->len) != 0) {
      setup_error("bind " + o_.bind_str, errno);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = idx;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev) != 0) {
      setup_error("epoll_ctl", errno);
    }
    int rc = connect(s.fd, reinterpret_cast<const sockaddr*>(&target_.addr), target_.len);
    if (rc == 0) {
      s.state = State::kSending;
      return;  // the EPOLLOUT edge of the new registration drives it
    }
    if (errno == EINPROGRESS) {
      s.state = State::kConnecting;
      return;
    }
    int err = errno;
    stats_->error(stats_->err_connect, std::string("connect: ") + std::strerror(err));
    abort_slot(s);
    // Retry later through the timeout path: mark the slot as a failed attempt that expires.
    fail_backoff(s, idx);
  }

  // After a failed connect(), wait a little before retrying (a refused port would otherwise
  // spin): a slot with no socket is retried by the timeout scan after 10 ms.
  void fail_backoff(Slot& s, std::size_t /*idx*/) {
    s.state = State::kConnecting;
    s.fd = -1;
    s.deadline = Clock::now() + std::chrono::milliseconds(10);
  }

  Clock::duration timeout_dur() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.timeout));
  }

  void fail(Slot& s, std::size_t idx, std::uint64_t& counter, const std::string& what) {
    stats_->error(counter, what);
    abort_slot(s);
    if (&counter == &stats_->err_connect) {
      fail_backoff(s, idx);  // a refused port would otherwise spin
      return;
    }
    start_slot(s, idx);
  }

  void finish_request(Slot& s, Clock::time_point end) {
    auto now = Clock::now();
    if (stats_->recording && now <= end) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - s.start).count();
      stats_->latency_ns.push_back(
          static_cast<std::uint32_t>(std::min<long long>(ns, 0xFFFFFFFFLL)));
      stats_->requests++;
    }
    s.replies++;
    s.off = 0;
    s.start = now;
    s.deadline = now + timeout_dur();
  }

  void drive(Slot& s, std::size_t idx, Clock::time_point end) {
    if (s.fd < 0) {
      return;
    }
    for (;;) {
      switch (s.state) {
        case State::kIdle: return;
        case State::kConnecting: {
          int err = 0;
          socklen_t len = sizeof err;
          if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
          }
          if (err == EINPROGRESS || err == EALREADY) {
            return;
          }
          if (err != 0) {
            fail(s, idx, stats_->err_connect, std::string("connect: ") + std::strerror(err));
            return;
          }
          // Connected only once writable; a spurious wakeup leaves SO_ERROR 0 too, so check.
          sockaddr_storage peer{};
          socklen_t plen = sizeof peer;
          if (getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) {
            if (errno == ENOTCONN) {
              return;
            }
            fail(s, idx, stats_->err_connect, std::string("connect: ") + std::strerror(errno));
            return;
          }
          s.state = State::kSending;
          s.off = 0;
          break;
        }
        case State::kSending: {
          std::fill(request_.begin(), request_.end(), request_letter(s.replies));
          ssize_t n = send(s.fd, request_.data() + s.off,
                           static_cast<std::size_t>(o_.request_size - s.off), MSG_NOSIGNAL);
          if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) {
              return;
            }
            if (errno == EINTR) {
              continue;
            }
            fail(s, idx,
                 errno == ECONNRESET || errno == EPIPE ? stats_->err_reset : stats_->err_other,
                 std::string("send: ") + std::strerror(errno));
            return;
          }
          s.off += n;
          if (s.off == o_.request_size) {
            s.state = State::kReceiving;
            s.off = 0;
          }
          break;
        }
        case State::kReceiving:
        case State::kDraining: {
          std::size_t want = s.state == State::kReceiving
                                 ? static_cast<std::size_t>(o_.reply_size - s.off)
                                 : buf_.size();
          ssize_t n = recv(s.fd, buf_.data(), want, 0);
          if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
              return;
            }
            if (errno == EINTR) {
              continue;
            }
            fail(s, idx, errno == ECONNRESET ? stats_->err_reset : stats_->err_other,
                 std::string("recv: ") + std::strerror(errno));
            return;
          }
          if (n == 0) {
            if (s.state == State::kDraining) {
              // Done: the server closed after the last reply.
              if (stats_->recording && Clock::now() <= end) {
                stats_->connections++;
              }
              abort_slot(s);
              start_slot(s, idx);
              return;
            }
            fail(s, idx, stats_->err_eof,
                 "EOF after " + std::to_string(s.off) + " of " + std::to_string(o_.reply_size) +
                     " reply bytes (reply " + std::to_string(s.replies + 1) + ")");
            return;
          }
          if (s.state == State::kDraining) {
            fail(s, idx, stats_->err_other, "unexpected bytes after the last reply");
            return;
          }
          if (const char want_letter = reply_letter(request_letter(s.replies));
              o_.check_bytes &&
              !all_letter(buf_.data(), static_cast<std::size_t>(n), want_letter)) {
            fail(s, idx, stats_->err_other,
                 std::string("reply ") + std::to_string(s.replies + 1) + ": a byte is not '" +
                     want_letter + "'");
            return;
          }
          s.off += n;
          if (s.off < o_.reply_size) {
            break;
          }
          finish_request(s, end);
          if (o_.requests_per_conn > 0 && s.replies >= o_.requests_per_conn) {
            s.state = State::kDraining;
          } else {
            s.state = State::kSending;
          }
          break;
        }
      }
    }
  }

  const Options& o_;
  Endpoint target_;
  std::optional<Endpoint> bind_;
  std::vector<char> request_;
  std::vector<char> buf_;
  std::vector<Slot> slots_;
  int ep_ = -1;
  ClientStats* stats_ = nullptr;
  double measured_ = 0;
};

double percentile_us(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  // Nearest rank.
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1] / 1000.0;
}

int run_client(const Options& o) {
  Client client(o);
  if (o.warmup > 0) {
    ClientStats warm;
    client.run(o.warmup, false, warm);
  }
  ClientStats st;
  client.run(o.duration, true, st);
  double secs = client.measured_seconds();
  auto& lat = st.latency_ns;
  std::sort(lat.begin(), lat.end());
  double mean = 0;
  for (auto v : lat) {
    mean += v;
  }
  mean = lat.empty() ? 0 : mean / static_cast<double>(lat.size()) / 1000.0;
  // A signal is how a --duration 0 client ends; it cuts a timed run short.
  const bool until_stopped = o.duration == 0;
  bool ok = st.errors() == 0 && st.requests > 0 && (until_stopped || !g_stop.load());
  // With --requests-per-conn 0 no connection ever completes; count requests only.
  std::printf(
      "{\"role\":\"client\",\"connect\":\"%s\",\"concurrency\":%ld,\"requests_per_conn\":%ld,"
      "\"request_size\":%ld,\"reply_size\":%ld,\"duration_s\":%.3f,\"connections\":%llu,"
      "\"requests\":%llu,\"conn_per_s\":%.1f,\"req_per_s\":%.1f,"
      "\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
      "\"max\":%.1f,\"mean\":%.1f},\"errors\":%llu,"
      "\"error_kinds\":{\"connect\":%llu,\"reset\":%llu,\"early_eof\":%llu,\"timeout\":%llu,"
      "\"other\":%llu},\"first_error\":\"%s\",\"nonblocking\":true,\"busy_poll\":%s,"
      "\"check_bytes\":%s,"
      "\"ok\":%s}\n",
      json_escape(o.connect_str).c_str(), o.concurrency, o.requests_per_conn, o.request_size,
      o.reply_size, secs, static_cast<unsigned long long>(st.connections),
      static_cast<unsigned long long>(st.requests),
      secs > 0 ? static_cast<double>(st.connections) / secs : 0.0,
      secs > 0 ? static_cast<double>(st.requests) / secs : 0.0,
      lat.empty() ? 0.0 : lat.front() / 1000.0, percentile_us(lat, 50), percentile_us(lat, 90),
      percentile_us(lat, 99), percentile_us(lat, 99.9), lat.empty() ? 0.0 : lat.back() / 1000.0,
      mean, static_cast<unsigned long long>(st.errors()),
      static_cast<unsigned long long>(st.err_connect),
      static_cast<unsigned long long>(st.err_reset), static_cast<unsigned long long>(st.err_eof),
      static_cast<unsigned long long>(st.err_timeout),
      static_cast<unsigned long long>(st.err_other), json_escape(st.first_error).c_str(),
      o.busy_poll ? "true" : "false", o.check_bytes ? "true" : "false", ok ? "true" : "false");
  std::fflush(stdout);
  return ok ? kExitOk : kExitErrors;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: epoll_wait returns EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return o.role == "server" ? run_server(o) : run_client(o);
}
