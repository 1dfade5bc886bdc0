// The metrics endpoint: the Prometheus text the formatter writes (families, labels, escapes),
// the answers to well-formed and bad HTTP requests, and the server on a loopback port (limits on
// request size, time and connections).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "observe/metrics.hpp"
#include "observe/metrics_server.hpp"

#include "test_support.hpp"

namespace meshlane::metrics {
namespace {

using std::chrono::milliseconds;
using test::contains;

Counters counters_with(std::uint64_t sockets_added, std::uint64_t bytes) {
  Counters counters;
  counters.values[ML_CTR_SOCKETS_ADDED] = sockets_added;
  counters.values[ML_CTR_BYTES_REDIRECTED] = bytes;
  return counters;
}

// Every sample line "name{labels} value" of a page, keyed by "name{labels}".
std::map<std::string, std::string> samples(const std::string& page) {
  std::map<std::string, std::string> found;
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const std::size_t space = line.rfind(' ');
    found[line.substr(0, space)] = line.substr(space + 1);
  }
  return found;
}

TEST(MetricsFormat, EveryCounterIsAFamilyWithHelpTypeAndTotalSuffix) {
  const Counters node = counters_with(12, 4096);
  auto page = format_prometheus(node, {}, {});
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(contains(*page,
                       "# HELP meshlane_sockets_added_total Sockets put into the sockhash "
                       "(spliceable).\n# TYPE meshlane_sockets_added_total counter\n"
                       "meshlane_sockets_added_total 12\n"));
  const auto found = samples(*page);
  EXPECT_EQ(found.size(), static_cast<std::size_t>(ML_CTR_MAX));
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    const std::string name = counter_metric_name(counter);
    EXPECT_TRUE(name.starts_with("meshlane_") && name.ends_with("_total")) << name;
    if (counter != ML_CTR_BYTES_REDIRECTED) {
      EXPECT_EQ(name, std::string("meshlane_") + counter_name(counter) + "_total");
    }
    ASSERT_TRUE(found.count(name)) << name;
    EXPECT_EQ(found.at(name), std::to_string(node[counter])) << name;
    EXPECT_TRUE(contains(*page, "# TYPE " + name + " counter\n"));
    EXPECT_STRNE(counter_help(counter), "A meshlane datapath counter.") << name;
  }
  EXPECT_EQ(page->back(), '\n');
}

TEST(MetricsFormat, ByteCountersEndInBytesTotal) {
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    if (std::string(counter_name(counter)).find("bytes") == std::string::npos) {
      continue;
    }
    EXPECT_TRUE(counter_metric_name(counter).ends_with("_bytes_total"))
        << counter_metric_name(counter);
    EXPECT_TRUE(workload_counter_metric_name(counter).ends_with("_bytes_total"))
        << workload_counter_metric_name(counter);
  }
  EXPECT_EQ(counter_metric_name(ML_CTR_BYTES_REDIRECTED), "meshlane_redirected_bytes_total");
  EXPECT_EQ(counter_metric_name(ML_CTR_FAST_PATH_BYTES), "meshlane_fast_path_bytes_total");
  EXPECT_EQ(workload_counter_metric_name(ML_CTR_FAST_PATH_BYTES),
            "meshlane_workload_fast_path_bytes_total");
}

TEST(MetricsFormat, WorkloadSeriesHaveFamiliesOfTheirOwn) {
  const std::vector<CounterSet> workloads = {
      {{{"workload", "reviews-v1"}}, counters_with(3, 77)},
      {{{"workload", "odd\"name\\with\nnewline"}}, counters_with(2, 0)},
  };
  auto page = format_prometheus(counters_with(5, 0), workloads, {});
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(contains(*page,
                       "# TYPE meshlane_sockets_added_total counter\n"
                       "meshlane_sockets_added_total 5\n#"));
  EXPECT_TRUE(contains(
      *page,
      "# TYPE meshlane_workload_sockets_added_total counter\n"
      "meshlane_workload_sockets_added_total{workload=\"reviews-v1\"} 3\n"
      "meshlane_workload_sockets_added_total{workload=\"odd\\\"name\\\\with\\nnewline\"} 2\n"));
  // No family carries both the node's series (no label) and workloads' (a workload label): a
  // sum() over one family never counts a workload's share twice.
  std::map<std::string, std::set<bool>> labelled;
  for (const auto& [sample, value] : samples(*page)) {
    const std::size_t brace = sample.find('{');
    labelled[sample.substr(0, brace)].insert(brace != std::string::npos);
  }
  for (const auto& [family, kinds] : labelled) {
    EXPECT_EQ(kinds.size(), 1u) << family << " has samples with and without labels";
    EXPECT_EQ(family.starts_with("meshlane_workload_"), *kinds.begin()) << family;
  }
  // Counters the programs count node-wide only have no per-workload family at all.
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    const std::string name = workload_counter_metric_name(counter);
    EXPECT_EQ(contains(*page, "# TYPE " + name + " counter\n"), counted_per_workload(counter))
        << name;
  }
  EXPECT_FALSE(contains(*page, "meshlane_workload_redirected_bytes_total"));
  EXPECT_FALSE(contains(*page, "meshlane_workload_messages_redirected_total"));
  EXPECT_TRUE(contains(*page, "meshlane_workload_fast_path_bytes_total{workload=\"reviews-v1\"}"));
  // HELP and TYPE once per family.
  std::size_t type_lines = 0;
  for (std::size_t at = page->find("# TYPE meshlane_workload_sockets_added_total ");
       at != std::string::npos;
       at = page->find("# TYPE meshlane_workload_sockets_added_total ", at + 1)) {
    ++type_lines;
  }
  EXPECT_EQ(type_lines, 1u);
}

TEST(MetricsFormat, GaugesAreGroupedByNameInFirstSeenOrder) {
  const std::vector<GaugeSample> gauges = {
      {"workloads", "Workloads.", {{"source", "config"}}, 2},
      {"uptime_seconds", "Seconds up.", {}, 1.5},
      {"workloads", "Workloads.", {{"source", "live"}}, 0},
      {"big", "Big.", {}, 1e20},
  };
  auto page = format_prometheus(Counters{}, {}, gauges);
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(contains(*page,
                       "# HELP meshlane_workloads Workloads.\n# TYPE meshlane_workloads gauge\n"
                       "meshlane_workloads{source=\"config\"} 2\n"
                       "meshlane_workloads{source=\"live\"} 0\n"
                       "# HELP meshlane_uptime_seconds Seconds up.\n"
                       "# TYPE meshlane_uptime_seconds gauge\nmeshlane_uptime_seconds 1.5\n"));
  EXPECT_EQ(samples(*page).at("meshlane_big"), "1e+20");
}

TEST(MetricsFormat, BadNamesAreErrorsNotBrokenPages) {
  const std::vector<CounterSet> bad_label = {{{{"work-load", "x"}}, Counters{}}};
  auto page = format_prometheus(Counters{}, bad_label, {});
  ASSERT_FALSE(page.ok());
  EXPECT_TRUE(contains(page.error().message(), "invalid label name \"work-load\""));
  const std::vector<CounterSet> reserved = {{{{"__name__", "x"}}, Counters{}}};
  EXPECT_FALSE(format_prometheus(Counters{}, reserved, {}).ok());
  const std::vector<GaugeSample> bad_gauge = {{"1up", "x", {}, 1}};
  EXPECT_FALSE(format_prometheus(Counters{}, {}, bad_gauge).ok());
}

// ---- HTTP
// ----------------------------------------------------------------------------------------

RenderFn page_of(const std::string& text) {
  return [text] { return Result<std::string>(text); };
}

TEST(MetricsHttp, GetMetricsServesThePage) {
  const HttpResponse response = handle_request_head(
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n", page_of("a 1\n"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "a 1\n");
  EXPECT_EQ(response.serialize(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 4\r\nConnection: close\r\n\r\na 1\n");
  EXPECT_EQ(handle_request_head("GET /metrics?name[]=x HTTP/1.0\n\n", page_of("a 1\n")).status,
            200);
}

TEST(MetricsHttp, HeadSendsHeadersOnly) {
  const HttpResponse response =
      handle_request_head("HEAD /metrics HTTP/1.1\r\n\r\n", page_of("abc"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.serialize(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 3\r\nConnection: close\r\n\r\n");
}

TEST(MetricsHttp, OtherPathsMethodsAndGarbage) {
  int renders = 0;
  const RenderFn counting = [&renders] {
    ++renders;
    return Result<std::string>(std::string("x"));
  };
  EXPECT_EQ(handle_request_head("GET / HTTP/1.1\r\n\r\n", counting).status, 404);
  EXPECT_EQ(handle_request_head("GET /metricsx HTTP/1.1\r\n\r\n", counting).status, 404);
  EXPECT_EQ(handle_request_head("GET /Metrics HTTP/1.1\r\n\r\n", counting).status, 404);
  const HttpResponse post = handle_request_head("POST /metrics HTTP/1.1\r\n\r\n", counting);
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(contains(post.serialize(), "\r\nAllow: GET, HEAD\r\n"));
  for (const char* bad :
       {"", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1 x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}) {
    EXPECT_EQ(handle_request_head(bad, counting).status, 400) << bad;
  }
  EXPECT_EQ(renders, 0) << "only a GET or HEAD of /metrics reads the counters";
}

TEST(MetricsHttp, UnreadableCountersAre503WithTheReason) {
  const HttpResponse response = handle_request_head("GET /metrics HTTP/1.1\r\n\r\n", [] {
    return Result<std::string>(make_error(ENOENT, "cannot open pinned object ml_counters_v1"));
  });
  EXPECT_EQ(response.status, 503);
  EXPECT_TRUE(contains(response.body, "cannot open pinned object ml_counters_v1"));
}

TEST(MetricsHttp, RequestHeadEnd) {
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\nHost: x\r\n"), std::string::npos);
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\n\r\nbody"), 18u);
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\n\nbody"), 16u);
}

// ---- The server on a loopback port
// -----------------------------------------------------------------

class MetricsServerTest : public ::testing::Test {
 protected:
  void TearDown() override { stop(); }

  void start(RenderFn render = page_of("meshlane_up 1\n")) {
    options_.listen = {*parse_ip_address("127.0.0.1"), 0};
    auto server = Server::start(io_, options_, std::move(render));
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server.value());
    ASSERT_NE(server_->port(), 0);
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    if (thread_.joinable()) {
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }

  [[nodiscard]] UniqueFd connect_client() const {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(server_->port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    return fd;
  }

  // Sends `request`, returns everything received until the server closes (at most 5 s).
  [[nodiscard]] std::string exchange(const std::string& request) const {
    UniqueFd fd = connect_client();
    EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    return read_until_closed(fd.get());
  }

  static std::string read_until_closed(int fd) {
    std::string all;
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd ready{fd, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) {
        continue;
      }
      char buffer[4096];
      const ssize_t count = ::recv(fd, buffer, sizeof buffer, 0);
      if (count <= 0) {
        return all;
      }
      all.append(buffer, static_cast<std::size_t>(count));
    }
    ADD_FAILURE() << "the server did not close the connection; got: " << all;
    return all;
  }

  ServerOptions options_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(MetricsServerTest, ServesMetricsAndClosesEachConnection) {
  start();
  const std::string response = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_TRUE(response.ends_with("\r\n\r\nmeshlane_up 1\n")) << response;
  EXPECT_TRUE(exchange("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(exchange("hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
  // A request head split over many small writes.
  UniqueFd fd = connect_client();
  for (const char* part : {"GET /me", "trics HT", "TP/1.1\r", "\n\r\n"}) {
    ASSERT_GT(::send(fd.get(), part, std::strlen(part), MSG_NOSIGNAL), 0);
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(read_until_closed(fd.get()).starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST_F(MetricsServerTest, OversizedRequestHeadGets431) {
  options_.max_request_head_bytes = 1024;
  start();
  const std::string response =
      exchange("GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 431 ")) << response.substr(0, 100);
}

TEST_F(MetricsServerTest, SilentClientIsDroppedAfterTheTimeout) {
  options_.idle_timeout = milliseconds(200);
  start();
  const auto begin = std::chrono::steady_clock::now();
  UniqueFd fd = connect_client();
  ASSERT_GT(::send(fd.get(), "GET /metrics", 12, MSG_NOSIGNAL), 0);
  const std::string response = read_until_closed(fd.get());
  EXPECT_TRUE(response.starts_with("HTTP/1.1 408 ")) << response;
  EXPECT_LT(std::chrono::steady_clock::now() - begin, milliseconds(3000));
  EXPECT_TRUE(exchange("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
}

TEST_F(MetricsServerTest, ConnectionsOverTheLimitGet503) {
  options_.max_connections = 2;
  start();
  UniqueFd first = connect_client();
  UniqueFd second = connect_client();
  for (int i = 0; i < 100 && server_->connection_count() < 2; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(server_->connection_count(), 2u);
  EXPECT_TRUE(exchange("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503 "));
  // The two held connections are still served.
  const std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(first.get(), request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  EXPECT_TRUE(read_until_closed(first.get()).starts_with("HTTP/1.1 200 "));
}

TEST_F(MetricsServerTest, BindFailureSaysWhere) {
  start();
  ServerOptions taken;
  taken.listen = {*parse_ip_address("127.0.0.1"), server_->port()};
  boost::asio::io_context other;
  auto second = Server::start(other, taken, page_of(""));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().errnum, EADDRINUSE);
  EXPECT_TRUE(contains(second.error().message(), "127.0.0.1:" + std::to_string(server_->port())));
}

}  // namespace
}  // namespace meshlane::metrics
