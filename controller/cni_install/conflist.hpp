// The CNI configuration edits of `meshlaned install-cni` / `uninstall-cni`, as pure functions
// over file names and JSON text (the file operations are installer.hpp): which file is the
// primary network's, how our chained entry goes into its `plugins`, and how it comes out again.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace meshlane::cni_install {

// The `type` of our entry: the runtime runs the binary of that name from the CNI bin dir.
inline constexpr std::string_view kPluginType = "meshlane-cni";

// What our entry tells the plugin (docs/cni.md).
struct PluginSettings {
  // daemon.socket; the default equals config/config.hpp's kDefaultControlSocket (this library
  // does not link the config one; meshlaned passes the configured value).
  std::string control_socket = "/run/meshlane/meshlane.sock";
  std::string failure_policy = "open";  // "open" | "closed"
  std::vector<std::string> exclude_namespaces = {"kube-system"};

  bool operator==(const PluginSettings&) const = default;
};

// Our conflist entry, keys in a fixed order:
// {"type", "control_socket", "failure_policy", "exclude_namespaces", "capabilities"}.
nlohmann::ordered_json plugin_entry(const PluginSettings& settings);

// Whether the runtime (libcni) would read a file of this name: .conflist, .conf or .json.
bool is_cni_config_name(std::string_view name);

// The primary network's file among the names of the conf dir: the first CNI config name in
// byte order (as libcni picks it), skipping files that are ours (name containing "meshlane")
// and hidden files. nullopt: the primary CNI has not written its config yet.
std::optional<std::string> choose_primary(std::vector<std::string> names);

// What an install did to the primary's file.
enum class EditAction {
  kUnchanged,  // our entry was there with the same settings
  kInserted,   // appended at the end of `plugins`
  kUpdated,    // was there with other settings (or more than once): replaced in place
  kConverted,  // a single-plugin .conf became a .conflist holding it and our entry
};
std::string_view to_string(EditAction action);

struct InstallEdit {
  std::string file_name;  // the file to write (a .conf's new name when converted)
  std::string text;       // its new text (the input's when kUnchanged)
  EditAction action = EditAction::kUnchanged;
  // Converted: the .conf to remove after the .conflist is written.
  std::optional<std::string> replaced_file;
};

// Inserts or updates our entry in the primary's file. The text is re-serialized in the
// primary's own style (indent width or tab, key order, trailing newline) so that removing the
// entry again gives back its bytes when the primary wrote the usual `json.dumps(indent=N)`
// layout. Errors name the file and what is wrong with it (not JSON, no `plugins` array, ...).
Result<InstallEdit> install_entry(std::string_view file_name, std::string_view text,
                                  const PluginSettings& settings);

struct RemoveEdit {
  std::string text;  // the text without our entry; the input itself when it held none
  bool changed = false;
};

// Removes every entry of ours from a conflist (or leaves a .conf alone). A file without our
// entry is returned byte for byte.
Result<RemoveEdit> remove_entry(std::string_view file_name, std::string_view text);

// The .conflist a single-plugin .conf becomes (without our entry), in the .conf's style: what
// uninstall compares with before it puts the .conf back.
Result<std::string> conflist_of_conf(std::string_view file_name, std::string_view conf_text);

// "10-bridge.conf" -> "10-bridge.conflist".
std::string conflist_name_of_conf(std::string_view conf_name);

}  // namespace meshlane::cni_install
