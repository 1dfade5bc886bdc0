#include "observe/decisions.hpp"

#include <algorithm>
#include <charconv>

#include "meshlane/sock_key.h"

namespace meshlane::monitor {

namespace {

using control::address_bytes;
using control::is_unspecified;

// An event's end against a query's end: an unknown address (zero) or port (0) on either side
// matches anything.
bool end_matches(const __u32 ip6[4], std::uint16_t port, const Endpoint& wanted) {
  const bool address_ok = is_unspecified(ip6) || address_bytes(ip6) == wanted.address.bytes;
  const bool port_ok = port == 0 || wanted.port == 0 || port == wanted.port;
  return address_ok && port_ok;
}

bool src_matches(const __u32 ip6[4], std::uint16_t port, const std::optional<Endpoint>& wanted) {
  return !wanted || end_matches(ip6, port, *wanted);
}

// The same, where a loopback address of the source's own workload stands for its address.
bool src_matches_in(const Event& event, const __u32 ip6[4], std::uint16_t port,
                    const std::optional<Endpoint>& wanted, const std::string& src_workload) {
  if (src_matches(ip6, port, wanted)) {
    return true;
  }
  if (!wanted || src_workload.empty() || event.workload != src_workload ||
      ml_ip6_is_loopback(ip6) == 0) {
    return false;
  }
  return port == 0 || wanted->port == 0 || port == wanted->port;
}

// A destination must be known to match: zero only means "unknown" for the client's end.
bool dst_matches(const __u32 ip6[4], std::uint16_t port, const Endpoint& wanted) {
  return !is_unspecified(ip6) && port != 0 && end_matches(ip6, port, wanted);
}

bool is_connect_event(std::uint8_t type) {
  return type == ML_EVENT_INTERCEPTED || type == ML_EVENT_BYPASSED || type == ML_EVENT_DENIED;
}

bool is_skip(std::uint8_t type) {
  return type == ML_EVENT_SKIPPED || type == ML_EVENT_SKIPPED_BLOCKING ||
         type == ML_EVENT_SKIPPED_SHORT || type == ML_EVENT_MAP_FULL;
}

std::string intercepted_explanation(const std::string& reason) {
  if (reason == "outbound") {
    return "intercepted: an application's connect, sent to its workload's outbound sidecar (no "
           "port or CIDR rule of the workload excluded it)";
  }
  if (reason == "node_proxy") {
    return "intercepted: an application's connect, sent to its workload's node-level proxy";
  }
  if (reason == "inbound_local") {
    return "intercepted: a proxy's connect to a workload on this node, sent to that workload's "
           "inbound proxy";
  }
  if (reason == "inbound_tc") {
    return "intercepted: a connection from off the node, steered by tc to the pod's inbound "
           "proxy";
  }
  if (reason == "fast_path") {
    return "not redirected, on the fast path: an application's connect to an application of "
           "another fast-path workload on this node, the sidecars skipped";
  }
  return "intercepted";
}

std::string bypassed_explanation(const std::string& reason) {
  if (reason == "excluded_port") {
    return "not intercepted: the destination port is excluded by the workload's outbound port "
           "rules (exclude_outbound_ports, or not in include_outbound_ports)";
  }
  if (reason == "excluded_cidr") {
    return "not intercepted: the destination address is excluded by the workload's outbound "
           "CIDR rules (exclude_outbound_cidrs, or not in include_outbound_cidrs)";
  }
  if (reason == "proxy") {
    return "not intercepted: the proxy's own connect (its uid or gid), not to a workload of this "
           "node";
  }
  if (reason == "orig_dst_full") {
    return "not intercepted: the original-destination map was full, so the connection took the "
           "normal path to where it was going";
  }
  if (reason == "tc_flows_full") {
    return "not steered by tc: the steered-flow map (ml_tcflows_v3, maps.tc_flow_max_entries) "
           "was full, so the connection went to the app port directly";
  }
  if (reason == "tc_flow_collision") {
    return "not steered by tc: a connection from the same client address and port to another "
           "port of the pod held the flow key, so this one went to the app port directly";
  }
  return "not intercepted";
}

std::string skip_explanation(const std::string& reason) {
  if (reason == "port") {
    return "not spliced: a port of the connection is excluded by acceleration.exclude_ports (or "
           "not in acceleration.include_ports)";
  }
  if (reason == "workload") {
    return "not spliced: acceleration is off for the socket's workload or for one of the "
           "connection's ports (the workload's acceleration / exclude_acceleration_ports, or a "
           "policy's)";
  }
  if (reason == "peer") {
    return "not spliced: the other end is not a spliced socket of this node (off the node, "
           "outside the cgroup, not listening from the cgroup, or not spliced itself)";
  }
  if (reason == "blocking") {
    return "not spliced: the application may read the socket blocking "
           "(acceleration.splice_blocking_sockets = false)";
  }
  if (reason == "short") {
    return "not spliced: the server port's connections carry too few messages to repay a "
           "splice (acceleration.adaptive_splicing)";
  }
  if (reason == "steered") {
    return "not spliced: tc steered this connection into the pod's inbound proxy (from off "
           "the node or from a process that is not a workload's)";
  }
  if (reason == "acceleration_off") {
    return "not spliced: acceleration.enabled = false";
  }
  if (reason == "map_full") {
    return "not spliced: the sockhash refused the socket (full)";
  }
  return "not spliced";
}

nlohmann::json interception_answer(const ExplainQuery& query,
                                   const std::vector<const Event*>& connects,
                                   const std::optional<std::int64_t>& first_socket_ns,
                                   const ExplainContext& context) {
  // The connect that made this connection comes before its sockets' events; a connect from an
  // unbound socket names no client, so later connects to the same destination may match too.
  const Event* chosen = nullptr;
  for (const Event* event : connects) {
    if (first_socket_ns && event->unix_ns > *first_socket_ns) {
      continue;
    }
    chosen = event;
  }
  if (chosen == nullptr && !connects.empty() && !first_socket_ns) {
    chosen = connects.back();
  }
  if (chosen == nullptr) {
    if (is_loopback(query.dst.address)) {
      return {{"decision", "not_intercepted"},
              {"rule", "loopback"},
              {"explanation",
               "not intercepted: a connection to a loopback address stays inside its pod"},
              {"event", nullptr}};
    }
    if (context.src_workload && context.src_workload->empty()) {
      return {{"decision", "not_intercepted"},
              {"rule", "not_a_workload"},
              {"explanation",
               "not intercepted: the source address belongs to no meshlane workload (only a "
               "workload's connects are intercepted; one from off the node is steered by tc "
               "when its destination pod has an interface)"},
              {"event", nullptr}};
    }
    return {{"decision", "no_record"},
            {"rule", nullptr},
            {"explanation", "no interception decision recorded for this connection"},
            {"event", nullptr}};
  }
  nlohmann::json line = event_to_json(*chosen);
  const std::string reason = line.value("reason", std::string());
  nlohmann::json out = {{"event", line}};
  switch (chosen->raw.type) {
    case ML_EVENT_INTERCEPTED:
      out["decision"] = reason == "fast_path" ? "fast_path" : "intercepted";
      out["rule"] = reason;
      out["explanation"] = intercepted_explanation(reason);
      break;
    case ML_EVENT_BYPASSED:
      out["decision"] = "not_intercepted";
      out["rule"] = reason;
      out["explanation"] = bypassed_explanation(reason);
      break;
    default: {  // ML_EVENT_DENIED
      out["decision"] = "denied";
      const auto rule = line.value("rule", std::uint32_t{0});
      std::string text = "denied by L4 policy: ";
      if (rule != 0) {
        const auto name = line.value("rule_name", nlohmann::json());
        text += "rule " + std::to_string(rule) +
                (name.is_string() ? " (" + name.get<std::string>() + ")" : std::string());
        out["rule"] = name.is_string() ? name : nlohmann::json(rule);
      } else if (line.value("rule_unnamed", false)) {
        text +=
            "a rule of a policy compiled before rules had ids (it is named once this "
            "daemon recompiles the policy)";
        out["rule"] = "unnamed_rule";
      } else {
        text += "no rule matched, and the default denies it (" +
                line.value("default_deny", nlohmann::json::array()).dump() + ")";
        out["rule"] = "default_deny";
      }
      out["explanation"] = text;
      break;
    }
  }
  return out;
}

// Why a spliced socket's sends went back to the normal stack, by its fallback reason.
const char* fallback_cause(const std::string& reason) {
  if (reason == "reader_behind") {
    return "its reader had more than acceleration.max_unread_bytes of redirected bytes unread "
           "(back-pressure)";
  }
  if (reason == "reader_spinning") {
    return "its reader spins on its socket, so each redirected send waited for the reader's "
           "lock (acceleration.leave_spinning_readers)";
  }
  if (reason == "peer_left") {
    return "its peer's sends had left the splice (bytes came by TCP), so the connection left it "
           "in both directions";
  }
  return "a send found its peer not spliced";
}

nlohmann::json splicing_answer(const std::vector<const Event*>& sockets) {
  nlohmann::json events = nlohmann::json::array();
  const Event* skip = nullptr;
  const Event* fallback = nullptr;
  bool spliced = false;
  for (const Event* event : sockets) {
    events.push_back(event_to_json(*event));
    if (is_skip(event->raw.type) && skip == nullptr) {
      skip = event;  // the first: a server end's "peer" follows its client's own reason
    } else if (event->raw.type == ML_EVENT_FALLBACK && fallback == nullptr) {
      fallback = event;
    } else if (event->raw.type == ML_EVENT_SPLICED) {
      spliced = true;
    }
  }
  nlohmann::json out = {{"events", events}};
  if (skip != nullptr) {
    const std::string reason = skip->raw.type == ML_EVENT_MAP_FULL
                                   ? std::string("map_full")
                                   : event_to_json(*skip).value("reason", std::string());
    out["decision"] = "not_spliced";
    out["rule"] = reason;
    out["side"] = skip->raw.side == ML_SIDE_CLIENT ? "client" : "server";
    out["explanation"] =
        skip_explanation(reason) + " (decided at the " + out["side"].get<std::string>() + " end)";
  } else if (fallback != nullptr) {
    const std::string reason = fallback_reason_name(fallback->raw.reason);
    out["decision"] = "fell_back";
    out["rule"] = reason;
    out["explanation"] =
        std::string("spliced, then back to the normal stack: ") + fallback_cause(reason);
  } else if (spliced) {
    out["decision"] = "spliced";
    out["rule"] = nullptr;
    out["explanation"] = "spliced: both ends in the sockhash, sends go straight to the peer";
  } else {
    out["decision"] = "no_record";
    out["rule"] = nullptr;
    out["explanation"] = "no splicing decision recorded for this connection";
  }
  return out;
}

}  // namespace

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) {
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else if (const auto colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);  // one colon: IPv4 with a port (IPv6 needs brackets)
    port_text = text.substr(colon + 1);
    if (port_text.empty()) {
      return std::nullopt;
    }
  }
  auto address = parse_ip_address(host);
  if (!address) {
    return std::nullopt;
  }
  Endpoint endpoint{*address, 0};
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (error != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return std::nullopt;
    }
    endpoint.port = static_cast<std::uint16_t>(value);
  }
  return endpoint;
}

std::string to_string(const Endpoint& endpoint) {
  const std::string host = endpoint.address.is_ipv4
                               ? meshlane::to_string(endpoint.address)
                               : "[" + meshlane::to_string(endpoint.address) + "]";
  if (endpoint.port == 0) {
    return meshlane::to_string(endpoint.address);
  }
  return host + ":" + std::to_string(endpoint.port);
}

control::ControlResult<ExplainQuery> parse_explain_query(const nlohmann::json& params) {
  const control::Params checked(params);
  if (control::ControlStatus valid = checked.only({"src", "dst"}); !valid) {
    return valid.error();
  }
  std::optional<std::string> src;
  std::optional<std::string> dst;
  if (control::ControlStatus valid = checked.string("dst", true, dst); !valid) {
    return valid.error();
  }
  if (control::ControlStatus valid = checked.string("src", false, src); !valid) {
    return valid.error();
  }
  ExplainQuery query;
  auto parsed_dst = parse_endpoint(*dst);
  if (!parsed_dst || parsed_dst->port == 0) {
    return control::invalid_params("params.dst: \"" + *dst +
                                   "\" is not ADDR:PORT (IPv6 as [ADDR]:PORT, port 1..65535)");
  }
  query.dst = *parsed_dst;
  if (src) {
    auto parsed_src = parse_endpoint(*src);
    if (!parsed_src) {
      return control::invalid_params("params.src: \"" + *src +
                                     "\" is not ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT)");
    }
    query.src = *parsed_src;
  }
  return query;
}

bool concerns(const Event& event, const ExplainQuery& query, const std::string& src_workload) {
  const ml_event& raw = event.raw;
  const bool has_orig = raw.orig_dst_port != 0;
  if (is_connect_event(raw.type)) {
    const bool dst_ok = has_orig ? dst_matches(raw.orig_dst_ip6, raw.orig_dst_port, query.dst)
                                 : dst_matches(raw.dst_ip6, raw.dst_port, query.dst);
    // The rewritten destination, for a question about the tuple the socket really has.
    const bool new_dst_ok = has_orig && dst_matches(raw.dst_ip6, raw.dst_port, query.dst);
    return (dst_ok || new_dst_ok) &&
           src_matches_in(event, raw.src_ip6, raw.src_port, query.src, src_workload);
  }
  // A socket event: src -> dst is this socket's local -> remote end.
  const bool client_end =
      src_matches_in(event, raw.src_ip6, raw.src_port, query.src, src_workload) &&
      (dst_matches(raw.dst_ip6, raw.dst_port, query.dst) ||
       (has_orig && dst_matches(raw.orig_dst_ip6, raw.orig_dst_port, query.dst)));
  const bool server_end =
      src_matches_in(event, raw.dst_ip6, raw.dst_port, query.src, src_workload) &&
      (dst_matches(raw.src_ip6, raw.src_port, query.dst) ||
       (has_orig && dst_matches(raw.orig_dst_ip6, raw.orig_dst_port, query.dst)));
  return client_end || server_end;
}

void DecisionLog::record(const Event& event) {
  if (capacity_ == 0) {
    return;
  }
  if (events_.size() >= capacity_) {
    events_.pop_front();
  }
  events_.push_back(event);
  ++recorded_total_;
}

std::vector<Event> DecisionLog::matching(const ExplainQuery& query,
                                         const std::string& src_workload) const {
  std::vector<Event> found;
  for (const Event& event : events_) {
    if (concerns(event, query, src_workload)) {
      found.push_back(event);
    }
  }
  return found;
}

nlohmann::json explain(const ExplainQuery& query, const std::vector<Event>& records,
                       const ExplainContext& context) {
  std::vector<const Event*> connects;
  std::vector<const Event*> sockets;
  nlohmann::json all = nlohmann::json::array();
  std::optional<std::int64_t> first_socket_ns;
  for (const Event& event : records) {
    all.push_back(event_to_json(event));
    if (is_connect_event(event.raw.type)) {
      connects.push_back(&event);
    } else {
      sockets.push_back(&event);
      if (!first_socket_ns) {
        first_socket_ns = event.unix_ns;
      }
    }
  }
  nlohmann::json log = {{"capacity", context.log_capacity},
                        {"held", context.log_size},
                        {"recorded_total", context.recorded_total}};
  nlohmann::json out = {
      {"src", query.src ? nlohmann::json(to_string(*query.src)) : nlohmann::json(nullptr)},
      {"dst", to_string(query.dst)},
      {"interception", interception_answer(query, connects, first_socket_ns, context)},
      {"splicing", splicing_answer(sockets)},
      {"records", all},
      {"log", log},
  };
  if (context.log_capacity == 0) {
    out["note"] =
        "the decision log is off (daemon.decision_log = 0): nothing is recorded; set it, restart "
        "meshlaned, and ask again about a connection made since";
  } else if (records.empty()) {
    out["note"] = "no record: no decision about this connection is among the last " +
                  std::to_string(context.log_size) +
                  " recorded (made before the daemon started, older than the log, or not a "
                  "connection of the attached cgroup)";
  }
  return out;
}

std::string format_explain(const nlohmann::json& result) {
  auto text = [](const nlohmann::json& value) {
    return value.is_string() ? value.get<std::string>() : std::string("-");
  };
  std::string out = "connection " + text(result.value("src", nlohmann::json())) + " -> " +
                    text(result.value("dst", nlohmann::json())) + "\n";
  for (const char* part : {"interception", "splicing"}) {
    const nlohmann::json answer = result.value(part, nlohmann::json::object());
    std::string line =
        std::string("  ") + part + ": " + text(answer.value("decision", nlohmann::json()));
    if (auto rule = answer.value("rule", nlohmann::json()); !rule.is_null()) {
      line += " (rule: " + (rule.is_string() ? rule.get<std::string>() : rule.dump()) + ")";
    }
    out += line + "\n    " + text(answer.value("explanation", nlohmann::json())) + "\n";
  }
  const nlohmann::json records = result.value("records", nlohmann::json::array());
  if (!records.empty()) {
    out += "  records (oldest first):\n";
    for (const auto& record : records) {
      out += "    " + format_line(record) + "\n";
    }
  }
  if (auto note = result.value("note", nlohmann::json()); note.is_string()) {
    out += "  " + note.get<std::string>() + "\n";
  }
  return out;
}

}  // namespace meshlane::monitor
