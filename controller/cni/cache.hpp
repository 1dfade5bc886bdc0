// The runtime's record of a pod's network attachment: libcni writes one file per successful ADD
// under <cache dir>/results/<network>-<container id>-<ifname> and removes it after DEL. It holds
// everything meshlane-cni was given (netns, CNI_ARGS, the capability args with the pod's
// annotations, the configuration that ran) and the chain's result, so that meshlaned can make
// the plugin's decision again for ADDs it missed while it was down (docs/kubernetes.md).
// Pure: no I/O.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cni/pod.hpp"
#include "cni/spec.hpp"
#include "common/error.hpp"

namespace meshlane::cni {

// libcni's "kind" of the format read here (libcni >= 0.8; "netns" since libcni 1.1).
inline constexpr std::string_view kCacheKind = "cniCacheV1";
// The conflist entry type of meshlane-cni.
inline constexpr std::string_view kPluginType = "meshlane-cni";

struct CachedAttachment {
  std::string container_id;
  std::string network_name;
  std::string ifname;
  std::string netns;                            // "" when the runtime's libcni predates 1.1
  std::map<std::string, std::string> cni_args;  // K8S_POD_NAMESPACE, K8S_POD_NAME, ...
  nlohmann::json capability_args = nlohmann::json::object();
  nlohmann::json result = nlohmann::json::object();  // the whole chain's result
  // The network configuration (a conflist, or one plugin's config) that ran; nullopt when the
  // entry holds none that decodes.
  std::optional<nlohmann::json> config;
};

// Parses one cache file. Error naming the key when it is not a cniCacheV1 object with a
// container id, network name and interface name (legacy result-only files are errors too:
// they hold no netns or arguments to decide with).
Result<CachedAttachment> parse_cache_entry(std::string_view text);

// Standard base64 (with or without padding), as Go encodes a []byte in JSON.
Result<std::string> decode_base64(std::string_view text);

// meshlane-cni's configuration as the runtime would have passed it: its entry from a conflist's
// "plugins" (or a single-plugin config of our type), with the list's cniVersion and name. nullopt
// when the configuration holds no entry of ours.
std::optional<nlohmann::json> plugin_config(const nlohmann::json& network_config);

// The decision meshlane-cni makes for this attachment's ADD given its configuration: the
// environment, runtimeConfig (the capabilities the entry declares) and prevResult are rebuilt
// from the cache entry. Error when the entry's settings, result or annotations cannot be used.
Result<Decision, CniError> decide_cached(const CachedAttachment& attachment,
                                         const nlohmann::json& plugin_conf);

}  // namespace meshlane::cni
