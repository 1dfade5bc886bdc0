// ml_xfer: a TCP traffic generator and end-to-end checker for the meshlane integration tests.
//
// Over 600 lines on purpose: a checker must not share code with what it checks, so ml_xfer is
// one self-contained program that links none of meshlane's libraries; its parts (stream,
// options, addresses, reporting, the transfer engine, server and client) are the sections
// between the rules below.
//
//   ml_xfer server --listen ADDR:PORT [--connections N] [--ready-file F] [common options]
//   ml_xfer client --connect ADDR:PORT [--bind ADDR:PORT] [--parallel K] [common options]
//
// Every connection carries data in both directions at once. Each side writes a 32-byte header
// followed by --bytes of a deterministic pseudo-random stream, in writes whose sizes are drawn
// log-uniformly from --min-write..--max-write, then shuts down its write side. A reader thread
// reads until EOF and checks every byte against the stream the peer must have generated, and
// that EOF arrives exactly after the announced byte count.
//
// Header (little-endian, 32 bytes): "MLXF", version 1, role (0 client, 1 server), 2 reserved,
// u32 connection index, u32 reserved, u64 seed, u64 payload byte count. The reader regenerates
// the peer's stream from (seed, role, index) and requires seed == its own --seed and byte count
// == --peer-bytes (default: its own --bytes), so a stream from a foreign connection (e.g. one
// redirected across network namespaces) is detected. Both sides must therefore be started with
// the same --seed. The server learns the client's connection index from the header, so
// connections may be accepted in any order.
//
// Stream: byte p of the stream with key k is byte (p % 8) (little-endian) of splitmix64 word
// p / 8, i.e. mix64(k + (p/8 + 1) * 0x9E3779B97F4A7C15); key k = mix64(mix64(seed) ^ role<<32 ^
// index). Write sizes come from a separate xorshift generator seeded from k.
//
// Socket behaviour checked besides the bytes: EOF exactly after the announced count (the
// peer's half-close), a blocking recv() never failing with EAGAIN, and per --read-mode:
// MSG_PEEK agreeing with the following recv, FIONREAD > 0 whenever data is readable, and
// edge-triggered epoll wakeups not being lost (a lost one ends in the --timeout watchdog).
//
// Blocking and non-blocking sockets. By default every socket is blocking (as most applications
// use them) and reads are blocking calls, so a blocking recv() failing with EAGAIN is an error.
// With --nonblocking (implied by --read-mode epoll) every socket is O_NONBLOCK from the start:
// the server's listening socket before listen(), accepted sockets through
// accept4(SOCK_NONBLOCK), client sockets before connect() (EINPROGRESS is waited for with
// poll). Every read and write is then a non-blocking call preceded or followed by poll(), and
// EAGAIN only means "wait" (counted in eagain_waits). meshlane's datapath splices only
// sockets opened this way by default (a blocking reader of a spliced socket can see EAGAIN).
//
// Exit status: 0 success; 1 data mismatch or wrong socket behaviour (early EOF, extra bytes,
// FIONREAD trap, peek/recv disagreement, errors during the transfer); 2 usage or setup errors
// (bad arguments, socket/bind/listen/connect/accept failures); 3 watchdog timeout.
// FIONREAD, blocking-EAGAIN and peek failures name the trap in the error message.
// The last line on stdout is a JSON object:
//   {"role":..,"connections":..,"bytes_sent":..,"bytes_received":..,"ok":..,"error":"..",
//    "read_mode":..,"nonblocking":true|false,"blocking_eagain":..,"eagain_waits":..,...}
// bytes_sent/bytes_received count every byte on the wire, headers included.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitBehaviour = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTimeout = 3;

constexpr std::size_t kHeaderSize = 32;
constexpr std::uint8_t kVersion = 1;
constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// ---------------------------------------------------------------------------------------------
// Deterministic stream

constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::uint64_t stream_key(std::uint64_t seed, int role, std::uint32_t index) {
  return mix64(mix64(seed) ^ (static_cast<std::uint64_t>(role) << 32) ^ index);
}

inline std::uint64_t stream_word(std::uint64_t key, std::uint64_t word_index) {
  return mix64(key + (word_index + 1) * kGolden);
}

inline void store_le64(std::uint8_t* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

inline std::uint64_t load_le64(const std::uint8_t* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  }
  return v;
}

inline std::uint32_t load_le32(const std::uint8_t* in) {
  return static_cast<std::uint32_t>(in[0]) | (static_cast<std::uint32_t>(in[1]) << 8) |
         (static_cast<std::uint32_t>(in[2]) << 16) | (static_cast<std::uint32_t>(in[3]) << 24);
}

// Fills out[0..n) with stream bytes [pos, pos + n).
void fill_stream(std::uint64_t key, std::uint64_t pos, std::uint8_t* out, std::size_t n) {
  std::size_t done = 0;
  std::uint64_t word = pos / 8;
  unsigned skip = static_cast<unsigned>(pos % 8);
  if (skip != 0 && n > 0) {
    std::uint8_t tmp[8];
    store_le64(tmp, stream_word(key, word));
    std::size_t take = std::min<std::size_t>(8 - skip, n);
    std::memcpy(out, tmp + skip, take);
    done += take;
    ++word;
  }
  while (n - done >= 8) {
    store_le64(out + done, stream_word(key, word));
    done += 8;
    ++word;
  }
  if (done < n) {
    std::uint8_t tmp[8];
    store_le64(tmp, stream_word(key, word));
    std::memcpy(out + done, tmp, n - done);
  }
}

struct XorShift {
  std::uint64_t s;
  explicit XorShift(std::uint64_t seed) : s(mix64(seed) | 1) {}
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Log-uniform integer in [lo, hi].
  std::size_t log_uniform(std::size_t lo, std::size_t hi) {
    if (hi <= lo) {
      return lo;
    }
    double a = std::log(static_cast<double>(lo));
    double b = std::log(static_cast<double>(hi) + 1.0);
    auto v = static_cast<std::size_t>(std::exp(a + uniform() * (b - a)));
    return std::clamp(v, lo, hi);
  }
};

// ---------------------------------------------------------------------------------------------
// Options

enum class ReadMode { kPlain, kPeek, kFionread, kEpoll };

const char* read_mode_name(ReadMode m) {
  switch (m) {
    case ReadMode::kPlain: return "plain";
    case ReadMode::kPeek: return "peek";
    case ReadMode::kFionread: return "fionread";
    case ReadMode::kEpoll: return "epoll";
  }
  return "?";
}

struct Options {
  std::string role;  // "client" or "server"
  std::string listen;
  std::string connect;
  std::string bind;
  std::string ready_file;
  int connections = 1;
  int parallel = 1;
  std::uint64_t bytes = 1ULL << 20;
  std::optional<std::uint64_t> peer_bytes;
  std::uint64_t seed = 1;
  std::size_t min_write = 1;
  std::size_t max_write = 4194304;
  std::size_t max_read = 262144;
  ReadMode read_mode = ReadMode::kPlain;
  double timeout_s = 120;
  bool quiet = false;
  std::optional<std::uint64_t> corrupt_at;  // self-test: flip one sent payload byte
  bool nonblocking = false;                 // every socket O_NONBLOCK, poll() + EAGAIN = wait
  std::uint64_t signal_every_us = 0;        // SIGALRM interval (SA_RESTART); 0: none
};

const char kUsage[] =
    "usage:\n"
    "  ml_xfer server --listen ADDR:PORT [--connections N] [--ready-file FILE] [options]\n"
    "  ml_xfer client --connect ADDR:PORT [--bind ADDR:PORT] [--parallel K] [options]\n"
    "\n"
    "ADDR is an IPv4 address, [IPv6] or [::ffff:a.b.c.d]; a server listening on [::] accepts\n"
    "IPv4-mapped peers. With --bind and --parallel K > 1, connection i binds PORT + i\n"
    "(PORT 0 lets the kernel choose).\n"
    "\n"
    "Each connection sends a 32-byte header then --bytes of a pseudo-random stream keyed by\n"
    "(--seed, role, connection index) in both directions at once, then shuts down its write\n"
    "side; a reader thread checks every byte of the peer's stream and that EOF comes exactly\n"
    "after it. Both sides must use the same --seed.\n"
    "\n"
    "options:\n"
    "  --bytes N          payload bytes sent per connection (default 1M; suffixes K M G)\n"
    "  --peer-bytes N     payload bytes expected from the peer (default: --bytes)\n"
    "  --seed S           stream seed (default 1)\n"
    "  --min-write N      smallest write (default 1)\n"
    "  --max-write N      largest write (default 4M); sizes are log-uniform in between\n"
    "  --max-read N       largest single read (default 256K); sizes are log-uniform from 1\n"
    "  --read-mode M      plain | peek | fionread | epoll (default plain)\n"
    "                       peek: recv(MSG_PEEK) then recv of the same length must match\n"
    "                       fionread: poll(POLLIN), ioctl(FIONREAD), read exactly that much;\n"
    "                         FIONREAD == 0 while data is readable is reported as an error\n"
    "                       epoll: edge-triggered epoll, read to EAGAIN (implies\n"
    "                         --nonblocking)\n"
    "  --nonblocking      every socket is O_NONBLOCK from the start: the listening socket\n"
    "                     before listen(), accepted ones via accept4(SOCK_NONBLOCK), client\n"
    "                     ones before connect(); reads and writes use poll() and treat EAGAIN\n"
    "                     as 'wait'. Without it sockets are blocking and a blocking recv()\n"
    "                     failing with EAGAIN is an error.\n"
    "  --connections N    server: connections to serve before exiting (default 1)\n"
    "  --parallel K       client: concurrent connections (default 1)\n"
    "  --ready-file FILE  server: create FILE once listening (stdout always gets 'listening')\n"
    "  --timeout SEC      watchdog; exit 3 when exceeded (default 120)\n"
    "  --quiet            no progress messages on stderr\n"
    "  --corrupt-at N     self-test of the checker: flip the sent payload byte at offset N\n"
    "  --signal-every-us N  deliver SIGALRM every N microseconds (an interval timer; the\n"
    "                     handler is installed with SA_RESTART, as profilers and language\n"
    "                     runtimes do). On a TCP socket the kernel restarts an interrupted\n"
    "                     blocking recv(), so one failing with EAGAIN is an error (EINTR\n"
    "                     is retried, as applications do). Default 0: no signals\n"
    "\n"
    "exit status: 0 ok, 1 data mismatch or socket behaviour error, 2 usage/setup error,\n"
    "3 timeout. The last stdout line is a JSON summary.\n";

std::optional<std::uint64_t> parse_size(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    std::uint64_t nv = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (nv / 10 != v) {
      return std::nullopt;
    }
    v = nv;
    ++i;
  }
  if (i == 0) {
    return std::nullopt;
  }
  std::string suffix;
  for (; i < s.size(); ++i) {
    suffix.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
  }
  unsigned shift = 0;
  if (suffix.empty() || suffix == "b") {
    shift = 0;
  } else if (suffix == "k" || suffix == "kb" || suffix == "kib") {
    shift = 10;
  } else if (suffix == "m" || suffix == "mb" || suffix == "mib") {
    shift = 20;
  } else if (suffix == "g" || suffix == "gb" || suffix == "gib") {
    shift = 30;
  } else {
    return std::nullopt;
  }
  if (shift != 0 && (v >> (64 - shift)) != 0) {
    return std::nullopt;
  }
  return v << shift;
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "ml_xfer: %s\n(see ml_xfer --help)\n", msg.c_str());
  std::exit(kExitUsage);
}

Options parse_args(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    std::exit(kExitUsage);
  }
  std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(kUsage, stdout);
    std::exit(kExitOk);
  }
  if (first != "client" && first != "server") {
    usage_error("first argument must be 'client' or 'server', got '" + first + "'");
  }
  o.role = first;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(kExitOk);
    }
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (a == "--nonblocking") {
      o.nonblocking = true;
      continue;
    }
    std::string val;
    auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= argc) {
        usage_error("option " + a + " needs a value");
      }
      val = argv[++i];
    }
    auto size_arg = [&](std::uint64_t max) -> std::uint64_t {
      auto v = parse_size(val);
      if (!v || *v > max) {
        usage_error("bad value for " + a + ": '" + val + "'");
      }
      return *v;
    };
    if (a == "--listen") {
      o.listen = val;
    } else if (a == "--connect") {
      o.connect = val;
    } else if (a == "--bind") {
      o.bind = val;
    } else if (a == "--ready-file") {
      o.ready_file = val;
    } else if (a == "--connections") {
      o.connections = static_cast<int>(size_arg(100000));
    } else if (a == "--parallel") {
      o.parallel = static_cast<int>(size_arg(10000));
    } else if (a == "--bytes") {
      o.bytes = size_arg(UINT64_MAX >> 1);
    } else if (a == "--peer-bytes") {
      o.peer_bytes = size_arg(UINT64_MAX >> 1);
    } else if (a == "--seed") {
      o.seed = size_arg(UINT64_MAX);
    } else if (a == "--min-write") {
      o.min_write = size_arg(1ULL << 30);
    } else if (a == "--max-write") {
      o.max_write = size_arg(1ULL << 30);
    } else if (a == "--max-read") {
      o.max_read = size_arg(1ULL << 30);
    } else if (a == "--signal-every-us") {
      o.signal_every_us = size_arg(60ULL * 1000 * 1000);
    } else if (a == "--corrupt-at") {
      o.corrupt_at = size_arg(UINT64_MAX >> 1);
    } else if (a == "--read-mode") {
      if (val == "plain") {
        o.read_mode = ReadMode::kPlain;
      } else if (val == "peek") {
        o.read_mode = ReadMode::kPeek;
      } else if (val == "fionread") {
        o.read_mode = ReadMode::kFionread;
      } else if (val == "epoll") {
        o.read_mode = ReadMode::kEpoll;
      } else {
        usage_error("--read-mode must be plain, peek, fionread or epoll");
      }
    } else if (a == "--timeout") {
      char* end = nullptr;
      o.timeout_s = std::strtod(val.c_str(), &end);
      if (end == val.c_str() || *end != '\0' || !(o.timeout_s > 0)) {
        usage_error("bad value for --timeout: '" + val + "'");
      }
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (o.role == "server" && o.listen.empty()) {
    usage_error("server needs --listen ADDR:PORT");
  }
  if (o.role == "client" && o.connect.empty()) {
    usage_error("client needs --connect ADDR:PORT");
  }
  if (o.role == "server" && (!o.connect.empty() || !o.bind.empty() || o.parallel != 1)) {
    usage_error("--connect, --bind and --parallel are client options");
  }
  if (o.role == "client" && (!o.listen.empty() || !o.ready_file.empty() || o.connections != 1)) {
    usage_error("--listen, --ready-file and --connections are server options");
  }
  if (o.min_write == 0 || o.max_write < o.min_write) {
    usage_error("need 1 <= --min-write <= --max-write");
  }
  if (o.max_read == 0) {
    usage_error("--max-read must be at least 1");
  }
  if (o.connections < 1 || o.parallel < 1) {
    usage_error("--connections and --parallel must be at least 1");
  }
  if (o.read_mode == ReadMode::kEpoll) {
    o.nonblocking = true;  // edge-triggered epoll needs non-blocking reads to drain
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Addresses

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

std::optional<SockAddr> parse_addr(const std::string& text, std::string* err) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *err = "expected [IPv6]:PORT, got '" + text + "'";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      *err = "expected ADDR:PORT, got '" + text + "'";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      *err = "IPv6 addresses need brackets: [ADDR]:PORT, got '" + text + "'";
      return std::nullopt;
    }
  }
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p > 65535) {
    *err = "bad port in '" + text + "'";
    return std::nullopt;
  }
  SockAddr a;
  if (text[0] == '[') {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<std::uint16_t>(p));
    if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) != 1) {
      *err = "bad IPv6 address '" + host + "'";
      return std::nullopt;
    }
    a.len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<std::uint16_t>(p));
    if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) != 1) {
      *err = "bad IPv4 address '" + host + "'";
      return std::nullopt;
    }
    a.len = sizeof(sockaddr_in);
  }
  return a;
}

std::uint16_t addr_port(const SockAddr& a) {
  if (a.family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_port);
}

void set_addr_port(SockAddr& a, std::uint16_t port) {
  if (a.family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.ss)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&a.ss)->sin_port = htons(port);
  }
}

std::string addr_str(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s6->sin6_port));
  }
  const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(s4->sin_port));
}

std::string errno_str(const char* what, int e) {
  return std::string(what) + ": " + std::strerror(e) + " (errno " + std::to_string(e) + ")";
}

// Waits (no time limit: the watchdog has one) until poll() reports one of EVENTS on FD, or an
// error or hang-up condition, which the following call then reports. Returns 0 or an errno.
int wait_fd(int fd, short events) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, -1);
    if (r > 0) {
      return 0;
    }
    if (r < 0 && errno != EINTR) {
      return errno;
    }
  }
}

bool fd_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

// ---------------------------------------------------------------------------------------------
// Results

struct Failure {
  int code = kExitOk;
  std::string message;
};

class Summary {
 public:
  void fail(int code, const std::string& msg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_.code == kExitOk) {
      first_ = Failure{code, msg};
    }
  }
  Failure first() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<int> connections_done{0};
  std::atomic<std::uint64_t> blocking_eagain{0};
  std::atomic<std::uint64_t> eagain_waits{0};
  std::atomic<std::uint64_t> signals{0};  // SIGALRMs handled (--signal-every-us)

 private:
  std::mutex mu_;
  Failure first_;
};

Summary g_summary;
Options g_opts;
std::chrono::steady_clock::time_point g_start;
std::mutex g_out_mu;

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void print_summary(const Failure& f) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  std::lock_guard<std::mutex> lock(g_out_mu);
  std::printf(
      "{\"role\":\"%s\",\"connections\":%d,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
      "\"ok\":%s,\"error\":\"%s\",\"read_mode\":\"%s\",\"nonblocking\":%s,\"seed\":%llu,"
      "\"payload_bytes\":%llu,\"blocking_eagain\":%llu,\"eagain_waits\":%llu,"
      "\"signals\":%llu,\"elapsed_s\":%.3f}\n",
      g_opts.role.c_str(), g_summary.connections_done.load(),
      static_cast<unsigned long long>(g_summary.bytes_sent.load()),
      static_cast<unsigned long long>(g_summary.bytes_received.load()),
      f.code == kExitOk ? "true" : "false", json_escape(f.message).c_str(),
      read_mode_name(g_opts.read_mode), g_opts.nonblocking ? "true" : "false",
      static_cast<unsigned long long>(g_opts.seed), static_cast<unsigned long long>(g_opts.bytes),
      static_cast<unsigned long long>(g_summary.blocking_eagain.load()),
      static_cast<unsigned long long>(g_summary.eagain_waits.load()),
      static_cast<unsigned long long>(g_summary.signals.load()), secs);
  std::fflush(stdout);
}

void log_msg(const std::string& m) {
  if (!g_opts.quiet) {
    std::lock_guard<std::mutex> lock(g_out_mu);
    std::fprintf(stderr, "ml_xfer %s: %s\n", g_opts.role.c_str(), m.c_str());
  }
}

// The set holding only SIGALRM, the signal of --signal-every-us.
sigset_t alarm_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  return set;
}

// ---------------------------------------------------------------------------------------------
// One connection

class Conn {
 public:
  Conn(int fd, int role, std::uint32_t index, std::string name)
      : fd_(fd), role_(role), index_(index), name_(std::move(name)) {}
  ~Conn() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs the writer and the reader concurrently; returns when both are done.
  void run() {
    // The socket's mode was set where it was created (before listen/connect, or by accept4),
    // because that is what the datapath sees; here it is only checked.
    if (fd_nonblocking(fd_) != g_opts.nonblocking) {
      fail(kExitUsage, std::string("socket is ") +
                           (g_opts.nonblocking ? "blocking" : "non-blocking") +
                           ", expected the opposite (O_NONBLOCK not as requested)");
      return;
    }
    std::thread writer([this] { write_side(); });
    take_signals();  // after the writer started: it keeps SIGALRM blocked
    read_side();
    writer.join();
    if (!failed_) {
      g_summary.connections_done.fetch_add(1);
    }
  }

 private:
  void fail(int code, const std::string& msg) {
    failed_ = true;
    g_summary.fail(code, name_ + ": " + msg);
  }

  // With --signal-every-us, lets SIGALRM interrupt this thread (the reader; every other
  // thread keeps it blocked, see start_signal_timer).
  static void take_signals() {
    if (g_opts.signal_every_us == 0) {
      return;
    }
    const sigset_t alarm = alarm_set();
    pthread_sigmask(SIG_UNBLOCK, &alarm, nullptr);
  }

  // ---- writer ----

  // Sends all of buf; handles short writes and EAGAIN (the socket is non-blocking with
  // --nonblocking: EAGAIN means wait for POLLOUT). Returns false on error (already reported).
  bool send_all(const std::uint8_t* buf, std::size_t n) {
    std::size_t off = 0;
    while (off < n) {
      ssize_t r = ::send(fd_, buf + off, n - off, MSG_NOSIGNAL);
      if (r > 0) {
        off += static_cast<std::size_t>(r);
        sent_ += static_cast<std::uint64_t>(r);
        g_summary.bytes_sent.fetch_add(static_cast<std::uint64_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (g_opts.nonblocking) {
          g_summary.eagain_waits.fetch_add(1);
        }
        if (int e = wait_fd(fd_, POLLOUT); e != 0) {
          fail(kExitBehaviour, errno_str("poll(POLLOUT)", e));
          return false;
        }
        continue;
      }
      fail(kExitBehaviour, errno_str("send", r < 0 ? errno : EIO) + " after " +
                               std::to_string(sent_) + " bytes sent");
      return false;
    }
    return true;
  }

  void write_side() {
    std::uint8_t header[kHeaderSize] = {};
    std::memcpy(header, "MLXF", 4);
    header[4] = kVersion;
    header[5] = static_cast<std::uint8_t>(role_);
    for (int i = 0; i < 4; ++i) {
      header[8 + i] = static_cast<std::uint8_t>(index_ >> (8 * i));
    }
    store_le64(header + 16, g_opts.seed);
    store_le64(header + 24, g_opts.bytes);
    if (!send_all(header, sizeof header)) {
      return;
    }
    const std::uint64_t key = stream_key(g_opts.seed, role_, index_);
    XorShift sizes(key ^ 0x5157A7E5ULL);
    std::vector<std::uint8_t> buf(std::min<std::uint64_t>(g_opts.max_write, g_opts.bytes) + 1);
    std::uint64_t pos = 0;
    while (pos < g_opts.bytes) {
      if (failed_) {
        return;
      }
      std::size_t n = sizes.log_uniform(g_opts.min_write, g_opts.max_write);
      n = static_cast<std::size_t>(std::min<std::uint64_t>(n, g_opts.bytes - pos));
      fill_stream(key, pos, buf.data(), n);
      if (g_opts.corrupt_at && *g_opts.corrupt_at >= pos && *g_opts.corrupt_at < pos + n) {
        buf[*g_opts.corrupt_at - pos] ^= 0x5A;
      }
      if (!send_all(buf.data(), n)) {
        return;
      }
      pos += n;
    }
    if (::shutdown(fd_, SHUT_WR) < 0) {
      fail(kExitBehaviour, errno_str("shutdown(SHUT_WR)", errno));
    }
  }

  // ---- reader ----

  // Consumes received bytes: the header first, then the payload, checked byte for byte.
  // Returns false after reporting an error.
  bool consume(const std::uint8_t* data, std::size_t n) {
    received_ += n;
    g_summary.bytes_received.fetch_add(n);
    while (n > 0) {
      if (header_got_ < kHeaderSize) {
        std::size_t take = std::min(n, kHeaderSize - header_got_);
        std::memcpy(header_ + header_got_, data, take);
        header_got_ += take;
        data += take;
        n -= take;
        if (header_got_ == kHeaderSize && !check_header()) {
          return false;
        }
        continue;
      }
      if (n > peer_bytes_ - payload_got_) {
        fail(kExitBehaviour, "received more than the " + std::to_string(peer_bytes_) +
                                 " payload bytes the peer announced (at least " +
                                 std::to_string(payload_got_ + n) + ")");
        return false;
      }
      if (expect_.size() < n) {
        expect_.resize(n);
      }
      fill_stream(peer_key_, payload_got_, expect_.data(), n);
      if (std::memcmp(expect_.data(), data, n) != 0) {
        std::size_t i = 0;
        while (expect_[i] == data[i]) {
          ++i;
        }
        char b[160];
        std::snprintf(b, sizeof b,
                      "data mismatch at payload offset %llu: expected 0x%02x, got 0x%02x "
                      "(in a read of %zu bytes starting at offset %llu)",
                      static_cast<unsigned long long>(payload_got_ + i), expect_[i], data[i], n,
                      static_cast<unsigned long long>(payload_got_));
        fail(kExitBehaviour, b);
        return false;
      }
      payload_got_ += n;
      n = 0;
    }
    return true;
  }

  bool check_header() {
    if (std::memcmp(header_, "MLXF", 4) != 0 || header_[4] != kVersion) {
      fail(kExitBehaviour, "peer stream does not start with an ml_xfer v1 header");
      return false;
    }
    int peer_role = header_[5];
    if (peer_role != 1 - role_) {
      fail(kExitBehaviour, "peer header names role " + std::to_string(peer_role) + ", expected " +
                               std::to_string(1 - role_));
      return false;
    }
    std::uint32_t idx = load_le32(header_ + 8);
    std::uint64_t seed = load_le64(header_ + 16);
    std::uint64_t bytes = load_le64(header_ + 24);
    if (seed != g_opts.seed) {
      fail(kExitBehaviour, "peer stream has seed " + std::to_string(seed) + ", expected " +
                               std::to_string(g_opts.seed) +
                               " (a stream from another connection was delivered here)");
      return false;
    }
    std::uint64_t want = g_opts.peer_bytes.value_or(g_opts.bytes);
    if (bytes != want) {
      fail(kExitBehaviour,
           "peer announces " + std::to_string(bytes) + " bytes, expected " + std::to_string(want));
      return false;
    }
    peer_bytes_ = bytes;
    peer_index_ = idx;
    peer_key_ = stream_key(seed, peer_role, idx);
    return true;
  }

  bool at_eof() {
    if (header_got_ < kHeaderSize) {
      fail(kExitBehaviour, "EOF after " + std::to_string(header_got_) +
                               " bytes, before the 32-byte header was complete");
      return false;
    }
    if (payload_got_ != peer_bytes_) {
      fail(kExitBehaviour, "EOF after " + std::to_string(payload_got_) + " of " +
                               std::to_string(peer_bytes_) + " payload bytes");
      return false;
    }
    log_msg(name_ + ": peer index " + std::to_string(peer_index_) + ", verified " +
            std::to_string(payload_got_) + " bytes");
    return true;
  }

  std::size_t next_read_size() { return read_sizes_.log_uniform(1, g_opts.max_read); }

  // A recv() that failed with EAGAIN. With --nonblocking that only means "no data yet": wait
  // for POLLIN and return true to retry. Otherwise the socket is blocking, and recv() without
  // MSG_DONTWAIT on a blocking socket (no SO_RCVTIMEO) must block, never fail with EAGAIN. A
  // socket in a sockmap with only an sk_msg program has been seen to do it (tcp_bpf_recvmsg
  // returns -EAGAIN when woken without queued data, e.g. by a signal (every time: see
  // --signal-every-us), by the FIN or by a write-space wakeup), which breaks every
  // application that reads with blocking calls: reported as an error (returns false).
  bool recv_eagain(const char* what) {
    if (g_opts.nonblocking) {
      g_summary.eagain_waits.fetch_add(1);
      if (int e = wait_fd(fd_, POLLIN); e != 0) {
        recv_error("poll(POLLIN)", e);
        return false;
      }
      return true;
    }
    g_summary.blocking_eagain.fetch_add(1);
    fail(kExitBehaviour, std::string(what) + " on a blocking socket failed with EAGAIN after " +
                             std::to_string(received_) +
                             " bytes received (blocking-recv EAGAIN trap: a blocking read must "
                             "wait for data or EOF; an application reading this way would fail)");
    return false;
  }

  void recv_error(const char* what, int e) {
    fail(kExitBehaviour,
         errno_str(what, e) + " after " + std::to_string(received_) + " bytes received");
  }

  void read_plain(std::vector<std::uint8_t>& buf) {
    for (;;) {
      ssize_t r = ::recv(fd_, buf.data(), next_read_size(), 0);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (recv_eagain("recv")) {
          continue;
        }
        return;
      }
      if (r < 0) {
        recv_error("recv", errno);
        return;
      }
      if (r == 0) {
        at_eof();
        return;
      }
      if (!consume(buf.data(), static_cast<std::size_t>(r))) {
        return;
      }
    }
  }

  void read_peek(std::vector<std::uint8_t>& buf, std::vector<std::uint8_t>& peeked) {
    for (;;) {
      std::size_t want = next_read_size();
      ssize_t p = ::recv(fd_, peeked.data(), want, MSG_PEEK);
      if (p < 0 && errno == EINTR) {
        continue;
      }
      if (p < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (recv_eagain("recv(MSG_PEEK)")) {
          continue;
        }
        return;
      }
      if (p < 0) {
        recv_error("recv(MSG_PEEK)", errno);
        return;
      }
      auto n = static_cast<std::size_t>(p);
      ssize_t r;
      do {
        r = ::recv(fd_, buf.data(), n == 0 ? 1 : n, MSG_DONTWAIT);
      } while (r < 0 && errno == EINTR);
      if (p == 0) {
        if (r != 0) {
          fail(kExitBehaviour,
               "recv(MSG_PEEK) returned EOF but the following recv returned " +
                   (r < 0 ? errno_str("an error", errno) : std::to_string(r) + " bytes") +
                   " after " + std::to_string(received_) + " bytes");
          return;
        }
        at_eof();
        return;
      }
      if (r < 0) {
        recv_error("recv after MSG_PEEK", errno);
        return;
      }
      if (static_cast<std::size_t>(r) != n) {
        fail(kExitBehaviour, "recv(MSG_PEEK) returned " + std::to_string(n) +
                                 " bytes but the following recv of that length returned " +
                                 std::to_string(r) + " after " + std::to_string(received_) +
                                 " bytes");
        return;
      }
      if (std::memcmp(buf.data(), peeked.data(), n) != 0) {
        std::size_t i = 0;
        while (buf[i] == peeked[i]) {
          ++i;
        }
        fail(kExitBehaviour, "recv returned different bytes than recv(MSG_PEEK) at offset " +
                                 std::to_string(i) + " of a " + std::to_string(n) +
                                 "-byte read, after " + std::to_string(received_) + " bytes");
        return;
      }
      if (!consume(buf.data(), n)) {
        return;
      }
    }
  }

  void read_fionread(std::vector<std::uint8_t>& buf) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      int pr = ::poll(&p, 1, -1);
      if (pr < 0 && errno == EINTR) {
        continue;
      }
      if (pr < 0) {
        recv_error("poll(POLLIN)", errno);
        return;
      }
      int avail = 0;
      if (::ioctl(fd_, FIONREAD, &avail) < 0) {
        recv_error("ioctl(FIONREAD)", errno);
        return;
      }
      if (avail <= 0) {
        // Readable but FIONREAD says nothing: EOF, a spurious wakeup, or the sockmap trap.
        std::uint8_t one = 0;
        ssize_t pk = ::recv(fd_, &one, 1, MSG_PEEK | MSG_DONTWAIT);
        if (pk == 0) {
          at_eof();
          return;
        }
        if (pk < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          g_summary.eagain_waits.fetch_add(1);
          continue;  // back to poll()
        }
        if (pk < 0 && errno == EINTR) {
          continue;
        }
        if (pk < 0) {
          recv_error("recv(MSG_PEEK|MSG_DONTWAIT)", errno);
          return;
        }
        // Data is queued and only this thread consumes it: FIONREAD must now see it.
        if (::ioctl(fd_, FIONREAD, &avail) < 0) {
          recv_error("ioctl(FIONREAD)", errno);
          return;
        }
        if (avail <= 0) {
          fail(kExitBehaviour,
               "FIONREAD trap: ioctl(FIONREAD) returned " + std::to_string(avail) +
                   " while recv(MSG_PEEK) returns data (after " + std::to_string(received_) +
                   " bytes); an application that waits for FIONREAD > 0 would hang");
          return;
        }
      }
      auto left = static_cast<std::size_t>(avail);
      while (left > 0) {
        std::size_t want = std::min(left, buf.size());
        ssize_t r = ::recv(fd_, buf.data(), want, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) {
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          fail(kExitBehaviour, "ioctl(FIONREAD) reported " + std::to_string(avail) +
                                   " bytes but only " + std::to_string(avail - left) +
                                   " could be read (after " + std::to_string(received_) +
                                   " bytes)");
          return;
        }
        if (r < 0) {
          recv_error("recv", errno);
          return;
        }
        if (r == 0) {
          fail(kExitBehaviour, "EOF while ioctl(FIONREAD) still reported " + std::to_string(left) +
                                   " unread bytes (after " + std::to_string(received_) + " bytes)");
          return;
        }
        if (!consume(buf.data(), static_cast<std::size_t>(r))) {
          return;
        }
        left -= static_cast<std::size_t>(r);
      }
    }
  }

  void read_epoll(std::vector<std::uint8_t>& buf) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      fail(kExitUsage, errno_str("epoll_create1", errno));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd_;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd_, &ev) < 0) {
      fail(kExitUsage, errno_str("epoll_ctl", errno));
      ::close(ep);
      return;
    }
    bool done = false;
    while (!done) {
      epoll_event out{};
      int n = ::epoll_wait(ep, &out, 1, -1);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        recv_error("epoll_wait", errno);
        break;
      }
      // Edge-triggered: drain until EAGAIN or EOF.
      for (;;) {
        ssize_t r = ::recv(fd_, buf.data(), next_read_size(), 0);
        if (r < 0 && errno == EINTR) {
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          g_summary.eagain_waits.fetch_add(1);
          break;  // drained: back to epoll_wait
        }
        if (r < 0) {
          recv_error("recv", errno);
          done = true;
          break;
        }
        if (r == 0) {
          at_eof();
          done = true;
          break;
        }
        if (!consume(buf.data(), static_cast<std::size_t>(r))) {
          done = true;
          break;
        }
      }
    }
    ::close(ep);
  }

  void read_side() {
    std::vector<std::uint8_t> buf(std::max<std::size_t>(g_opts.max_read, 65536));
    switch (g_opts.read_mode) {
      case ReadMode::kPlain: read_plain(buf); break;
      case ReadMode::kPeek: {
        std::vector<std::uint8_t> peeked(buf.size());
        read_peek(buf, peeked);
        break;
      }
      case ReadMode::kFionread: read_fionread(buf); break;
      case ReadMode::kEpoll: read_epoll(buf); break;
    }
    if (failed_) {
      // Unblock the writer (it may be waiting for the peer to read) and the peer.
      ::shutdown(fd_, SHUT_RDWR);
    }
  }

  int fd_;
  int role_;
  std::uint32_t index_;
  std::string name_;
  std::atomic<bool> failed_{false};
  std::uint64_t sent_ = 0;
  // reader state
  std::uint8_t header_[kHeaderSize] = {};
  std::size_t header_got_ = 0;
  std::uint64_t peer_bytes_ = 0;
  std::uint32_t peer_index_ = 0;
  std::uint64_t peer_key_ = 0;
  std::uint64_t payload_got_ = 0;
  std::uint64_t received_ = 0;
  std::vector<std::uint8_t> expect_;
  XorShift read_sizes_{stream_key(g_opts.seed, role_, index_) ^ 0x4EAD5ULL};
};

// ---------------------------------------------------------------------------------------------
// Roles

int finish() {
  Failure f = g_summary.first();
  if (f.code != kExitOk) {
    std::lock_guard<std::mutex> lock(g_out_mu);
    std::fprintf(stderr, "ml_xfer %s: FAILED: %s\n", g_opts.role.c_str(), f.message.c_str());
  }
  print_summary(f);
  return f.code;
}

int setup_fail(const std::string& msg) {
  g_summary.fail(kExitUsage, msg);
  return finish();
}

int run_server() {
  std::string err;
  auto addr = parse_addr(g_opts.listen, &err);
  if (!addr) {
    usage_error("--listen: " + err);
  }
  // With --nonblocking the listening socket is O_NONBLOCK from its creation, so before
  // listen(): the datapath records a listener's mode when it starts listening.
  const int nb = g_opts.nonblocking ? SOCK_NONBLOCK : 0;
  int lfd = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC | nb, 0);
  if (lfd < 0) {
    return setup_fail(errno_str("socket", errno));
  }
  int one = 1;
  int zero = 0;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr->family() == AF_INET6) {
    ::setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr->ss), addr->len) < 0) {
    return setup_fail(errno_str(("bind " + g_opts.listen).c_str(), errno));
  }
  if (::listen(lfd, 1024) < 0) {
    return setup_fail(errno_str("listen", errno));
  }
  {
    std::lock_guard<std::mutex> lock(g_out_mu);
    std::printf("listening\n");
    std::fflush(stdout);
  }
  if (!g_opts.ready_file.empty()) {
    FILE* f = std::fopen(g_opts.ready_file.c_str(), "w");
    if (f == nullptr) {
      return setup_fail(errno_str(("open " + g_opts.ready_file).c_str(), errno));
    }
    std::fprintf(f, "%s\n", g_opts.listen.c_str());
    std::fclose(f);
  }
  log_msg("listening on " + g_opts.listen + ", serving " + std::to_string(g_opts.connections) +
          " connection(s)");
  std::vector<std::thread> threads;
  for (int i = 0; i < g_opts.connections; ++i) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC | nb);
    if (fd < 0 && errno == EINTR) {
      --i;
      continue;
    }
    if (fd < 0 && g_opts.nonblocking &&
        (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)) {
      if (int e = wait_fd(lfd, POLLIN); e != 0) {
        g_summary.fail(kExitUsage, errno_str("poll(POLLIN) on the listening socket", e));
        break;
      }
      --i;
      continue;
    }
    if (fd < 0) {
      g_summary.fail(kExitUsage, errno_str("accept", errno));
      break;
    }
    std::string name = "conn " + std::to_string(i) + " from " + addr_str(peer);
    log_msg("accepted " + name);
    threads.emplace_back([fd, i, name] {
      Conn c(fd, 1, static_cast<std::uint32_t>(i), name);
      c.run();
    });
  }
  ::close(lfd);
  for (auto& t : threads) {
    t.join();
  }
  return finish();
}

int run_client() {
  std::string err;
  auto addr = parse_addr(g_opts.connect, &err);
  if (!addr) {
    usage_error("--connect: " + err);
  }
  std::optional<SockAddr> bind_addr;
  if (!g_opts.bind.empty()) {
    bind_addr = parse_addr(g_opts.bind, &err);
    if (!bind_addr) {
      usage_error("--bind: " + err);
    }
    if (bind_addr->family() != addr->family()) {
      usage_error("--bind and --connect must be the same address family");
    }
    if (addr_port(*bind_addr) != 0 && addr_port(*bind_addr) + g_opts.parallel - 1 > 65535) {
      usage_error("--bind port + --parallel exceeds 65535");
    }
  }
  // Connect everything first so that all connections then run at the same time.
  std::vector<std::pair<int, std::string>> fds;
  for (int i = 0; i < g_opts.parallel; ++i) {
    // With --nonblocking the socket is O_NONBLOCK before connect(), so when the connection
    // is established (which is when the datapath looks at it) it is already non-blocking.
    int fd = ::socket(addr->family(),
                      SOCK_STREAM | SOCK_CLOEXEC | (g_opts.nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
      g_summary.fail(kExitUsage, errno_str("socket", errno));
      break;
    }
    if (bind_addr) {
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      SockAddr b = *bind_addr;
      if (addr_port(b) != 0) {
        set_addr_port(b, static_cast<std::uint16_t>(addr_port(b) + i));
      }
      if (::bind(fd, reinterpret_cast<sockaddr*>(&b.ss), b.len) < 0) {
        g_summary.fail(kExitUsage, errno_str(("bind " + addr_str(b.ss)).c_str(), errno));
        ::close(fd);
        break;
      }
    }
    int cr = ::connect(fd, reinterpret_cast<sockaddr*>(&addr->ss), addr->len);
    int ce = cr < 0 ? errno : 0;
    if (cr < 0 && g_opts.nonblocking && (ce == EINPROGRESS || ce == EINTR)) {
      // Wait for the handshake to finish, then read its result.
      ce = wait_fd(fd, POLLOUT);
      socklen_t elen = sizeof ce;
      if (ce == 0 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &ce, &elen) < 0) {
        ce = errno;
      }
    }
    if (ce != 0) {
      g_summary.fail(kExitUsage, errno_str(("connect " + g_opts.connect).c_str(), ce));
      ::close(fd);
      break;
    }
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
    std::string name =
        "conn " + std::to_string(i) + " " + addr_str(local) + " -> " + g_opts.connect;
    log_msg("connected " + name);
    fds.emplace_back(fd, name);
  }
  if (g_summary.first().code != kExitOk) {
    for (auto& [fd, name] : fds) {
      ::close(fd);
    }
    return finish();
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    threads.emplace_back([i, fd = fds[i].first, name = fds[i].second] {
      Conn c(fd, 0, static_cast<std::uint32_t>(i), name);
      c.run();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  return finish();
}

void start_watchdog() {
  std::thread([] {
    auto deadline = g_start + std::chrono::duration<double>(g_opts.timeout_s);
    std::this_thread::sleep_until(deadline);
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", g_opts.timeout_s);
    std::string msg = "timeout: not finished after " + std::string(secs) + " s (" +
                      std::to_string(g_summary.bytes_sent.load()) + " bytes sent, " +
                      std::to_string(g_summary.bytes_received.load()) + " received)";
    {
      std::lock_guard<std::mutex> lock(g_out_mu);
      std::fprintf(stderr, "ml_xfer %s: %s\n", g_opts.role.c_str(), msg.c_str());
    }
    print_summary(Failure{kExitTimeout, msg});
    std::_Exit(kExitTimeout);
  }).detach();
}

// With --signal-every-us: SIGALRM at that interval, handled with SA_RESTART. Applications get
// such signals from profilers (SIGPROF), timers and runtimes; on plain TCP a blocking recv()
// they interrupt is restarted and never seen. The main thread blocks SIGALRM before any
// thread starts, so every thread inherits the block; only the readers unblock it
// (Conn::take_signals), so each signal interrupts a reader, typically one waiting for data.
void on_alarm(int /*signo*/) { g_summary.signals.fetch_add(1, std::memory_order_relaxed); }

void start_signal_timer() {
  if (g_opts.signal_every_us == 0) {
    return;
  }
  const sigset_t alarm = alarm_set();
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct itimerval every {};
  every.it_interval.tv_sec = static_cast<time_t>(g_opts.signal_every_us / 1000000);
  every.it_interval.tv_usec = static_cast<suseconds_t>(g_opts.signal_every_us % 1000000);
  every.it_value = every.it_interval;
  if (pthread_sigmask(SIG_BLOCK, &alarm, nullptr) != 0 || sigaction(SIGALRM, &sa, nullptr) != 0 ||
      setitimer(ITIMER_REAL, &every, nullptr) != 0) {
    std::fprintf(stderr, "ml_xfer: cannot start the SIGALRM timer: %s\n", std::strerror(errno));
    std::exit(kExitUsage);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  g_opts = parse_args(argc, argv);
  g_start = std::chrono::steady_clock::now();
  start_signal_timer();  // first: every thread started after it inherits the SIGALRM block
  start_watchdog();
  return g_opts.role == "server" ? run_server() : run_client();
}
