#include "cni_install/conflist.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace meshlane::cni_install {
namespace {

using Json = nlohmann::ordered_json;

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// How the primary CNI laid out its file, so that our edit changes only the entry: re-serializing
// in the same style leaves every other byte as it was.
struct Style {
  int indent = -1;  // -1: everything on one line
  char indent_char = ' ';
  bool trailing_newline = false;
};

Style detect_style(std::string_view text) {
  Style style;
  style.trailing_newline = ends_with(text, "\n");
  // The first line that starts with whitespace after a newline holds one level of indentation.
  for (std::size_t newline = text.find('\n'); newline != std::string_view::npos;
       newline = text.find('\n', newline + 1)) {
    std::size_t end = newline + 1;
    while (end < text.size() && (text[end] == ' ' || text[end] == '\t')) {
      ++end;
    }
    if (end > newline + 1 && end < text.size() && text[end] != '\n') {
      style.indent_char = text[newline + 1];
      style.indent = static_cast<int>(end - newline - 1);
      return style;
    }
  }
  return style;
}

std::string serialize(const Json& json, const Style& style) {
  std::string text = json.dump(style.indent, style.indent_char);
  if (style.trailing_newline) {
    text += '\n';
  }
  return text;
}

Result<Json> parse(std::string_view file_name, std::string_view text) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return make_error(std::string(file_name) +
                      " is not valid JSON: fix or remove it (the runtime cannot read it either)");
  }
  if (!json.is_object()) {
    return make_error(std::string(file_name) + " is not a JSON object: not a CNI configuration");
  }
  return json;
}

bool is_ours(const Json& plugin) {
  return plugin.is_object() && plugin.contains("type") && plugin["type"].is_string() &&
         plugin["type"].get<std::string>() == kPluginType;
}

bool is_conflist(const Json& json) { return json.contains("plugins"); }

Status check_plugins(std::string_view file_name, const Json& json) {
  if (!json["plugins"].is_array()) {
    return make_error(std::string(file_name) +
                      ": \"plugins\" is not an array: not a CNI configuration list");
  }
  return {};
}

}  // namespace

Json plugin_entry(const PluginSettings& settings) {
  Json entry;
  entry["type"] = kPluginType;
  entry["control_socket"] = settings.control_socket;
  entry["failure_policy"] = settings.failure_policy;
  entry["exclude_namespaces"] = settings.exclude_namespaces;
  // Makes containerd (>= 1.5) and CRI-O (>= 1.29) pass the pod's annotations in runtimeConfig.
  entry["capabilities"] = Json{{"io.kubernetes.cri.pod-annotations", true}};
  return entry;
}

bool is_cni_config_name(std::string_view name) {
  return ends_with(name, ".conflist") || ends_with(name, ".conf") || ends_with(name, ".json");
}

std::optional<std::string> choose_primary(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (!name.empty() && name.front() != '.' && is_cni_config_name(name) &&
        name.find("meshlane") == std::string::npos) {
      return name;
    }
  }
  return std::nullopt;
}

std::string_view to_string(EditAction action) {
  switch (action) {
    case EditAction::kUnchanged: return "unchanged";
    case EditAction::kInserted: return "inserted";
    case EditAction::kUpdated: return "updated";
    case EditAction::kConverted: return "converted";
  }
  return "unknown";
}

std::string conflist_name_of_conf(std::string_view conf_name) {
  const std::size_t dot = conf_name.rfind('.');
  return std::string(conf_name.substr(0, dot)) + ".conflist";
}

namespace {

// A single plugin's configuration as a list, the way libcni's ConfListFromConf reads it:
// cniVersion and name carried over, the plugin itself unchanged as the first element.
Result<Json> conflist_json_of_conf(std::string_view file_name, const Json& conf) {
  if (!conf.contains("type") || !conf["type"].is_string()) {
    return make_error(std::string(file_name) +
                      R"( has neither "plugins" nor a "type": not a CNI configuration)");
  }
  Json list;
  if (conf.contains("cniVersion")) {
    list["cniVersion"] = conf["cniVersion"];
  }
  if (conf.contains("name")) {
    list["name"] = conf["name"];
  }
  list["plugins"] = Json::array({conf});
  return list;
}

}  // namespace

Result<std::string> conflist_of_conf(std::string_view file_name, std::string_view conf_text) {
  auto conf = parse(file_name, conf_text);
  if (!conf) {
    return conf.error();
  }
  auto list = conflist_json_of_conf(file_name, conf.value());
  if (!list) {
    return list.error();
  }
  return serialize(list.value(), detect_style(conf_text));
}

Result<InstallEdit> install_entry(std::string_view file_name, std::string_view text,
                                  const PluginSettings& settings) {
  auto json = parse(file_name, text);
  if (!json) {
    return json.error();
  }
  const Style style = detect_style(text);
  const Json entry = plugin_entry(settings);
  InstallEdit edit;
  edit.file_name = std::string(file_name);

  if (!is_conflist(json.value())) {
    if (is_ours(json.value())) {
      return make_error(std::string(file_name) +
                        " is a meshlane-cni configuration of its own; meshlane-cni only runs "
                        "chained after the primary network: remove the file");
    }
    auto list = conflist_json_of_conf(file_name, json.value());
    if (!list) {
      return list.error();
    }
    list.value()["plugins"].push_back(entry);
    edit.file_name = conflist_name_of_conf(file_name);
    edit.text = serialize(list.value(), style);
    edit.action = EditAction::kConverted;
    if (edit.file_name != file_name) {
      edit.replaced_file = std::string(file_name);
    }
    return edit;
  }

  if (Status checked = check_plugins(file_name, json.value()); !checked) {
    return checked.error();
  }
  Json& plugins = json.value()["plugins"];
  // Keep the first entry of ours where it is (updated if needed), drop any other.
  bool found = false;
  bool changed = false;
  Json kept = Json::array();
  for (Json& plugin : plugins) {
    if (!is_ours(plugin)) {
      kept.push_back(std::move(plugin));
      continue;
    }
    if (found) {
      changed = true;
      continue;
    }
    found = true;
    if (plugin != entry) {
      changed = true;
    }
    kept.push_back(entry);
  }
  if (!found) {
    kept.push_back(entry);
  }
  if (found && !changed) {
    edit.text = std::string(text);
    edit.action = EditAction::kUnchanged;
    return edit;
  }
  plugins = std::move(kept);
  edit.text = serialize(json.value(), style);
  edit.action = found ? EditAction::kUpdated : EditAction::kInserted;
  return edit;
}

Result<RemoveEdit> remove_entry(std::string_view file_name, std::string_view text) {
  auto json = parse(file_name, text);
  if (!json) {
    return json.error();
  }
  if (!is_conflist(json.value()) || !json.value()["plugins"].is_array()) {
    return RemoveEdit{std::string(text), false};
  }
  Json& plugins = json.value()["plugins"];
  Json kept = Json::array();
  for (Json& plugin : plugins) {
    if (!is_ours(plugin)) {
      kept.push_back(std::move(plugin));
    }
  }
  if (kept.size() == plugins.size()) {
    return RemoveEdit{std::string(text), false};
  }
  plugins = std::move(kept);
  return RemoveEdit{serialize(json.value(), detect_style(text)), true};
}

}  // namespace meshlane::cni_install
