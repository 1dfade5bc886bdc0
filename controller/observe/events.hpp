// Live datapath events for `meshlanectl monitor`: decoding the ring buffer's struct ml_event,
// naming and filtering events, their JSON and one-line text forms. Pure logic: the ring buffer
// is read by datapath/event_ring.hpp, the fan-out to clients is monitor_hub.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "control/protocol.hpp"
#include "meshlane/shared.h"
#include "observe/connections.hpp"

namespace meshlane::monitor {

// Bit (1 << type) for every real event type: the kernel gate's and a filter's format.
inline constexpr std::uint64_t type_bit(std::uint32_t type) { return std::uint64_t{1} << type; }
inline constexpr std::uint64_t kAllTypes =
    ((std::uint64_t{1} << ML_EVENT_MAX) - 1) & ~type_bit(ML_EVENT_NONE);

// "intercepted", "spliced", "denied", "map_full", "fallback", "skipped_blocking",
// "skipped_short", "skipped", "bypassed"; "unknown".
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
// enum ml_skip_reason: "port", "workload", "peer", "blocking", "short", "steered",
// "acceleration_off", "excluded_port", "excluded_cidr", "proxy", "orig_dst_full",
// "tc_flows_full", "tc_flow_collision"; nullptr for none or an unknown value.
const char* skip_reason_name(std::uint8_t reason);
// ML_FALLBACK_*: "peer_not_spliced", "reader_behind".
const char* fallback_reason_name(std::uint8_t reason);

// An event as the daemon hands it out: the kernel's record, its wall-clock time and the
// workloads it concerns (empty when none).
struct Event {
  ml_event raw{};
  std::int64_t unix_ns = 0;
  std::string workload;       // where it happened: the workload of its netns
  std::string peer_workload;  // the workload owning orig_dst, or dst when there is none
                              // (a loopback address: `workload`)
  std::string rule_name;      // DENIED: the policy rule its id names ("" when unknown)
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
control::ControlResult<Filter> parse_filter(const nlohmann::json& params);

// One stream line's object, e.g. {"type":"intercepted","time":"...","workload":"pod-a",...}.
nlohmann::json event_to_json(const Event& event);
// {"type":"dropped","count":N,"source":"client_queue"|"kernel_ring"}: N events are missing here.
nlohmann::json drop_notice(std::uint64_t count, std::string_view source);
// One line for people (meshlanectl monitor without -o json), from a stream line's object.
std::string format_line(const nlohmann::json& line);
// "2026-11-25T12:22:26.123456Z".
std::string time_text(std::int64_t unix_ns);

}  // namespace meshlane::monitor
