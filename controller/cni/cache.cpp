#include "cni/cache.hpp"

#include <array>
#include <utility>

#include "cni/settings.hpp"

namespace meshlane::cni {

namespace {

// Go's encoding/json matches keys case-insensitively, and libcni itself writes "containerId"
// while its attachment reader declares "containerID": accept any case of a key.
const nlohmann::json* find_key(const nlohmann::json& object, std::string_view key) {
  auto lower = [](std::string_view text) {
    std::string out(text);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    return out;
  };
  const std::string wanted = lower(key);
  for (const auto& [name, value] : object.items()) {
    if (lower(name) == wanted) {
      return &value;
    }
  }
  return nullptr;
}

Result<std::string> required_string(const nlohmann::json& object, std::string_view key) {
  const nlohmann::json* value = find_key(object, key);
  if (value == nullptr || !value->is_string() || value->get<std::string>().empty()) {
    return make_error("the cache entry has no \"" + std::string(key) + "\" string");
  }
  return value->get<std::string>();
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

}  // namespace

Result<std::string> decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) {
    return make_error("base64 text of " + std::to_string(text.size()) + " characters is truncated");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int count = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int value = base64_value(text[i]);
    if (value < 0) {
      return make_error("not base64: character " + std::to_string(i));
    }
    bits = (bits << 6U) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> static_cast<unsigned>(count)) & 0xFFU));
    }
  }
  return out;
}

Result<CachedAttachment> parse_cache_entry(std::string_view text) {
  const nlohmann::json root = nlohmann::json::parse(text, nullptr, false);
  if (!root.is_object()) {
    return make_error("the cache entry is not a JSON object");
  }
  const nlohmann::json* kind = find_key(root, "kind");
  if (kind == nullptr || !kind->is_string() || kind->get<std::string>() != kCacheKind) {
    return make_error("the cache entry is not of kind \"" + std::string(kCacheKind) +
                      "\" (a result-only file of libcni before 0.8 holds no netns to enroll)");
  }
  CachedAttachment entry;
  auto container = required_string(root, "containerId");
  auto network = required_string(root, "networkName");
  auto ifname = required_string(root, "ifName");
  for (const auto* field : {&container, &network, &ifname}) {
    if (!*field) {
      return field->error();
    }
  }
  entry.container_id = std::move(container.value());
  entry.network_name = std::move(network.value());
  entry.ifname = std::move(ifname.value());
  if (const nlohmann::json* netns = find_key(root, "netns"); netns != nullptr) {
    if (!netns->is_string()) {
      return make_error("the cache entry's \"netns\" is not a string");
    }
    entry.netns = netns->get<std::string>();
  }
  if (const nlohmann::json* args = find_key(root, "cniArgs"); args != nullptr && !args->is_null()) {
    if (!args->is_array()) {
      return make_error("the cache entry's \"cniArgs\" is not an array of pairs");
    }
    for (const nlohmann::json& pair : *args) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
        return make_error("the cache entry's \"cniArgs\" holds " + pair.dump() +
                          ", not a [name, value] pair of strings");
      }
      entry.cni_args[pair[0].get<std::string>()] = pair[1].get<std::string>();
    }
  }
  if (const nlohmann::json* capabilities = find_key(root, "capabilityArgs");
      capabilities != nullptr && !capabilities->is_null()) {
    if (!capabilities->is_object()) {
      return make_error("the cache entry's \"capabilityArgs\" is not an object");
    }
    entry.capability_args = *capabilities;
  }
  if (const nlohmann::json* result = find_key(root, "result");
      result != nullptr && !result->is_null()) {
    if (!result->is_object()) {
      return make_error("the cache entry's \"result\" is not an object");
    }
    entry.result = *result;
  }
  if (const nlohmann::json* config = find_key(root, "config");
      config != nullptr && config->is_string()) {
    if (auto bytes = decode_base64(config->get<std::string>())) {
      nlohmann::json decoded = nlohmann::json::parse(bytes.value(), nullptr, false);
      if (decoded.is_object()) {
        entry.config = std::move(decoded);
      }
    }
  }
  return entry;
}

std::optional<nlohmann::json> plugin_config(const nlohmann::json& network_config) {
  if (!network_config.is_object()) {
    return std::nullopt;
  }
  const auto plugins = network_config.find("plugins");
  if (plugins == network_config.end()) {
    if (network_config.value("type", nlohmann::json()) == kPluginType) {
      return network_config;
    }
    return std::nullopt;
  }
  if (!plugins->is_array()) {
    return std::nullopt;
  }
  for (const nlohmann::json& entry : *plugins) {
    if (entry.is_object() && entry.value("type", nlohmann::json()) == kPluginType) {
      nlohmann::json conf = entry;
      for (const char* key : {"cniVersion", "name"}) {
        if (network_config.contains(key)) {
          conf[key] = network_config[key];
        }
      }
      return conf;
    }
  }
  return std::nullopt;
}

Result<Decision, CniError> decide_cached(const CachedAttachment& attachment,
                                         const nlohmann::json& plugin_conf) {
  auto settings = parse_settings(plugin_conf);
  if (!settings) {
    return settings.error();
  }
  Environment env;
  env.command = Command::kAdd;
  env.container_id = attachment.container_id;
  env.netns = attachment.netns;
  env.ifname = attachment.ifname;
  env.args = attachment.cni_args;
  // The runtime passes a capability's value only to the entries that declare it.
  nlohmann::json runtime_config = nlohmann::json::object();
  const auto declared = plugin_conf.find("capabilities");
  const bool declares_annotations =
      declared != plugin_conf.end() && declared->is_object() &&
      declared->value(kAnnotationsCapability, nlohmann::json()) == nlohmann::json(true);
  if (declares_annotations && attachment.capability_args.contains(kAnnotationsCapability)) {
    runtime_config[kAnnotationsCapability] = attachment.capability_args[kAnnotationsCapability];
  }
  auto annotations = pod_annotations(runtime_config);
  if (!annotations) {
    return CniError{ErrorCode::kInvalidNetworkConfig, "the cached annotations cannot be read",
                    annotations.error().message()};
  }
  auto addresses = pod_addresses(attachment.result, attachment.ifname);
  if (!addresses) {
    return CniError{ErrorCode::kInvalidNetworkConfig, "the cached result cannot be read",
                    addresses.error().message()};
  }
  return decide(settings.value(), env, annotations.value(), addresses.value());
}

}  // namespace meshlane::cni
