// `meshlanectl explain`: the datapath's recent decisions (the monitor events the daemon keeps
// when daemon.decision_log > 0) and the answer they give for one connection: which rule decided
// its interception and its splicing. Pure logic: the daemon feeds the log from the event ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/addresses.hpp"
#include "control/protocol.hpp"
#include "observe/events.hpp"

namespace meshlane::monitor {

// One end of the connection asked about: an address and a port (0: any port).
struct Endpoint {
  IpAddress address;
  std::uint16_t port = 0;

  bool operator==(const Endpoint&) const = default;
};

// "198.18.0.1:8080", "[fd00::1]:8080", or a bare address (any port). nullopt when malformed.
std::optional<Endpoint> parse_endpoint(std::string_view text);
// "198.18.0.1:8080", "[fd00::1]:8080", "198.18.0.1" (port 0).
std::string to_string(const Endpoint& endpoint);

// The explain method's params: "dst" (required) and "src" (optional), each an Endpoint's text.
struct ExplainQuery {
  std::optional<Endpoint> src;
  Endpoint dst;
};
control::ControlResult<ExplainQuery> parse_explain_query(const nlohmann::json& params);

// Whether an event is about the connection asked for. Socket events (spliced, skipped*,
// map_full, fallback) match by their tuple in either direction, the destination also by their
// original destination (an intercepted connection's ends know where the client wanted to go);
// connect events (intercepted, bypassed, denied) by the destination asked for and the client's
// address and port when the event knows them (a connect from an unbound socket names neither).
// `src_workload`: the workload owning the query's source address ("" for none): a socket of
// that workload bound to a loopback address stands for it (an app's socket to its sidecar on
// 127.0.0.1 has a loopback source, not the pod's address).
bool concerns(const Event& event, const ExplainQuery& query, const std::string& src_workload = {});

// The last `capacity` events, oldest first.
class DecisionLog {
 public:
  explicit DecisionLog(std::size_t capacity) : capacity_(capacity) {}

  void record(const Event& event);
  [[nodiscard]] std::vector<Event> matching(const ExplainQuery& query,
                                            const std::string& src_workload = {}) const;

  [[nodiscard]] std::size_t capacity() const { return capacity_; }
  [[nodiscard]] std::size_t size() const { return events_.size(); }
  [[nodiscard]] std::uint64_t recorded_total() const { return recorded_total_; }

 private:
  std::size_t capacity_;
  std::deque<Event> events_;
  std::uint64_t recorded_total_ = 0;
};

// What the daemon knows besides the records.
struct ExplainContext {
  std::size_t log_capacity = 0;  // 0: the log is off
  std::size_t log_size = 0;
  std::uint64_t recorded_total = 0;
  // The workload owning the query's source address, "" when none; nullopt when no source was
  // given.
  std::optional<std::string> src_workload;
};

// The explain method's result: {"src", "dst", "interception": {"decision", "rule",
// "explanation", "event"}, "splicing": {"decision", "rule", "explanation", "events"},
// "records": [every matching event], "log": {...}}. decision "no_record" when nothing
// recorded decided it.
nlohmann::json explain(const ExplainQuery& query, const std::vector<Event>& records,
                       const ExplainContext& context);

// The readable form of explain's result (meshlanectl explain without -o json).
std::string format_explain(const nlohmann::json& result);

}  // namespace meshlane::monitor
