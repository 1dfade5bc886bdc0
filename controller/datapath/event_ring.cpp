#include "datapath/event_ring.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstring>
#include <ctime>

namespace meshlane {

namespace {

std::int64_t clock_ns(clockid_t clock) {
  timespec now{};
  ::clock_gettime(clock, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

}  // namespace

// ---- EventRing -------------------------------------------------------------------------------

int EventRing::on_record(void* context, void* data, std::size_t size) {
  auto* sink = static_cast<Sink*>(context);
  if (size != sizeof(ml_event)) {
    ++sink->malformed;
    return 0;  // skip it, keep reading
  }
  ml_event event{};
  std::memcpy(&event, data, sizeof event);  // the ring's memory is only borrowed
  sink->handler(event);
  return 0;
}

Result<EventRing> EventRing::open(const std::string& pin, Handler handler) {
  auto map = open_pinned_map(pin);
  if (!map) {
    return map.error();
  }
  if (map->info.type != BPF_MAP_TYPE_RINGBUF) {
    return make_error(EINVAL, pin + " is not a ring buffer (map type " +
                                  std::to_string(map->info.type) + "): run meshlaned --cleanup");
  }
  auto sink = std::make_unique<Sink>();
  sink->handler = std::move(handler);
  ring_buffer* raw = ring_buffer__new(map->fd.get(), on_record, sink.get(), nullptr);
  if (raw == nullptr) {
    return make_error(errno, "cannot map the event ring buffer " + pin);
  }
  return EventRing(std::move(map->fd), std::move(sink),
                   std::unique_ptr<ring_buffer, RingDeleter>(raw));
}

int EventRing::epoll_fd() const { return ring_buffer__epoll_fd(ring_.get()); }

Result<int> EventRing::consume() {
  const int count = ring_buffer__consume(ring_.get());
  if (count < 0) {
    return make_error(count, "cannot read the event ring buffer");
  }
  return count;
}

// ---- MonitorGate -----------------------------------------------------------------------------

Result<MonitorGate> MonitorGate::open(const std::string& pin) {
  auto map = TypedMap<std::uint32_t, std::uint64_t>::open_pin(pin);
  if (!map) {
    return map.error();
  }
  return MonitorGate(std::move(map.value()));
}

Status MonitorGate::set_mask(std::uint64_t mask) { return map_.update(ML_MONITOR_KEY_MASK, mask); }

Result<std::uint64_t> MonitorGate::read(std::uint32_t key) const {
  auto value = map_.lookup(key);
  if (!value) {
    return make_error(errno,
                      "cannot read key " + std::to_string(key) + " of map " + map_.info().name);
  }
  return *value;
}

Result<std::uint64_t> MonitorGate::mask() const { return read(ML_MONITOR_KEY_MASK); }

Result<std::uint64_t> MonitorGate::ring_drops() const { return read(ML_MONITOR_KEY_RING_DROPS); }

// ---- EventPump -------------------------------------------------------------------------------

// The ring's epoll fd (a dup: the descriptor object closes its own copy) on the io_context. The
// waits hold it through a weak_ptr, so a wait completing after the pump is gone does nothing.
struct EventPump::Watch : std::enable_shared_from_this<Watch> {
  Watch(boost::asio::io_context& io, int fd, EventPump* owner) : descriptor(io, fd), pump(owner) {}

  void arm() {
    descriptor.async_wait(
        boost::asio::posix::descriptor_base::wait_read,
        [weak = weak_from_this()](const boost::system::error_code& error) {
          auto self = weak.lock();
          if (!self || self->pump == nullptr || error == boost::asio::error::operation_aborted) {
            return;
          }
          if (error) {
            spdlog::error("monitor: waiting for the event ring failed: {}", error.message());
            return;
          }
          self->pump->drain();
          // Re-armed after draining: what arrives from now on wakes us
          // again (the kernel signals when the reader has caught up).
          self->arm();
        });
  }

  boost::asio::posix::stream_descriptor descriptor;
  EventPump* pump;
};

Result<std::unique_ptr<EventPump>> EventPump::start(boost::asio::io_context& io,
                                                    const PinLayout& pins, EventFn on_event,
                                                    DropsFn on_drops) {
  auto gate = MonitorGate::open(pins.map(ML_MONITOR_MAP_NAME));
  if (!gate) {
    return gate.error();
  }
  if (auto status = gate->set_mask(0); !status) {
    return status.error();
  }
  // The handler reaches the pump through this slot, filled once the pump exists.
  auto target = std::make_shared<EventPump*>(nullptr);
  auto ring = EventRing::open(pins.map(ML_EVENTS_MAP_NAME), [target](const ml_event& event) {
    EventPump* pump = *target;
    if (pump != nullptr && pump->on_event_) {
      pump->on_event_(event,
                      static_cast<std::int64_t>(event.timestamp_ns) + pump->clock_offset_ns_);
    }
  });
  if (!ring) {
    return ring.error();
  }
  // Records left from before (a monitor of an earlier daemon): nobody asked for them.
  if (auto stale = ring->consume(); stale && stale.value() > 0) {
    spdlog::debug("monitor: discarded {} event(s) left in the ring", stale.value());
  }
  std::unique_ptr<EventPump> pump(new EventPump(std::move(ring.value()), std::move(gate.value())));
  pump->on_event_ = std::move(on_event);
  pump->on_drops_ = std::move(on_drops);
  *target = pump.get();
  if (auto drops = pump->gate_.ring_drops()) {
    pump->drops_seen_ = drops.value();
  }
  const int fd = ::dup(pump->ring_.epoll_fd());
  if (fd < 0) {
    return make_error(errno, "cannot duplicate the event ring's epoll fd");
  }
  pump->watch_ = std::make_shared<Watch>(io, fd, pump.get());
  pump->watch_->arm();
  return pump;
}

EventPump::~EventPump() {
  if (watch_) {
    watch_->pump = nullptr;
    boost::system::error_code ignored;
    watch_->descriptor.cancel(ignored);
    watch_->descriptor.close(ignored);
  }
  // Nobody can be watching any more: the datapath stops emitting.
  if (auto status = gate_.set_mask(0); !status) {
    spdlog::warn("monitor: cannot switch the event gate off: {}", status.error().message());
  }
}

void EventPump::drain() {
  clock_offset_ns_ = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
  if (auto count = ring_.consume(); !count) {
    spdlog::warn("monitor: {}", count.error().message());
  }
  auto drops = gate_.ring_drops();
  if (drops && drops.value() > drops_seen_) {
    const std::uint64_t lost = drops.value() - drops_seen_;
    drops_seen_ = drops.value();
    if (on_drops_) {
      on_drops_(lost);
    }
  }
}

}  // namespace meshlane
