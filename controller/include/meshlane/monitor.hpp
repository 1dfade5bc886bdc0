// Live datapath events for `meshlanectl monitor`: decoding the ring buffer's struct ml_event,
// naming and filtering events, their JSON and one-line text forms, and the fan-out to the
// subscribed clients (each with a bounded queue, so a slow client loses events, never stalls
// the daemon). Pure logic: the ring buffer itself is read by event_ring.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "meshlane/config.hpp"
#include "meshlane/control_conns.hpp"
#include "meshlane/control_protocol.hpp"
#include "meshlane/control_server.hpp"
#include "meshlane/shared.h"

namespace meshlane::monitor {

// Events a client may still have queued before newer ones are dropped (and counted).
inline constexpr std::size_t kDefaultQueueLimit = 1024;

// Bit (1 << type) for every real event type: the kernel gate's and a filter's format.
inline constexpr std::uint64_t type_bit(std::uint32_t type) { return std::uint64_t{1} << type; }
inline constexpr std::uint64_t kAllTypes =
    ((std::uint64_t{1} << ML_EVENT_MAX) - 1) & ~type_bit(ML_EVENT_NONE);

// "intercepted", "spliced", "denied", "map_full", "fallback", "skipped_blocking",
// "skipped_short"; "unknown".
const char* type_name(std::uint32_t type);
std::optional<std::uint32_t> type_from_name(std::string_view name);
// Every type name, in enum order.
std::vector<std::string> type_names();
// "outbound", "node_proxy", "inbound_local", "inbound_tc", "policy", "fast_path" (an app's
// connect left alone: app to app on this node, the sidecars skipped); nullptr for none.
const char* reason_name(std::uint8_t reason);
// "other", "app_to_proxy", "proxy_to_proxy", "proxy_to_app", "fastpath" (enum ml_hop; an
// unknown value is "other").
const char* hop_name(std::uint8_t hop);

// An event as the daemon hands it out: the kernel's record, its wall-clock time and the
// workloads it concerns (empty when none).
struct Event {
  ml_event raw{};
  std::int64_t unix_ns = 0;
  std::string workload;       // where it happened: the workload of its netns
  std::string peer_workload;  // the workload owning orig_dst, or dst when there is none
                              // (a loopback address: `workload`)
};

// Names the workloads of a kernel record: by netns cookie (every record carries one), else by
// its src address; the peer by its original destination, else by dst.
Event make_event(const ml_event& raw, std::int64_t unix_ns, const control::WorkloadIndex& index);

// What a client asked to see; every given criterion must match.
struct Filter {
  std::uint64_t types = kAllTypes;
  std::optional<std::string> workload;  // workload or peer_workload
  std::optional<std::uint16_t> port;    // src, dst or original destination port
  std::optional<Cidr> address;          // src, dst or original destination address

  [[nodiscard]] bool matches(const Event& event) const;
  // The filter as the monitor method's acknowledgement echoes it.
  [[nodiscard]] nlohmann::json to_json() const;
};

// The monitor method's params: "types" (array of type names), "workload" (string), "port"
// (1..65535), "ip" (address or CIDR). Unknown members and bad values are invalid_params.
std::variant<Filter, control::ControlError> parse_filter(const nlohmann::json& params);

// One stream line's object, e.g. {"type":"intercepted","time":"...","workload":"pod-a",...}.
nlohmann::json event_to_json(const Event& event);
// {"type":"dropped","count":N,"source":"client_queue"|"kernel_ring"}: N events are missing here.
nlohmann::json drop_notice(std::uint64_t count, std::string_view source);
// One line for people (meshlanectl monitor without -o json), from a stream line's object.
std::string format_line(const nlohmann::json& line);
// "2026-11-25T12:22:26.123456Z".
std::string time_text(std::int64_t unix_ns);

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
