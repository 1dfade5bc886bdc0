// The daemon's end of the monitor's kernel objects: the pinned ring buffer ml_events_v1 that the
// datapath writes struct ml_event records into, and the gate ml_monitor_v1 that says which
// types the datapath should emit at all. EventPump reads the ring whenever the kernel says it
// has data, on the daemon's io_context (the ring buffer's epoll fd is watched like a socket:
// no polling loop, no extra thread).
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/pin_layout.hpp"
#include "meshlane/shared.h"

namespace boost::asio {
class io_context;
}

namespace meshlane {

// Move-only owner of a libbpf ring_buffer over one ring buffer map.
class EventRing {
 public:
  // Called for every well-formed record, in ring order.
  using Handler = std::function<void(const ml_event& event)>;

  // Opens the ring buffer pinned at `pin`. The map fd is kept open for the ring's lifetime.
  static Result<EventRing> open(const std::string& pin, Handler handler);

  EventRing(const EventRing&) = delete;
  EventRing& operator=(const EventRing&) = delete;
  EventRing(EventRing&&) noexcept = default;
  EventRing& operator=(EventRing&&) noexcept = default;
  ~EventRing() = default;

  // Readable whenever the ring holds records.
  [[nodiscard]] int epoll_fd() const;
  // Hands every record in the ring to the handler; returns how many there were.
  Result<int> consume();
  // Records whose size is not sizeof(ml_event) (a datapath from another meshlane version).
  [[nodiscard]] std::uint64_t malformed() const { return sink_->malformed; }

 private:
  struct RingDeleter {
    void operator()(ring_buffer* ring) const { ring_buffer__free(ring); }
  };
  // libbpf's callback context: on the heap, so that it stays put when the EventRing moves.
  struct Sink {
    Handler handler;
    std::uint64_t malformed = 0;
  };
  static int on_record(void* context, void* data, std::size_t size);

  EventRing(UniqueFd map_fd, std::unique_ptr<Sink> sink,
            std::unique_ptr<ring_buffer, RingDeleter> ring)
      : map_fd_(std::move(map_fd)), sink_(std::move(sink)), ring_(std::move(ring)) {}

  UniqueFd map_fd_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;  // last: freed before what it points into
};

// The gate: which event types the datapath emits (ml_monitor_v1), and how many it lost to a
// full ring.
class MonitorGate {
 public:
  static Result<MonitorGate> open(const std::string& pin);

  Status set_mask(std::uint64_t mask);
  [[nodiscard]] Result<std::uint64_t> mask() const;
  [[nodiscard]] Result<std::uint64_t> ring_drops() const;

 private:
  explicit MonitorGate(TypedMap<std::uint32_t, std::uint64_t> map) : map_(std::move(map)) {}
  [[nodiscard]] Result<std::uint64_t> read(std::uint32_t key) const;

  TypedMap<std::uint32_t, std::uint64_t> map_;
};

// Reads the ring on `io` whenever it has data and passes each record on with its wall-clock
// time; reports records the kernel had to drop. Closed when destroyed.
class EventPump {
 public:
  using EventFn = std::function<void(const ml_event& event, std::int64_t unix_ns)>;
  using DropsFn = std::function<void(std::uint64_t count)>;

  // Opens ml_events_v1 and ml_monitor_v1 under `pins`, switches the gate off (no client yet;
  // an earlier daemon may have died with one attached) and discards what the ring still holds.
  static Result<std::unique_ptr<EventPump>> start(boost::asio::io_context& io,
                                                  const PinLayout& pins, EventFn on_event,
                                                  DropsFn on_drops);

  EventPump(const EventPump&) = delete;
  EventPump& operator=(const EventPump&) = delete;
  EventPump(EventPump&&) = delete;
  EventPump& operator=(EventPump&&) = delete;
  ~EventPump();

  MonitorGate& gate() { return gate_; }

  struct Watch;  // the asio side, kept out of this header

 private:
  EventPump(EventRing ring, MonitorGate gate) : ring_(std::move(ring)), gate_(std::move(gate)) {}
  void drain();

  EventRing ring_;
  MonitorGate gate_;
  EventFn on_event_;
  DropsFn on_drops_;
  std::uint64_t drops_seen_ = 0;
  std::int64_t clock_offset_ns_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC, per drain
  std::shared_ptr<Watch> watch_;
};

}  // namespace meshlane
