#include "cni/spec.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <utility>

namespace meshlane::cni {

namespace {

CniError error(ErrorCode code, std::string msg, std::string details = {}) {
  return CniError{code, std::move(msg), std::move(details)};
}

std::string supported_list() {
  std::string list;
  for (std::string_view version : kSupportedVersions) {
    list += (list.empty() ? "" : ", ") + std::string(version);
  }
  return list;
}

// The oldest cniVersion of the configuration that may carry the command.
std::string_view first_version_with(Command command) {
  switch (command) {
    case Command::kCheck: return "0.4.0";
    case Command::kStatus:
    case Command::kGc: return "1.1.0";
    default: return "0.0.0";
  }
}

}  // namespace

nlohmann::json error_json(const CniError& error, std::string_view cni_version) {
  nlohmann::json out = {{"cniVersion", cni_version.empty() ? kLatestVersion : cni_version},
                        {"code", static_cast<int>(error.code)},
                        {"msg", error.msg}};
  if (!error.details.empty()) {
    out["details"] = error.details;
  }
  return out;
}

nlohmann::json version_json(std::string_view cni_version) {
  nlohmann::json versions = nlohmann::json::array();
  for (std::string_view version : kSupportedVersions) {
    versions.push_back(version);
  }
  return {{"cniVersion", cni_version.empty() ? kLatestVersion : cni_version},
          {"supportedVersions", versions}};
}

bool is_supported_version(std::string_view version) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
         kSupportedVersions.end();
}

int compare_versions(std::string_view a, std::string_view b) {
  auto next_part = [](std::string_view& text) {
    const std::size_t dot = text.find('.');
    const std::string_view part = text.substr(0, dot);
    text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    std::uint64_t value = 0;
    std::from_chars(part.data(), part.data() + part.size(), value);
    return value;
  };
  while (!a.empty() || !b.empty()) {
    const std::uint64_t left = next_part(a);
    const std::uint64_t right = next_part(b);
    if (left != right) {
      return left < right ? -1 : 1;
    }
  }
  return 0;
}

std::optional<Command> command_from_string(std::string_view text) {
  if (text == "ADD")
    return Command::kAdd;
  if (text == "DEL")
    return Command::kDel;
  if (text == "CHECK")
    return Command::kCheck;
  if (text == "VERSION")
    return Command::kVersion;
  if (text == "STATUS")
    return Command::kStatus;
  if (text == "GC")
    return Command::kGc;
  return std::nullopt;
}

const char* to_string(Command command) {
  switch (command) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kVersion: return "VERSION";
    case Command::kStatus: return "STATUS";
    case Command::kGc: return "GC";
  }
  return "?";
}

Result<std::map<std::string, std::string>> parse_cni_args(std::string_view text) {
  std::map<std::string, std::string> args;
  while (!text.empty()) {
    const std::size_t semicolon = text.find(';');
    const std::string_view pair = text.substr(0, semicolon);
    text = semicolon == std::string_view::npos ? std::string_view() : text.substr(semicolon + 1);
    if (pair.empty()) {
      continue;  // "A=1;;B=2" and a trailing ';' are harmless
    }
    const std::size_t equals = pair.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      return make_error("CNI_ARGS: \"" + std::string(pair) + "\" is not a KEY=VALUE pair");
    }
    args[std::string(pair.substr(0, equals))] = std::string(pair.substr(equals + 1));
  }
  return args;
}

Result<Environment, CniError> parse_environment(const EnvLookup& lookup) {
  auto get = [&](const char* name) { return lookup(name).value_or(std::string()); };
  const std::string command_text = get("CNI_COMMAND");
  const std::optional<Command> command = command_from_string(command_text);
  if (!command) {
    return error(ErrorCode::kInvalidEnvironment,
                 command_text.empty() ? "CNI_COMMAND is not set"
                                      : "CNI_COMMAND \"" + command_text + "\" is not a command",
                 "expected ADD, DEL, CHECK, VERSION, STATUS or GC (meshlane-cni is run by the "
                 "container runtime, not by hand)");
  }
  Environment env;
  env.command = *command;
  env.container_id = get("CNI_CONTAINERID");
  env.netns = get("CNI_NETNS");
  env.ifname = get("CNI_IFNAME");
  env.path = get("CNI_PATH");

  const bool per_container =
      *command == Command::kAdd || *command == Command::kDel || *command == Command::kCheck;
  if (per_container) {
    std::string missing;
    auto require = [&](const char* name, const std::string& value) {
      if (value.empty()) {
        missing += (missing.empty() ? "" : ", ") + std::string(name);
      }
    };
    require("CNI_CONTAINERID", env.container_id);
    require("CNI_IFNAME", env.ifname);
    if (*command != Command::kDel) {
      require("CNI_NETNS", env.netns);  // DEL may come after the namespace is gone
    }
    if (!missing.empty()) {
      return error(ErrorCode::kInvalidEnvironment, "required CNI variables are not set",
                   std::string(to_string(*command)) + " needs " + missing);
    }
  }
  auto args = parse_cni_args(get("CNI_ARGS"));
  if (!args) {
    return error(ErrorCode::kInvalidEnvironment, "CNI_ARGS cannot be parsed",
                 args.error().message());
  }
  env.args = std::move(args.value());
  return env;
}

Result<NetConf, CniError> parse_netconf(std::string_view text, Command command) {
  NetConf conf;
  const bool blank = std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  });
  if (blank && command == Command::kVersion) {
    return conf;  // runtimes may probe VERSION without a configuration
  }
  nlohmann::json raw = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (raw.is_discarded() || !raw.is_object()) {
    return error(ErrorCode::kDecodingFailure, "the network configuration on stdin is not JSON",
                 raw.is_discarded()
                     ? "expected one JSON object, got text that does not parse"
                     : "expected a JSON object, got " + std::string(raw.type_name()));
  }
  auto string_key = [&](const char* key, std::string& out,
                        bool required) -> Result<void, CniError> {
    const auto found = raw.find(key);
    if (found == raw.end()) {
      if (required) {
        return error(ErrorCode::kInvalidNetworkConfig,
                     std::string("the network configuration has no \"") + key + "\"",
                     "every conflist entry needs cniVersion, name and type");
      }
      return {};
    }
    if (!found->is_string()) {
      return error(ErrorCode::kInvalidNetworkConfig,
                   std::string("the network configuration's \"") + key + "\" is not a string",
                   "got " + std::string(found->type_name()));
    }
    out = found->get<std::string>();
    return {};
  };
  const bool full = command != Command::kVersion;
  if (auto status = string_key("cniVersion", conf.cni_version, full); !status) {
    return status.error();
  }
  if (auto status = string_key("name", conf.name, full); !status) {
    return status.error();
  }
  if (auto status = string_key("type", conf.type, false); !status) {
    return status.error();
  }
  if (command == Command::kVersion) {
    conf.raw = std::move(raw);
    return conf;  // VERSION answers whatever the version (that is what it is for)
  }
  if (!is_supported_version(conf.cni_version)) {
    return error(ErrorCode::kIncompatibleVersion,
                 "cniVersion \"" + conf.cni_version + "\" is not supported",
                 "meshlane-cni supports " + supported_list() +
                     "; set the conflist's cniVersion "
                     "to one of them");
  }
  if (compare_versions(conf.cni_version, first_version_with(command)) < 0) {
    return error(
        ErrorCode::kIncompatibleVersion,
        std::string("cniVersion ") + conf.cni_version + " does not allow " + to_string(command),
        std::string(to_string(command)) + " needs cniVersion " +
            std::string(first_version_with(command)) + " or later");
  }
  if (const auto found = raw.find("prevResult"); found != raw.end() && !found->is_null()) {
    if (!found->is_object()) {
      return error(ErrorCode::kInvalidNetworkConfig, "prevResult is not a JSON object",
                   "got " + std::string(found->type_name()));
    }
    conf.prev_result = *found;
  }
  if (const auto found = raw.find("runtimeConfig"); found != raw.end() && !found->is_null()) {
    if (!found->is_object()) {
      return error(ErrorCode::kInvalidNetworkConfig, "runtimeConfig is not a JSON object",
                   "got " + std::string(found->type_name()));
    }
    conf.runtime_config = *found;
  }
  conf.raw = std::move(raw);
  return conf;
}

}  // namespace meshlane::cni
