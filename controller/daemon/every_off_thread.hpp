// Periodic work that may take long (walking every key of a full map) off the daemon's I/O
// thread: `every_off_thread(io, interval, work, deliver)` runs work() on a thread of its own every
// interval and hands each result to deliver() on the io_context, so the control socket and the
// metrics endpoint never wait for it, and deliver() needs no lock.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace meshlane::daemon {

template <typename Result>
class PeriodicOffThread {
 public:
  using Clock = std::chrono::steady_clock;

  PeriodicOffThread(boost::asio::io_context& io, Clock::duration interval,
                    std::function<Result()> work, std::function<void(Result)> deliver)
      : io_(io),
        interval_(interval),
        work_(std::move(work)),
        deliver_(std::make_shared<std::function<void(Result)>>(std::move(deliver))),
        thread_([this] { run(); }) {}
  PeriodicOffThread(const PeriodicOffThread&) = delete;
  PeriodicOffThread& operator=(const PeriodicOffThread&) = delete;
  PeriodicOffThread(PeriodicOffThread&&) = delete;
  PeriodicOffThread& operator=(PeriodicOffThread&&) = delete;

  // Waits for a run in progress to end. A result it posts and the io_context has not run yet is
  // dropped: the handler holds only a weak reference to deliver().
  ~PeriodicOffThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    deliver_.reset();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
      lock.unlock();
      Result result = work_();
      std::weak_ptr<std::function<void(Result)>> deliver = deliver_;
      boost::asio::post(io_, [deliver, result = std::move(result)]() mutable {
        if (auto fn = deliver.lock()) {
          (*fn)(std::move(result));
        }
      });
      lock.lock();
    }
  }

  boost::asio::io_context& io_;
  Clock::duration interval_;
  std::function<Result()> work_;
  // Read by the io_context's thread only (the handlers and the destructor run there).
  std::shared_ptr<std::function<void(Result)>> deliver_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything it uses is constructed
};

// The first run is one interval from now.
template <typename Result>
[[nodiscard]] std::unique_ptr<PeriodicOffThread<Result>> every_off_thread(
    boost::asio::io_context& io, std::chrono::steady_clock::duration interval,
    std::function<Result()> work, std::function<void(Result)> deliver) {
  return std::make_unique<PeriodicOffThread<Result>>(io, interval, std::move(work),
                                                     std::move(deliver));
}

}  // namespace meshlane::daemon
