// `meshlaned install-cni` and `meshlaned uninstall-cni`: the command-line side of
// controller/cni_install (docs/kubernetes.md). main.cpp registers them as CLI11 subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace meshlane::cni_commands {

// Exit status of both commands.
inline constexpr int kExitOk = 0;            // done (also when there was nothing to change)
inline constexpr int kExitUsage = 1;         // a bad value, an unreadable --config, no plugin
inline constexpr int kExitFailed = 2;        // a file operation failed (the message says which)
inline constexpr int kExitNoPrimaryYet = 3;  // no primary CNI config (yet): nothing written

struct InstallArgs {
  std::string cni_bin_dir = "/opt/cni/bin";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string plugin;          // "" = meshlane-cni next to this meshlaned
  std::string control_socket;  // "" = daemon.socket of --config, else the default
  std::string failure_policy = "open";
  std::string exclude_namespaces = "kube-system";  // comma-separated; "" = none
  bool watch = false;
  int wait_seconds = 0;
  std::string output = "text";
};

struct UninstallArgs {
  std::string cni_bin_dir = "/opt/cni/bin";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string output = "text";
};

// Adds the two subcommands to app, filling args.
CLI::App* add_install_command(CLI::App& app, InstallArgs& args);
CLI::App* add_uninstall_command(CLI::App& app, UninstallArgs& args);

// config_path: the --config given explicitly, or "" (then daemon.socket's default is used).
int run_install(const InstallArgs& args, const std::string& config_path);
int run_uninstall(const UninstallArgs& args);

}  // namespace meshlane::cni_commands
