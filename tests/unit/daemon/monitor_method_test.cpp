// The monitor method of the control API, and its streaming subscription served for real on a
// Unix socket (disconnects, slow clients).

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/client.hpp"
#include "control/server.hpp"
#include "daemon/control_api.hpp"
#include "monitor_fixtures.hpp"
#include "observe/monitor_hub.hpp"
#include "temp_dir.hpp"

namespace meshlane::monitor {
namespace {

using control::ControlError;
using control::ErrorCode;
using nlohmann::json;
using namespace fixtures;  // NOLINT(google-build-using-namespace)

class HubBackend final : public control::ControlBackend {
 public:
  explicit HubBackend(Hub* hub) : hub_(hub) {}
  json status() override { return json::object(); }
  Result<Counters> counters() override { return Counters{}; }
  Result<std::vector<ml_sock_key>> sockhash_keys() override { return std::vector<ml_sock_key>{}; }
  std::optional<std::uint64_t> netns_cookie(const std::string&) override { return std::nullopt; }
  control::ControlResult<std::shared_ptr<Subscription>> subscribe(const Filter& filter) override {
    if (hub_ == nullptr) {
      return ControlBackend::subscribe(filter);
    }
    return hub_->subscribe(filter);
  }

 private:
  Hub* hub_;
};

class MonitorMethodTest : public ::testing::Test {
 protected:
  MonitorMethodTest()
      : registry_([](const std::vector<WorkloadConfig>&) { return Status(); },
                  [](const std::vector<WorkloadConfig>&) { return Status(); }) {}

  control::Reply send(control::ControlApi& api, const json& params,
                      const control::PeerCredentials& peer = {1, 0, 0, {}}) {
    std::string line = control::encode_request(9, "monitor", params);
    line.pop_back();
    return api.handle_line(peer, line);
  }

  GateLog gate_;
  Hub hub_{gate_.fn()};
  workloads::WorkloadRegistry registry_;
};

TEST_F(MonitorMethodTest, AcknowledgesWithTheFilterAndHandsOverTheStream) {
  HubBackend backend(&hub_);
  control::ControlApi api(backend, registry_, {});
  control::Reply reply = send(api, {{"types", {"spliced"}}, {"port", 15006}});
  ASSERT_NE(reply.stream, nullptr);
  EXPECT_FALSE(reply.close);
  auto response = control::parse_response(reply.line.substr(0, reply.line.size() - 1));
  ASSERT_TRUE(response.ok());
  ASSERT_TRUE(response->result.has_value()) << reply.line;
  EXPECT_EQ(response->id, 9);
  EXPECT_EQ((*response->result)["subscribed"], true);
  EXPECT_EQ((*response->result)["filter"]["types"], json::array({"spliced"}));
  EXPECT_EQ((*response->result)["filter"]["port"], 15006);
  EXPECT_EQ((*response->result)["queue_limit"], kDefaultQueueLimit);
  EXPECT_EQ(hub_.gate(), type_bit(ML_EVENT_SPLICED));
  reply.stream->stop();
  EXPECT_EQ(hub_.gate(), 0u);
}

TEST_F(MonitorMethodTest, BadFiltersAccessAndNoMonitorAreErrors) {
  HubBackend backend(&hub_);
  control::ControlApi api(backend, registry_, {});
  control::Reply bad = send(api, {{"types", {"nope"}}});
  EXPECT_EQ(bad.stream, nullptr);
  EXPECT_NE(bad.line.find("invalid_params"), std::string::npos) << bad.line;
  control::Reply denied = send(api, json::object(), {2, 65534, 65534, {}});
  EXPECT_EQ(denied.stream, nullptr);
  EXPECT_NE(denied.line.find("permission_denied"), std::string::npos) << denied.line;
  EXPECT_EQ(hub_.subscribers(), 0u);

  // call() has nowhere to put a stream.
  control::Request request;
  request.method = "monitor";
  auto outcome = api.call({1, 0, 0, {}}, request);
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, ErrorCode::kInternal);
  EXPECT_EQ(hub_.subscribers(), 0u);

  HubBackend none(nullptr);
  control::ControlApi without(none, registry_, {});
  control::Reply unavailable = send(without, json::object());
  EXPECT_EQ(unavailable.stream, nullptr);
  EXPECT_NE(unavailable.line.find("unavailable"), std::string::npos) << unavailable.line;
}

// ---- streaming on a real socket --------------------------------------------------------------

class MonitorStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    options_.path = dir_.path() + "/ctl.sock";
    options_.mode = 0600;
    options_.idle_timeout = std::chrono::milliseconds(300);  // streams must outlive it
    hub_ = std::make_unique<Hub>([this](std::uint64_t mask) { gate_ = mask; }, 8);
    backend_ = std::make_unique<HubBackend>(hub_.get());
    api_ = std::make_unique<control::ControlApi>(*backend_, registry_, control::AccessPolicy{});
    auto server = control::Server::start(
        io_, options_, [this](const control::PeerCredentials& peer, std::string_view line) {
          return api_->handle_line(peer, line);
        });
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server.value());
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    on_io([this] { server_.reset(); });
    io_.stop();
    thread_.join();
  }

  // Runs fn on the io thread (the hub and the server live there) and waits for it.
  template <typename Fn>
  void on_io(Fn fn) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void publish(const ml_event& raw, int times = 1) {
    on_io([&] {
      for (int i = 0; i < times; ++i) {
        hub_->publish(event(raw));
      }
    });
  }

  std::size_t subscribers() {
    std::size_t count = 0;
    on_io([&] { count = hub_->subscribers(); });
    return count;
  }

  bool wait_for_subscribers(std::size_t wanted) {
    for (int i = 0; i < 200; ++i) {
      if (subscribers() == wanted) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  control::Client subscribe(const json& params) {
    auto client = control::Client::connect(options_.path, std::chrono::milliseconds(5000));
    EXPECT_TRUE(client.ok());
    auto ack = client->call("monitor", params);
    EXPECT_TRUE(ack.ok() && ack->result.has_value());
    EXPECT_TRUE(wait_for_subscribers(1));
    return std::move(client.value());
  }

  test::TempDir dir_{"meshlane-mon"};
  control::ServerOptions options_;
  boost::asio::io_context io_;
  std::atomic<std::uint64_t> gate_{0};
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<HubBackend> backend_;
  workloads::WorkloadRegistry registry_{
      [](const std::vector<WorkloadConfig>&) { return Status(); },
      [](const std::vector<WorkloadConfig>&) { return Status(); }};
  std::unique_ptr<control::ControlApi> api_;
  std::unique_ptr<control::Server> server_;
  std::thread thread_;
};

TEST_F(MonitorStreamTest, EventsFollowTheAcknowledgementPastTheIdleTimeout) {
  control::Client client = subscribe({{"types", {"intercepted"}}});
  EXPECT_EQ(gate_.load(), type_bit(ML_EVENT_INTERCEPTED));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // twice the idle timeout
  publish(spliced_proxy_to_proxy(true));                        // filtered out
  publish(intercepted_outbound());
  auto line = client.read_line();
  ASSERT_TRUE(line.ok()) << line.error().message();
  const json first = json::parse(line.value());
  EXPECT_EQ(first["type"], "intercepted");
  EXPECT_EQ(first["orig_dst"], "198.18.0.11:8080");
  // Requests sent on a stream are not answered; the stream goes on.
  ASSERT_TRUE(client.send_raw(control::encode_request(2, "status", json::object())).ok());
  publish(intercepted_outbound());
  line = client.read_line();
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(json::parse(line.value())["type"], "intercepted");
}

TEST_F(MonitorStreamTest, DisconnectingEndsTheSubscriptionAndClearsTheGate) {
  {
    control::Client client = subscribe(json::object());
    EXPECT_EQ(gate_.load(), kAllTypes);
  }
  EXPECT_TRUE(wait_for_subscribers(0));
  EXPECT_EQ(gate_.load(), 0u);

  // Shutting down the sending side ends it too.
  control::Client half = subscribe(json::object());
  ASSERT_EQ(::shutdown(half.fd(), SHUT_WR), 0);
  EXPECT_TRUE(wait_for_subscribers(0));
  EXPECT_EQ(gate_.load(), 0u);
}

TEST_F(MonitorStreamTest, ASlowClientLosesEventsNotTheDaemon) {
  control::Client slow = subscribe(json::object());
  // Far more than the socket buffers and the queue of 8 hold, while the client reads nothing;
  // in batches, so that the daemon writes between them until the socket is full.
  constexpr int kBatches = 100;
  constexpr int kBatch = 200;
  constexpr int kEvents = kBatches * kBatch;
  for (int i = 0; i < kBatches; ++i) {
    publish(spliced_proxy_to_proxy(true), kBatch);
  }
  // The daemon still answers others at once.
  auto other = control::Client::connect(options_.path, std::chrono::milliseconds(2000));
  ASSERT_TRUE(other.ok());
  auto status = other->call("stats", json::object());
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_TRUE(status->result.has_value());

  // Reading now: events, then a drop notice; delivered + dropped = published.
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  while (delivered + dropped < kEvents) {
    auto line = slow.read_line();
    ASSERT_TRUE(line.ok()) << line.error().message() << " after " << delivered << " + " << dropped;
    const json j = json::parse(line.value());
    if (j["type"] == "dropped") {
      EXPECT_EQ(j["source"], "client_queue");
      dropped += j["count"].get<std::uint64_t>();
    } else {
      ++delivered;
    }
  }
  EXPECT_EQ(delivered + dropped, static_cast<std::uint64_t>(kEvents));
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(delivered, 0u);
}

}  // namespace
}  // namespace meshlane::monitor
