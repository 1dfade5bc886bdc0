// The control socket's transport, served for real on a Unix socket in a scratch directory: many
// clients at once, stalled and vanishing clients, frame limits, malformed input, the idle
// timeout, the client limit, the socket file's mode and lifetime, and peer credentials.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/client.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "temp_dir.hpp"

namespace meshlane::control {
namespace {

using std::chrono::milliseconds;

// Answers {"method": M, "uid": U, "pid": P} and closes after malformed lines, as the daemon's
// ControlApi does.
Reply echo_handler(const PeerCredentials& peer, std::string_view line) {
  auto parsed = parse_request(line);
  if (!parsed) {
    const RequestError& bad = parsed.error();
    return {encode_error(bad.id, bad.error), bad.close};
  }
  const Request& request = parsed.value();
  if (request.method == "slow") {
    std::this_thread::sleep_for(milliseconds(2));
  }
  return {encode_result(request.id, {{"method", request.method},
                                     {"uid", peer.uid},
                                     {"pid", peer.pid},
                                     {"groups", peer.groups.size()}}),
          false};
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(scratch_.path().empty());
    dir_ = scratch_.path();
    options_.path = dir_ + "/run/ctl.sock";
    options_.mode = 0600;
    options_.idle_timeout = milliseconds(30000);
  }

  void TearDown() override { stop(); }

  void start(LineHandler handler = echo_handler) {
    auto server = Server::start(io_, options_, std::move(handler));
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server.value());
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    if (thread_.joinable()) {
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }

  Client connect() {
    auto client = Client::connect(options_.path, milliseconds(5000));
    EXPECT_TRUE(client.ok()) << client.error().message();
    return std::move(client.value());
  }

  // Reads what the server sends until it closes; returns it (bounded by the client timeout).
  static std::string read_until_closed(Client& client) {
    std::string all;
    for (;;) {
      auto line = client.read_line();
      if (!line) {
        return all;
      }
      all += *line + "\n";
    }
  }

  static ErrorCode error_of(const std::string& line) {
    auto response = parse_response(line);
    EXPECT_TRUE(response.ok()) << line;
    EXPECT_TRUE(response.ok() && response->error.has_value()) << line;
    return response.ok() && response->error ? response->error->code : ErrorCode::kInternal;
  }

  test::TempDir scratch_{"meshlane-srv"};
  std::string dir_;  // scratch_.path()
  ServerOptions options_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ServerTest, AnswersRequestsWithThePeersCredentials) {
  start();
  Client client = connect();
  for (int i = 0; i < 3; ++i) {
    auto response = client.call("status", nlohmann::json::object());
    ASSERT_TRUE(response.ok()) << response.error().message();
    ASSERT_TRUE(response->result.has_value());
    EXPECT_EQ((*response->result)["method"], "status");
    EXPECT_EQ((*response->result)["uid"], ::getuid());
    EXPECT_EQ((*response->result)["pid"], ::getpid());
  }
}

TEST_F(ServerTest, SocketFileHasTheConfiguredModeAndGoesAwayWithTheServer) {
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(options_.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  stop();
  EXPECT_FALSE(std::filesystem::exists(options_.path));
  // The directory the server created is removed too.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/run"));
}

TEST_F(ServerTest, ExistingDirectoryIsKept) {
  std::filesystem::create_directory(dir_ + "/run");
  start();
  stop();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/run"));
}

TEST_F(ServerTest, StaleSocketIsReplacedLiveOneAndOtherFilesAreNot) {
  // A stale socket: bound, never listened on, closed.
  std::filesystem::create_directory(dir_ + "/run");
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    options_.path.copy(address.sun_path, sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  start();
  connect();  // the new server answers

  boost::asio::io_context other_io;
  auto second = Server::start(other_io, options_, echo_handler);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("another process"), std::string::npos);
  stop();

  std::ofstream(options_.path) << "not a socket";
  boost::asio::io_context third_io;
  auto third = Server::start(third_io, options_, echo_handler);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.error().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(options_.path));  // left alone
}

TEST_F(ServerTest, ManyConcurrentClientsAreAllServed) {
  options_.max_clients = 512;
  start();
  constexpr int kClients = 300;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connect());
  }
  // A client stalled mid-request, and one that never reads, do not hold up the others.
  ASSERT_TRUE(clients[0].send_raw("{\"v\":1,\"id\":1,\"meth").ok());
  ASSERT_TRUE(clients[1].send_raw(encode_request(1, "status", nlohmann::json::object())).ok());
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 2 + t; i < kClients; i += 4) {
        auto response = clients[i].call("slow", nlohmann::json::object());
        if (response.ok() && response->result.has_value()) {
          ++answered;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(answered.load(), kClients - 2);
  EXPECT_EQ(server_->client_count(), static_cast<std::size_t>(kClients));
  clients.clear();  // all vanish at once
  for (int i = 0; i < 100 && server_->client_count() != 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(server_->client_count(), 0u);
}

TEST_F(ServerTest, OversizedFrameGetsAnErrorThenClose) {
  options_.max_frame_bytes = 1024;
  start();
  Client big = connect();
  ASSERT_TRUE(big.send_raw(std::string(4096, ' ')).ok());
  auto line = big.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(error_of(*line), ErrorCode::kFrameTooLarge);
  EXPECT_FALSE(big.read_line().ok());  // closed
  // Others keep being served.
  Client other = connect();
  EXPECT_TRUE(other.call("status", nlohmann::json::object()).ok());
}

TEST_F(ServerTest, DefaultFrameLimitIsOneMebibyte) {
  start();
  Client client = connect();
  // Exactly 1 MiB of request is fine: padding inside the JSON.
  std::string request = R"({"v":1,"id":1,"method":"status","params":{}})";
  request.insert(request.size() - 1, std::string(kMaxFrameBytes - request.size(), ' '));
  ASSERT_EQ(request.size(), kMaxFrameBytes);
  ASSERT_TRUE(client.send_raw(request + "\n").ok());
  auto ok = client.read_line();
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(parse_response(*ok)->result.has_value());
  // One byte more is not.
  ASSERT_TRUE(client.send_raw(" " + request + "\n").ok());
  auto too_large = client.read_line();
  ASSERT_TRUE(too_large.ok());
  EXPECT_EQ(error_of(*too_large), ErrorCode::kFrameTooLarge);
}

TEST_F(ServerTest, MalformedJsonGetsAnErrorThenClose) {
  start();
  Client client = connect();
  ASSERT_TRUE(client.send_raw("{\"v\":1,\"id\":1,\"method\":\"status\"\n").ok());
  auto line = client.read_line();
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(error_of(*line), ErrorCode::kParseError);
  EXPECT_FALSE(client.read_line().ok());
  Client other = connect();
  EXPECT_TRUE(other.call("status", nlohmann::json::object()).ok());
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  Client client = connect();
  std::string batch;
  for (int id = 1; id <= 50; ++id) {
    batch += encode_request(id, "m" + std::to_string(id), nlohmann::json::object());
  }
  batch += "\n\r\n";  // blank lines are skipped
  batch += encode_request(51, "last", nlohmann::json::object());
  ASSERT_TRUE(client.send_raw(batch).ok());
  for (int id = 1; id <= 51; ++id) {
    auto line = client.read_line();
    ASSERT_TRUE(line.ok());
    auto response = parse_response(*line);
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->id, id);
  }
}

TEST_F(ServerTest, LastRequestWithoutNewlineIsAnsweredAtEof) {
  start();
  Client client = connect();
  std::string request = encode_request(9, "status", nlohmann::json::object());
  request.pop_back();
  ASSERT_TRUE(client.send_raw(request).ok());
  ASSERT_EQ(::shutdown(client.fd(), SHUT_WR), 0);
  auto line = client.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(parse_response(*line)->id, 9);
  EXPECT_FALSE(client.read_line().ok());
}

TEST_F(ServerTest, IdleClientsAreDropped) {
  options_.idle_timeout = milliseconds(200);
  start();
  Client idle = connect();
  Client trickle = connect();
  const auto begin = std::chrono::steady_clock::now();
  // Trickling bytes of an incomplete request does not count as activity.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(trickle.send_raw(" ").ok());
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto line = idle.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(error_of(*line), ErrorCode::kIdleTimeout);
  EXPECT_FALSE(idle.read_line().ok());
  auto trickled = trickle.read_line();
  ASSERT_TRUE(trickled.ok());
  EXPECT_EQ(error_of(*trickled), ErrorCode::kIdleTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, milliseconds(3000));
  // An active client is not dropped: each answer restarts its clock.
  Client active = connect();
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    ASSERT_TRUE(active.call("status", nlohmann::json::object()).ok());
  }
}

TEST_F(ServerTest, ClientsOverTheLimitAreTurnedAway) {
  options_.max_clients = 2;
  start();
  Client first = connect();
  Client second = connect();
  ASSERT_TRUE(first.call("status", nlohmann::json::object()).ok());
  ASSERT_TRUE(second.call("status", nlohmann::json::object()).ok());
  Client third = connect();
  auto line = third.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(error_of(*line), ErrorCode::kTooManyClients);
  EXPECT_FALSE(third.read_line().ok());
  // Room again once a client leaves.
  { Client gone = std::move(first); }
  for (int i = 0; i < 100 && server_->client_count() > 1; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  Client fourth = connect();
  EXPECT_TRUE(fourth.call("status", nlohmann::json::object()).ok());
}

TEST_F(ServerTest, ClientThatVanishesMidResponseDoesNotHurt) {
  // A response big enough not to fit in the socket buffer at once.
  start([](const PeerCredentials&, std::string_view line) {
    auto parsed = parse_request(line);
    return Reply{encode_result(parsed->id, {{"blob", std::string(8 * 1024 * 1024, 'x')}}), false};
  });
  {
    Client client = connect();
    ASSERT_TRUE(client.send_raw(encode_request(1, "big", nlohmann::json::object())).ok());
  }  // closed without reading
  Client other = connect();
  auto response = other.call("big", nlohmann::json::object());
  ASSERT_TRUE(response.ok()) << response.error().message();
  EXPECT_EQ((*response->result)["blob"].get<std::string>().size(), 8u * 1024 * 1024);
}

TEST(ControlSocketGroup, ResolvesNamesAndNumbers) {
  auto none = resolve_socket_group("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto root = resolve_socket_group("root");
  ASSERT_TRUE(root.ok()) << root.error().message();
  EXPECT_EQ(root->value(), 0u);
  auto numeric = resolve_socket_group("54321");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->value(), 54321u);
  auto unknown = resolve_socket_group("no-such-group-meshlane");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("no group named \"no-such-group-meshlane\""),
            std::string::npos);
}

TEST(ControlClient, ConnectFailureSaysWhy) {
  auto client = Client::connect("/nonexistent/meshlane.sock", milliseconds(100));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().errnum, ENOENT);
  EXPECT_NE(client.error().message().find("is meshlaned running?"), std::string::npos);
}

}  // namespace
}  // namespace meshlane::control
