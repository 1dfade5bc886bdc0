// Where meshlane pins its objects: maps by name in the bpffs directory, links below links/.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "meshlane/shared.h"

namespace meshlane {

struct PinLayout {
  std::string dir;

  [[nodiscard]] std::string map(std::string_view name) const {
    return dir + "/" + std::string(name);
  }
  [[nodiscard]] std::string links_dir() const { return dir + "/links"; }
  [[nodiscard]] std::string link(std::string_view name) const {
    return links_dir() + "/" + std::string(name);
  }
};

// Every map meshlane pins (bpf/include/meshlane/maps.bpf.h, counters.bpf.h, events.bpf.h), for
// --cleanup.
inline constexpr std::array<const char*, 21> kPinnedMapNames = {
    ML_SOCKHASH_MAP_NAME,        ML_SOCK_STATE_MAP_NAME,     ML_COUNTERS_MAP_NAME,
    ML_PORTS_MAP_NAME,           ML_ORIG_DST_MAP_NAME,       ML_WORKLOADS_MAP_NAME,
    ML_POD_IPS_MAP_NAME,         ML_PORT_RULES_MAP_NAME,     ML_CIDR_RULES_MAP_NAME,
    ML_TC_FLOWS_MAP_NAME,        ML_LISTENER_SOCKS_MAP_NAME, ML_POLICY_MAP_NAME,
    ML_WL_COUNTERS_MAP_NAME,     ML_EVENTS_MAP_NAME,         ML_MONITOR_MAP_NAME,
    ML_PAIRING_MAP_NAME,         ML_LISTEN_MODE_MAP_NAME,    ML_LISTENERS_MAP_NAME,
    ML_SERVER_LISTENER_MAP_NAME, ML_PORT_USE_MAP_NAME,       ML_SOCK_USE_MAP_NAME};

// Link pin names. A link pin is the attachment: removing it (and detaching) unhooks the program.
inline constexpr std::string_view kSockopsLinkName = "ml_sockops_cgroup";
inline constexpr std::string_view kSkMsgLinkName = "ml_sk_msg_sockhash";
inline constexpr std::string_view kConnect4LinkName = "ml_connect4_cgroup";
inline constexpr std::string_view kConnect6LinkName = "ml_connect6_cgroup";
inline constexpr std::string_view kGetsockoptLinkName = "ml_getsockopt_cgroup";
inline constexpr std::array<std::string_view, 5> kLinkNames = {
    kSockopsLinkName, kSkMsgLinkName, kConnect4LinkName, kConnect6LinkName, kGetsockoptLinkName};

}  // namespace meshlane
