// every_off_thread(): the work runs on a thread of its own, its results reach the io_context's
// thread, and a result still queued when the handle goes away is dropped, not delivered.
#include "daemon/every_off_thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace meshlane::daemon {
namespace {

using namespace std::chrono_literals;

// A deadline for what must happen, not a measure of how fast: generous for a loaded machine.
constexpr auto kPatience = 120s;

TEST(EveryOffThread, WorksOffTheIoThreadAndDeliversOnIt) {
  boost::asio::io_context io;
  const std::thread::id io_thread = std::this_thread::get_id();
  std::atomic<int> runs{0};
  std::atomic<bool> worked_on_io_thread{false};
  std::vector<int> delivered;
  bool delivered_off_io_thread = false;
  auto periodic = every_off_thread<int>(
      io, 1ms,
      [&] {
        if (std::this_thread::get_id() == io_thread) {
          worked_on_io_thread = true;
        }
        return ++runs;
      },
      [&](int run) {
        if (std::this_thread::get_id() != io_thread) {
          delivered_off_io_thread = true;
        }
        delivered.push_back(run);
      });
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (delivered.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    io.restart();
  }
  periodic.reset();
  ASSERT_GE(delivered.size(), 3u);
  EXPECT_FALSE(worked_on_io_thread);
  EXPECT_FALSE(delivered_off_io_thread);
  for (std::size_t i = 0; i < delivered.size(); ++i) {
    EXPECT_EQ(delivered[i], static_cast<int>(i) + 1) << "results arrive in order, none twice";
  }
}

TEST(EveryOffThread, AResultQueuedAtDestructionIsDropped) {
  boost::asio::io_context io;
  std::mutex mutex;
  std::condition_variable changed;
  bool started = false;
  bool release = false;
  int delivered = 0;
  auto periodic = every_off_thread<int>(
      io, 1ms,
      [&] {
        std::unique_lock<std::mutex> lock(mutex);
        started = true;
        changed.notify_all();
        changed.wait(lock, [&] { return release; });
        return 1;
      },
      [&](int) { ++delivered; });
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, kPatience, [&] { return started; }));
    release = true;
  }
  changed.notify_all();
  // Joins the worker, which posts its result before it ends.
  periodic.reset();
  const std::size_t handlers = io.poll();
  EXPECT_GE(handlers, 1u) << "the worker's result was posted";
  EXPECT_EQ(delivered, 0) << "and dropped, since the handle is gone";
}

}  // namespace
}  // namespace meshlane::daemon
