// Periodic work on the daemon's io_context: `every(io, interval, fn)` runs fn every interval
// until the returned handle is destroyed or the io_context stops.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

namespace meshlane::daemon {

class Periodic {
 public:
  using Clock = std::chrono::steady_clock;

  Periodic(boost::asio::io_context& io, Clock::duration interval, std::function<void()> fn)
      : timer_(io), interval_(interval), fn_(std::move(fn)) {
    schedule();
  }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;
  Periodic(Periodic&&) = delete;
  Periodic& operator=(Periodic&&) = delete;
  ~Periodic() { timer_.cancel(); }

 private:
  void schedule() {
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& error) {
      if (error) {
        return;  // cancelled: the handle is going away
      }
      fn_();
      schedule();
    });
  }

  boost::asio::steady_timer timer_;
  Clock::duration interval_;
  std::function<void()> fn_;
};

// The first run is one interval from now.
[[nodiscard]] inline std::unique_ptr<Periodic> every(boost::asio::io_context& io,
                                                     Periodic::Clock::duration interval,
                                                     std::function<void()> fn) {
  return std::make_unique<Periodic>(io, interval, std::move(fn));
}

}  // namespace meshlane::daemon
