// The fan-out of live events to `meshlanectl monitor` clients: each subscription has a filter
// and a bounded queue, so a slow client loses events (and is told how many), never stalls the
// daemon; the kernel's event gate follows the union of what is subscribed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/server.hpp"
#include "observe/events.hpp"

namespace meshlane::monitor {

// Events a client may still have queued before newer ones are dropped (and counted).
inline constexpr std::size_t kDefaultQueueLimit = 1024;

class Hub;

// One client's subscription: its filter and a bounded queue of encoded lines. It is the
// control session's StreamSource; the session stops it when the client goes away.
class Subscription final : public control::StreamSource {
 public:
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  Subscription(Subscription&&) = delete;
  Subscription& operator=(Subscription&&) = delete;
  ~Subscription() override;

  void start(std::function<void()> wake) override;
  bool take(std::string& out) override;
  void stop() override;

  [[nodiscard]] const Filter& filter() const { return filter_; }
  [[nodiscard]] std::size_t queued() const { return queue_.size(); }
  [[nodiscard]] std::size_t limit() const { return limit_; }
  // Events this client lost because its queue was full, since it subscribed.
  [[nodiscard]] std::uint64_t dropped_total() const { return dropped_total_; }

  struct Core;  // the hub's shared state, outlived safely through a weak_ptr

 private:
  friend class Hub;
  Subscription(std::weak_ptr<Core> core, Filter filter, std::size_t limit);
  void offer(const std::string& line);
  void offer_kernel_drops(std::uint64_t count);
  void notify();

  std::weak_ptr<Core> core_;
  Filter filter_;
  std::size_t limit_;
  std::deque<std::string> queue_;
  std::uint64_t pending_drops_ = 0;         // queue-full drops not yet reported in the stream
  std::uint64_t pending_kernel_drops_ = 0;  // ring-full drops not yet reported
  std::uint64_t dropped_total_ = 0;
  std::function<void()> wake_;
  bool stopped_ = false;
};

// Fans events out to the subscriptions whose filter matches, and keeps the kernel gate at the
// union of the subscribed types (0 when nobody is subscribed).
class Hub {
 public:
  using GateFn = std::function<void(std::uint64_t mask)>;

  explicit Hub(GateFn set_gate, std::size_t queue_limit = kDefaultQueueLimit);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  Hub(Hub&&) = delete;
  Hub& operator=(Hub&&) = delete;
  ~Hub();

  std::shared_ptr<Subscription> subscribe(Filter filter);
  void publish(const Event& event);
  // The kernel lost `count` events (ring buffer full): every subscriber is told.
  void publish_kernel_drops(std::uint64_t count);

  [[nodiscard]] std::size_t subscribers() const;
  [[nodiscard]] std::uint64_t gate() const;
  [[nodiscard]] std::size_t queue_limit() const { return queue_limit_; }

 private:
  std::shared_ptr<Subscription::Core> core_;
  std::size_t queue_limit_;
};

}  // namespace meshlane::monitor
