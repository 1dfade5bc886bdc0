// `meshlaned install-cni` / `uninstall-cni` on a node's directories: the plugin binary into the
// CNI bin dir, our entry into the primary network's conflist (conflist.hpp), and back out.
//
// Order is what keeps pods starting: install copies the binary before it writes the entry,
// uninstall removes the entry before the binary. An entry whose binary is missing makes every
// pod's network setup fail on the node.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni_install/conflist.hpp"
#include "common/error.hpp"

namespace meshlane::cni_install {

struct InstallOptions {
  std::string cni_bin_dir = "/opt/cni/bin";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string plugin_path;  // the meshlane-cni binary to copy
  PluginSettings settings;
};

struct InstallReport {
  std::string binary;  // where the plugin now is
  bool binary_changed = false;
  std::string conflist;  // the primary's file holding our entry
  EditAction action = EditAction::kUnchanged;
  std::optional<std::string> removed_file;  // a converted .conf
  // A copy of a converted .conf (ignored by the runtime: not a CNI extension), from which
  // uninstall puts the .conf back byte for byte.
  std::optional<std::string> backup_file;

  [[nodiscard]] bool changed() const { return binary_changed || action != EditAction::kUnchanged; }
  [[nodiscard]] nlohmann::ordered_json to_json() const;
};

struct InstallError {
  // True when the conf dir holds no CNI configuration yet: nothing was written (not even the
  // binary); the caller waits for the primary CNI and tries again.
  bool no_primary_yet = false;
  Error error;
};

// One pass: copies the plugin when it differs from the installed one (temp file in the bin
// dir, fsync, chmod 0755, rename), then inserts or updates our entry in the primary's file
// (write_file_atomically). Idempotent: a second pass changes nothing.
Result<InstallReport, InstallError> install_once(const InstallOptions& options);

// Waits (inotify on the conf dir) until the primary CNI writes its config or `timeout` passes,
// then installs. Stops early, with no_primary_yet, when stop_fd (if >= 0) becomes readable.
Result<InstallReport, InstallError> install_when_ready(const InstallOptions& options,
                                                       std::chrono::milliseconds timeout,
                                                       int stop_fd);

// Keeps our entry in place: installs, then re-installs whenever the conf dir changes (the
// primary CNI rewrote its file and dropped our entry, or a new primary appeared), until stop_fd
// becomes readable (meshlaned passes a signalfd for SIGTERM/SIGINT). on_change gets every pass
// that changed something. Leaves the entry in place when it stops: an upgrade restarts the
// watcher, and uninstall is its own command.
Status watch(const InstallOptions& options, int stop_fd,
             const std::function<void(const InstallReport&)>& on_change);

struct UninstallReport {
  std::vector<std::string> conflists;  // files our entry was removed from
  std::vector<std::string> restored;   // .conf files put back from their backup
  std::string binary;
  bool binary_removed = false;

  [[nodiscard]] bool changed() const {
    return !conflists.empty() || !restored.empty() || binary_removed;
  }
  [[nodiscard]] nlohmann::ordered_json to_json() const;
};

// Removes our entry from every CNI config file in the conf dir (restoring converted .conf
// files), and only when all of that succeeded, the binary. Nothing to remove is success.
Result<UninstallReport> uninstall(const std::string& cni_bin_dir, const std::string& cni_conf_dir);

// Atomic copy of an executable: temp file in the target's directory, fsync, chmod 0755, rename,
// fsync of the directory. Returns false (and changes nothing) when target already has the same
// bytes.
Result<bool> copy_executable_atomically(const std::string& source, const std::string& target);

// The name of the backup of a converted .conf: ".<name>.meshlane-orig".
std::string backup_name_of_conf(const std::string& conf_name);

}  // namespace meshlane::cni_install
