// Fuzzes what meshlane-cni and meshlaned read from the container runtime: the network
// configuration on the plugin's stdin (with prevResult and runtimeConfig) and libcni's result
// cache entries that meshlaned reads at start. The same input is tried as both. Besides crashes
// and sanitizer reports it checks that:
//   - a rejected configuration or cache entry gets a CNI error code and a message;
//   - a pod the plugin decides to enroll has a workload name the daemon accepts (63 characters
//     of [A-Za-z0-9_.-]) and its request carries the pod's netns and interface.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cni/cache.hpp"
#include "cni/pod.hpp"
#include "cni/settings.hpp"
#include "cni/spec.hpp"
#include "fuzz_check.hpp"

namespace {

using meshlane::fuzz::require;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > meshlane::cni::kMaxNameLength) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

void check_decision(
    const meshlane::Result<meshlane::cni::Decision, meshlane::cni::CniError>& decided,
    const std::string& netns, const std::string& ifname, std::string_view input) {
  if (!decided) {
    require(static_cast<int>(decided.error().code) != 0 && !decided.error().msg.empty(),
            "a refused pod gets a CNI error code and message", input);
    return;
  }
  if (!decided->enroll) {
    require(!decided->reason.empty(), "a skipped pod says why", input);
    return;
  }
  require(valid_name(decided->name), "an enrolled pod's workload name is valid", decided->name);
  require(decided->params.value("netns", std::string()) == netns &&
              decided->params.value("interface", std::string()) == ifname,
          "an enrolled pod's request names its netns and interface", decided->params.dump());
}

void as_plugin_input(std::string_view text) {
  using namespace meshlane::cni;  // NOLINT(google-build-using-namespace): one target's helpers
  for (Command command : {Command::kAdd, Command::kCheck, Command::kDel, Command::kGc}) {
    auto conf = parse_netconf(text, command);
    if (!conf) {
      require(static_cast<int>(conf.error().code) != 0 && !conf.error().msg.empty(),
              "a rejected configuration gets a CNI error code and message", text);
      continue;
    }
    auto settings = parse_settings(conf->raw);
    if (!settings || command != Command::kAdd || !conf->prev_result) {
      continue;
    }
    Environment env;
    env.command = command;
    env.container_id = "c0ffee";
    env.netns = "/var/run/netns/fuzz";
    env.ifname = "eth0";
    env.args = {{"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "cart-0"}};
    auto addresses = pod_addresses(*conf->prev_result, env.ifname);
    auto annotations = pod_annotations(conf->runtime_config);
    if (!addresses || !annotations) {
      continue;
    }
    check_decision(decide(settings.value(), env, annotations.value(), addresses.value()), env.netns,
                   env.ifname, text);
  }
}

void as_cache_entry(std::string_view text) {
  using namespace meshlane::cni;  // NOLINT(google-build-using-namespace): one target's helpers
  auto entry = parse_cache_entry(text);
  if (!entry) {
    require(!entry.error().message().empty(), "a rejected cache entry says why", text);
    return;
  }
  nlohmann::json conf = nlohmann::json{{"type", "meshlane-cni"},
                                       {"cniVersion", "1.0.0"},
                                       {"name", "podnet"},
                                       {"capabilities", {{kAnnotationsCapability, true}}}};
  if (entry->config) {
    if (auto own = plugin_config(*entry->config)) {
      conf = std::move(*own);
    }
  }
  check_decision(decide_cached(entry.value(), conf), entry->netns, entry->ifname, text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  as_plugin_input(text);
  as_cache_entry(text);
  return 0;
}
