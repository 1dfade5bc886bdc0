#include "observe/events.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <utility>

#include "meshlane/sock_key.h"

namespace meshlane::monitor {

namespace {

constexpr std::array<const char*, ML_EVENT_MAX> kTypeNames = {
    "none",     "intercepted",      "spliced",       "denied",  "map_full",
    "fallback", "skipped_blocking", "skipped_short", "skipped", "bypassed"};

constexpr std::array<const char*, ML_SKIP_MAX> kSkipReasonNames = {
    nullptr,         "port",
    "workload",      "peer",
    "blocking",      "short",
    "steered",       "acceleration_off",
    "excluded_port", "excluded_cidr",
    "proxy",         "orig_dst_full",
    "tc_flows_full", "tc_flow_collision"};

using control::address_bytes;
using control::is_unspecified;

std::string owner_of(const control::WorkloadIndex& index, const __u32 ip6[4]) {
  auto found = index.by_address.find(address_bytes(ip6));
  return found == index.by_address.end() ? std::string() : found->second;
}

bool in_prefix(const Cidr& cidr, const __u32 ip6[4]) {
  const auto bytes = address_bytes(ip6);
  for (unsigned bit = 0; bit < cidr.prefix_length; ++bit) {
    const unsigned mask = 0x80u >> (bit % 8);
    if ((bytes[bit / 8] & mask) != (cidr.address[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

bool has_orig_dst(const ml_event& raw) { return raw.orig_dst_port != 0; }

// ADDR:PORT, or null for an end that is not known yet (a connect from an unbound socket).
nlohmann::json endpoint(const __u32 ip6[4], std::uint16_t port) {
  if (is_unspecified(ip6) && port == 0) {
    return nullptr;
  }
  return control::endpoint_text(ip6, port);
}

nlohmann::json name_or_null(const std::string& name) {
  return name.empty() ? nlohmann::json(nullptr) : nlohmann::json(name);
}

// Columns of the readable form: the longest type ("skipped_blocking") and a typical pod name,
// each followed by at least one space.
constexpr std::size_t kTypeColumn = 17;
constexpr std::size_t kWorkloadColumn = 12;

std::string padded(const std::string& text, std::size_t width) {
  return text + std::string(text.size() < width ? width - text.size() : 1, ' ');
}

std::string text_or_dash(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : std::string("-");
}

}  // namespace

const char* type_name(std::uint32_t type) {
  return type < kTypeNames.size() ? kTypeNames.at(type) : "unknown";
}

std::optional<std::uint32_t> type_from_name(std::string_view name) {
  for (std::uint32_t type = ML_EVENT_NONE + 1; type < ML_EVENT_MAX; ++type) {
    if (name == kTypeNames.at(type)) {
      return type;
    }
  }
  return std::nullopt;
}

std::vector<std::string> type_names() { return {kTypeNames.begin() + 1, kTypeNames.end()}; }

const char* reason_name(std::uint8_t reason) {
  switch (reason) {
    case ML_REASON_OUTBOUND: return "outbound";
    case ML_REASON_NODE_PROXY: return "node_proxy";
    case ML_REASON_INBOUND_LOCAL: return "inbound_local";
    case ML_REASON_INBOUND_TC: return "inbound_tc";
    case ML_REASON_POLICY: return "policy";
    case ML_REASON_FAST_PATH: return "fast_path";
    case ML_REASON_DNS: return "dns";
    default: return nullptr;
  }
}

const char* skip_reason_name(std::uint8_t reason) {
  return reason < kSkipReasonNames.size() ? kSkipReasonNames.at(reason) : nullptr;
}

const char* fallback_reason_name(std::uint8_t reason) {
  switch (reason) {
    case ML_FALLBACK_READER_BEHIND: return "reader_behind";
    case ML_FALLBACK_READER_SPINNING: return "reader_spinning";
    case ML_FALLBACK_PEER_LEFT: return "peer_left";
    default: return "peer_not_spliced";
  }
}

const char* hop_name(std::uint8_t hop) {
  if (hop >= ML_HOP_MAX) {
    return "other";  // a kernel byte this build does not know
  }
  // Every enumerator and no default: -Wswitch points here when shared.h gains a hop kind.
  switch (static_cast<ml_hop>(hop)) {
    case ML_HOP_OTHER:
    case ML_HOP_MAX: break;
    case ML_HOP_APP_TO_PROXY: return "app_to_proxy";
    case ML_HOP_PROXY_TO_PROXY: return "proxy_to_proxy";
    case ML_HOP_PROXY_TO_APP: return "proxy_to_app";
    case ML_HOP_FAST_PATH: return "fastpath";
  }
  return "other";
}

Event make_event(const ml_event& raw, std::int64_t unix_ns, const control::WorkloadIndex& index) {
  Event event;
  event.raw = raw;
  event.unix_ns = unix_ns;
  if (auto found = index.by_netns_cookie.find(raw.netns_cookie);
      raw.netns_cookie != 0 && found != index.by_netns_cookie.end()) {
    event.workload = found->second;
  } else {
    event.workload = owner_of(index, raw.src_ip6);
  }
  // The peer is whom the client wanted to reach: the original destination when there is one
  // (an app's connect rewritten to its sidecar is about the pod it asked for), else dst. A
  // loopback address is in the namespace the event happened in.
  const __u32* peer = raw.orig_dst_port != 0 ? raw.orig_dst_ip6 : raw.dst_ip6;
  event.peer_workload = ml_ip6_is_loopback(peer) != 0 ? event.workload : owner_of(index, peer);
  return event;
}

bool Filter::matches(const Event& event) const {
  const ml_event& raw = event.raw;
  if ((types & type_bit(raw.type)) == 0) {
    return false;
  }
  if (workload && *workload != event.workload && *workload != event.peer_workload) {
    return false;
  }
  if (port && *port != raw.src_port && *port != raw.dst_port &&
      !(has_orig_dst(raw) && *port == raw.orig_dst_port)) {
    return false;
  }
  if (address && !in_prefix(*address, raw.src_ip6) && !in_prefix(*address, raw.dst_ip6) &&
      !(has_orig_dst(raw) && in_prefix(*address, raw.orig_dst_ip6))) {
    return false;
  }
  return true;
}

nlohmann::json Filter::to_json() const {
  nlohmann::json selected = nlohmann::json::array();
  for (std::uint32_t type = ML_EVENT_NONE + 1; type < ML_EVENT_MAX; ++type) {
    if ((types & type_bit(type)) != 0) {
      selected.push_back(type_name(type));
    }
  }
  nlohmann::json out = {{"types", selected}};
  out["workload"] = workload ? nlohmann::json(*workload) : nlohmann::json(nullptr);
  out["port"] = port ? nlohmann::json(*port) : nlohmann::json(nullptr);
  if (address) {
    constexpr unsigned kFullLength = 128;
    constexpr unsigned kMappedPrefixLength = 96;
    const IpAddress host{address->address, address->is_ipv4};
    std::string text = to_string(host);
    if (address->prefix_length != kFullLength) {
      text += "/" + std::to_string(address->is_ipv4 ? address->prefix_length - kMappedPrefixLength
                                                    : address->prefix_length);
    }
    out["ip"] = text;
  } else {
    out["ip"] = nullptr;
  }
  return out;
}

control::ControlResult<Filter> parse_filter(const nlohmann::json& params) {
  using control::invalid_params;
  const control::Params checked(params);
  if (control::ControlStatus valid = checked.only({"types", "workload", "port", "ip"}); !valid) {
    return valid.error();
  }
  Filter filter;
  if (auto types = params.find("types"); types != params.end()) {
    if (!types->is_array() || types->empty()) {
      return invalid_params("params.types: must be a non-empty array of event types (" +
                            nlohmann::json(type_names()).dump() + ")");
    }
    filter.types = 0;
    for (std::size_t i = 0; i < types->size(); ++i) {
      const nlohmann::json& item = types->at(i);
      std::optional<std::uint32_t> type;
      if (item.is_string()) {
        type = type_from_name(item.get<std::string>());
      }
      if (!type) {
        return invalid_params("params.types[" + std::to_string(i) + "]: " + item.dump() +
                              " is not an event type (" + nlohmann::json(type_names()).dump() +
                              ")");
      }
      filter.types |= type_bit(*type);
    }
  }
  std::optional<std::string> workload;
  if (control::ControlStatus valid = checked.string("workload", false, workload); !valid) {
    return valid.error();
  }
  filter.workload = workload;
  std::optional<std::int64_t> port;
  if (control::ControlStatus valid = checked.integer("port", 1, 65535, port); !valid) {
    return valid.error();
  }
  if (port) {
    filter.port = static_cast<std::uint16_t>(*port);
  }
  std::optional<std::string> ip;
  if (control::ControlStatus valid = checked.string("ip", false, ip); !valid) {
    return valid.error();
  }
  if (ip) {
    filter.address = parse_cidr(*ip);
    if (!filter.address) {
      return invalid_params("params.ip: \"" + *ip +
                            "\" is not an IPv4 or IPv6 address or prefix (host bits zero)");
    }
  }
  return filter;
}

std::string time_text(std::int64_t unix_ns) {
  const auto seconds = static_cast<std::time_t>(unix_ns / 1000000000);
  const auto micros = static_cast<long>((unix_ns % 1000000000) / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char date[32] = {};
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  char text[48] = {};
  std::snprintf(text, sizeof text, "%s.%06ldZ", date, micros);
  return text;
}

nlohmann::json event_to_json(const Event& event) {
  const ml_event& raw = event.raw;
  nlohmann::json out = {
      {"type", type_name(raw.type)},
      {"time", time_text(event.unix_ns)},
      {"netns", raw.netns_cookie},
      {"workload", name_or_null(event.workload)},
      {"peer_workload", name_or_null(event.peer_workload)},
      {"src", endpoint(raw.src_ip6, raw.src_port)},
      {"dst", endpoint(raw.dst_ip6, raw.dst_port)},
  };
  switch (raw.type) {
    case ML_EVENT_INTERCEPTED:
      out["orig_dst"] = endpoint(raw.orig_dst_ip6, raw.orig_dst_port);
      out["reason"] = reason_name(raw.reason) ? reason_name(raw.reason) : "unknown";
      if (raw.reason != ML_REASON_INBOUND_TC) {
        out["hop"] = hop_name(raw.hop);
      }
      break;
    case ML_EVENT_DENIED: {
      out["orig_dst"] = endpoint(raw.orig_dst_ip6, raw.orig_dst_port);
      out["reason"] = "policy";
      const std::uint32_t rule = raw.detail & ML_DENY_RULE_MASK;
      out["rule"] = rule;
      if (rule != 0) {
        out["rule_name"] = name_or_null(event.rule_name);
      } else if ((raw.detail & ML_DENY_RULE_UNNAMED) != 0) {
        out["rule_name"] = nullptr;  // a rule entry without an id: see ML_DENY_RULE_UNNAMED
        out["rule_unnamed"] = true;
      } else {
        // No rule entry matched: the default denied it, because of who has allow rules.
        nlohmann::json why = nlohmann::json::array();
        if ((raw.detail & ML_DENY_DEFAULT_EGRESS) != 0) {
          why.push_back("source_egress_isolated");
        }
        if ((raw.detail & ML_DENY_DEFAULT_INGRESS) != 0) {
          why.push_back("destination_ingress_isolated");
        }
        out["default_deny"] = why;
      }
      break;
    }
    case ML_EVENT_BYPASSED: {
      const char* reason = skip_reason_name(raw.reason);
      out["reason"] = reason != nullptr ? reason : "unknown";
      break;
    }
    case ML_EVENT_SPLICED:
    case ML_EVENT_MAP_FULL:
    case ML_EVENT_SKIPPED_BLOCKING:
    case ML_EVENT_SKIPPED_SHORT:
    case ML_EVENT_SKIPPED:
      if (raw.type == ML_EVENT_SKIPPED_BLOCKING) {
        out["reason"] = "blocking";  // programs before the reason byte left it 0
      } else if (raw.type == ML_EVENT_SKIPPED_SHORT) {
        out["reason"] = "short";
      } else if (raw.type == ML_EVENT_SKIPPED) {
        const char* reason = skip_reason_name(raw.reason);
        out["reason"] = reason != nullptr ? reason : "unknown";
      }
      if (has_orig_dst(raw)) {
        out["orig_dst"] = endpoint(raw.orig_dst_ip6, raw.orig_dst_port);
      }
      out["side"] = raw.side == ML_SIDE_CLIENT ? "client" : "server";
      // Only the client end knows its hop kind (its connect was classified).
      out["hop"] =
          raw.side == ML_SIDE_CLIENT ? nlohmann::json(hop_name(raw.hop)) : nlohmann::json(nullptr);
      if (raw.type == ML_EVENT_MAP_FULL) {
        out["errno"] = -raw.error;
        out["error"] = std::strerror(-raw.error);
      }
      break;
    case ML_EVENT_FALLBACK:
      out["reason"] = fallback_reason_name(raw.reason);
      if (raw.reason == ML_FALLBACK_READER_BEHIND) {
        out["unread_bytes"] = raw.detail;
      } else {
        out["bytes"] = raw.detail;
      }
      break;
    default: break;
  }
  return out;
}

nlohmann::json drop_notice(std::uint64_t count, std::string_view source) {
  return {{"type", "dropped"}, {"count", count}, {"source", source}};
}

std::string format_line(const nlohmann::json& line) {
  const std::string type = text_or_dash(line.value("type", nlohmann::json()));
  if (type == "dropped") {
    const bool kernel = line.value("source", std::string()) == "kernel_ring";
    return "!! " + line.value("count", nlohmann::json(0)).dump() + " event(s) dropped " +
           (kernel ? "in the kernel (ring buffer full)" : "(this client read too slowly)");
  }
  std::string time = text_or_dash(line.value("time", nlohmann::json()));
  if (auto t = time.find('T'); t != std::string::npos && time.size() > t + 1) {
    time = time.substr(t + 1);  // the time of day is what a person watching needs
    if (!time.empty() && time.back() == 'Z') {
      time.pop_back();
    }
  }
  std::string workload = text_or_dash(line.value("workload", nlohmann::json()));
  std::string out = time + "  " + padded(type, kTypeColumn) + padded(workload, kWorkloadColumn);
  const std::string src = text_or_dash(line.value("src", nlohmann::json()));
  const std::string dst = text_or_dash(line.value("dst", nlohmann::json()));
  out += src + " -> " + dst;
  if (auto orig = line.value("orig_dst", nlohmann::json()); orig.is_string()) {
    out += " (orig " + orig.get<std::string>() + ")";
  }
  std::vector<std::string> details;
  for (const char* key : {"reason", "side", "hop"}) {
    if (auto value = line.value(key, nlohmann::json()); value.is_string()) {
      details.push_back(value.get<std::string>());
    }
  }
  if (auto rule = line.value("rule", nlohmann::json()); !rule.is_null()) {
    std::string text = "rule " + rule.dump();
    if (auto name = line.value("rule_name", nlohmann::json()); name.is_string()) {
      text += " (" + name.get<std::string>() + ")";
    }
    if (line.value("rule_unnamed", false)) {
      text += " (a rule without an id: compiled by an earlier daemon)";
    }
    if (auto why = line.value("default_deny", nlohmann::json()); why.is_array()) {
      std::string reasons;
      for (const auto& item : why) {
        if (item.is_string()) {
          reasons += (reasons.empty() ? "" : " and ") + item.get<std::string>();
        }
      }
      text += " (no rule matched: default deny" + (reasons.empty() ? "" : ", " + reasons) + ")";
    }
    details.push_back(text);
  }
  if (auto error = line.value("error", nlohmann::json()); error.is_string()) {
    details.push_back(error.get<std::string>());
  }
  if (auto bytes = line.value("bytes", nlohmann::json()); !bytes.is_null()) {
    details.push_back("send of " + bytes.dump() + " B");
  }
  if (auto unread = line.value("unread_bytes", nlohmann::json()); !unread.is_null()) {
    details.push_back(unread.dump() + " B unread");
  }
  if (!details.empty()) {
    out += " ";
    for (std::size_t i = 0; i < details.size(); ++i) {
      out += (i == 0 ? "[" : ", ") + details[i];
    }
    out += "]";
  }
  return out;
}

}  // namespace meshlane::monitor
