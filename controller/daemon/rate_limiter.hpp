// A log rate limiter: at most `burst` lines per `window`, and a count of the ones held back that
// the next line admitted reports. The control socket logs every refused caller at warning
// (docs/security.md, "Audit log"); a local user who loops on a refused call must not be able to
// flood the daemon's log (or its disk) with them, but the operator must still learn that it
// happened and how often.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace meshlane::control {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Decision {
    bool log = false;              // log this one
    std::uint64_t suppressed = 0;  // when log: how many were held back since the last logged one
  };

  RateLimiter(std::size_t burst, Clock::duration window) : burst_(burst), window_(window) {}

  // One event at `now` (a steady clock, so that tests can pass their own times).
  Decision admit(Clock::time_point now) {
    if (!started_ || now - window_start_ >= window_) {
      started_ = true;
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= burst_) {
      ++suppressed_;
      return {false, 0};
    }
    ++in_window_;
    const std::uint64_t held_back = suppressed_;
    suppressed_ = 0;
    return {true, held_back};
  }

 private:
  std::size_t burst_;
  Clock::duration window_;
  bool started_ = false;
  Clock::time_point window_start_{};
  std::size_t in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace meshlane::control
