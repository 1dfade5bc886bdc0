// Where meshlane pins its objects: maps by name in the bpffs directory, links below links/.
#pragma once

#include <string>
#include <string_view>

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

// Link pin names. A link pin is the attachment: removing it (and detaching) unhooks the program.
inline constexpr std::string_view kSockopsLinkName = "ml_sockops_cgroup";
inline constexpr std::string_view kSkMsgLinkName = "ml_sk_msg_sockhash";

}  // namespace meshlane
