#include "observe/counters.hpp"

#include <algorithm>
#include <sstream>

namespace meshlane {

const char* counter_name(ml_counter counter) {
  switch (counter) {
    case ML_CTR_SOCKETS_ADDED: return "sockets_added";
    case ML_CTR_SOCKETS_ADD_FAILED: return "sockets_add_failed";
    case ML_CTR_SOCKETS_SKIPPED_PORT: return "sockets_skipped_by_port";
    case ML_CTR_MESSAGES_REDIRECTED: return "messages_redirected";
    case ML_CTR_BYTES_REDIRECTED: return "bytes_redirected";
    case ML_CTR_REDIRECT_FAILED: return "redirect_failed";
    case ML_CTR_INTERCEPT_OUTBOUND: return "intercepted_outbound";
    case ML_CTR_INTERCEPT_NODE_PROXY: return "intercepted_to_node_proxy";
    case ML_CTR_INTERCEPT_INBOUND: return "intercepted_inbound_local";
    case ML_CTR_INTERCEPT_INBOUND_TC: return "intercepted_inbound_tc";
    case ML_CTR_BYPASS_EXCLUDED: return "bypassed_excluded";
    case ML_CTR_BYPASS_PROXY: return "bypassed_proxy_own";
    case ML_CTR_ORIG_DST_ANSWERED: return "orig_dst_answered";
    case ML_CTR_ORIG_DST_UNKNOWN: return "orig_dst_unknown";
    case ML_CTR_SPLICED_APP_PROXY: return "spliced_app_to_proxy";
    case ML_CTR_SPLICED_PROXY_PROXY: return "spliced_proxy_to_proxy";
    case ML_CTR_SPLICED_PROXY_APP: return "spliced_proxy_to_app";
    case ML_CTR_SPLICED_OTHER: return "spliced_other";
    case ML_CTR_SOCKETS_SKIPPED_BLOCKING: return "sockets_skipped_blocking";
    case ML_CTR_DENIED_CONNECT: return "denied_connect";
    case ML_CTR_DENIED_INBOUND_TC: return "denied_inbound_tc";
    case ML_CTR_SOCKETS_SKIPPED_WORKLOAD: return "sockets_skipped_by_workload";
    case ML_CTR_INTERCEPT_SKIPPED_MAP_FULL: return "intercept_skipped_map_full";
    case ML_CTR_ORIG_DST_FILE_FAILED: return "orig_dst_file_failed";
    case ML_CTR_TC_FLOW_COLLISIONS: return "tc_flow_collisions";
    case ML_CTR_TC_FLOWS_FULL: return "tc_flows_full";
    case ML_CTR_REDIRECT_READER_BEHIND: return "redirect_reader_behind";
    case ML_CTR_SOCKETS_SKIPPED_PEER: return "sockets_skipped_peer";
    case ML_CTR_LISTENERS_SCANNED: return "listeners_scanned";
    case ML_CTR_FAST_PATH_CONNECTIONS: return "fast_path_connections";
    case ML_CTR_SPLICED_FAST_PATH: return "spliced_fast_path";
    case ML_CTR_FAST_PATH_BYTES: return "fast_path_bytes";
    case ML_CTR_LISTENERS_UNREGISTERED: return "listeners_unregistered";
    case ML_CTR_SOCKETS_SKIPPED_SHORT: return "sockets_skipped_short";
    case ML_CTR_DNS_CAPTURED_UDP: return "dns_captured_udp";
    case ML_CTR_DNS_CAPTURED_TCP: return "dns_captured_tcp";
    case ML_CTR_DNS_REPLIES_REWRITTEN: return "dns_replies_rewritten";
    case ML_CTR_DNS_SERVER_SWITCHED: return "dns_server_switched";
    case ML_CTR_REDIRECT_READER_SPINNING: return "redirect_reader_spinning";
    case ML_CTR_REDIRECT_PEER_LEFT: return "redirect_peer_left";
    case ML_CTR_STEERED_NO_PROXY: return "steered_no_proxy";
    case ML_CTR_SOCKETS_SAMPLED_SHORT: return "sockets_sampled_short";
    case ML_CTR_MAX: break;
  }
  return "unknown";
}

bool counted_per_workload(ml_counter counter) {
  // No default: a new counter must be decided here (-Wswitch).
  switch (counter) {
    case ML_CTR_SOCKETS_ADDED:
    case ML_CTR_SOCKETS_ADD_FAILED:
    case ML_CTR_SOCKETS_SKIPPED_PORT:
    case ML_CTR_INTERCEPT_OUTBOUND:
    case ML_CTR_INTERCEPT_NODE_PROXY:
    case ML_CTR_INTERCEPT_INBOUND:
    case ML_CTR_INTERCEPT_INBOUND_TC:
    case ML_CTR_BYPASS_EXCLUDED:
    case ML_CTR_BYPASS_PROXY:
    case ML_CTR_SPLICED_APP_PROXY:
    case ML_CTR_SPLICED_PROXY_PROXY:
    case ML_CTR_SPLICED_PROXY_APP:
    case ML_CTR_SPLICED_OTHER:
    case ML_CTR_SOCKETS_SKIPPED_BLOCKING:
    case ML_CTR_DENIED_CONNECT:
    case ML_CTR_DENIED_INBOUND_TC:
    case ML_CTR_SOCKETS_SKIPPED_WORKLOAD:
    case ML_CTR_INTERCEPT_SKIPPED_MAP_FULL:
    case ML_CTR_ORIG_DST_FILE_FAILED:
    case ML_CTR_TC_FLOW_COLLISIONS:
    case ML_CTR_TC_FLOWS_FULL:
    case ML_CTR_SOCKETS_SKIPPED_PEER:
    case ML_CTR_FAST_PATH_CONNECTIONS:
    case ML_CTR_SPLICED_FAST_PATH:
    case ML_CTR_FAST_PATH_BYTES:
    case ML_CTR_SOCKETS_SKIPPED_SHORT:
    case ML_CTR_SOCKETS_SAMPLED_SHORT:
    case ML_CTR_DNS_CAPTURED_UDP:
    case ML_CTR_DNS_CAPTURED_TCP:
    case ML_CTR_DNS_REPLIES_REWRITTEN:
    case ML_CTR_DNS_SERVER_SWITCHED:
    case ML_CTR_STEERED_NO_PROXY: return true;
    case ML_CTR_MESSAGES_REDIRECTED:
    case ML_CTR_BYTES_REDIRECTED:
    case ML_CTR_REDIRECT_FAILED:
    case ML_CTR_REDIRECT_READER_BEHIND:
    case ML_CTR_REDIRECT_READER_SPINNING:
    case ML_CTR_REDIRECT_PEER_LEFT:
    case ML_CTR_ORIG_DST_ANSWERED:
    case ML_CTR_ORIG_DST_UNKNOWN:
    case ML_CTR_LISTENERS_SCANNED:
    case ML_CTR_LISTENERS_UNREGISTERED:
    case ML_CTR_MAX: break;
  }
  return false;
}

nlohmann::json counters_to_json(const Counters& counters) {
  nlohmann::json object = nlohmann::json::object();
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    auto counter = static_cast<ml_counter>(index);
    object[counter_name(counter)] = counters[counter];
  }
  return object;
}

nlohmann::json workload_counters_to_json(const Counters& counters) {
  nlohmann::json object = nlohmann::json::object();
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    auto counter = static_cast<ml_counter>(index);
    if (counted_per_workload(counter)) {
      object[counter_name(counter)] = counters[counter];
    }
  }
  return object;
}

std::string counters_to_table(const Counters& counters) {
  std::ostringstream out;
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    auto counter = static_cast<ml_counter>(index);
    std::string name = counter_name(counter);
    out << name << std::string(name.size() < 28 ? 28 - name.size() : 1, ' ') << counters[counter]
        << '\n';
  }
  return out.str();
}

}  // namespace meshlane
