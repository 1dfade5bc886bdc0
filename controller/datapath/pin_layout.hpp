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

// No hand-kept list of the pinned map names: the objects define them (see BuildMapNames in
// object_maps.hpp, filled from the objects the datapath opens, and which opens without loading
// those a degraded run leaves out). --cleanup needs no list either: it removes every ml_* pin
// under the directory, older layout versions included.

// Link pin names. A link pin is the attachment: removing it (and detaching) unhooks the program.
inline constexpr std::string_view kSockopsLinkName = "ml_sockops_cgroup";
inline constexpr std::string_view kSkMsgLinkName = "ml_sk_msg_sockhash";
inline constexpr std::string_view kConnect4LinkName = "ml_connect4_cgroup";
inline constexpr std::string_view kConnect6LinkName = "ml_connect6_cgroup";
inline constexpr std::string_view kGetsockoptLinkName = "ml_getsockopt_cgroup";
// DNS capture: unconnected UDP sends to port 53, and the replies' source shown to the app.
inline constexpr std::string_view kSendmsg4LinkName = "ml_sendmsg4_cgroup";
inline constexpr std::string_view kSendmsg6LinkName = "ml_sendmsg6_cgroup";
inline constexpr std::string_view kRecvmsg4LinkName = "ml_recvmsg4_cgroup";
inline constexpr std::string_view kRecvmsg6LinkName = "ml_recvmsg6_cgroup";
inline constexpr std::array<std::string_view, 9> kLinkNames = {
    kSockopsLinkName,  kSkMsgLinkName,    kConnect4LinkName, kConnect6LinkName, kGetsockoptLinkName,
    kSendmsg4LinkName, kSendmsg6LinkName, kRecvmsg4LinkName, kRecvmsg6LinkName};

}  // namespace meshlane
