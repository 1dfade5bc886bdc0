#include "meshlaned/cni_commands.hpp"

#include <sys/signalfd.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cni_install/installer.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"

namespace meshlane::cni_commands {
namespace {

namespace fs = std::filesystem;
using cni_install::InstallReport;
using cni_install::UninstallReport;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    if (!item.empty()) {
      items.push_back(item);
    }
    start = comma + 1;
  }
  return items;
}

// The plugin is built and shipped next to meshlaned (build/bin/, the image's /usr/local/bin/).
std::string default_plugin_path() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  return error ? std::string("meshlane-cni") : (self.parent_path() / "meshlane-cni").string();
}

// SIGTERM and SIGINT as a readable fd, so the waits stop cleanly (the kubelet sends SIGTERM).
UniqueFd stop_signal_fd() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) {
    return {};
  }
  return UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
}

void print_install(const InstallReport& report, bool json) {
  if (json) {
    std::cout << report.to_json().dump() << std::endl;
    return;
  }
  std::cout << report.binary << ": " << (report.binary_changed ? "copied" : "up to date") << '\n'
            << report.conflist << ": entry " << cni_install::to_string(report.action) << '\n';
  if (report.removed_file) {
    std::cout << *report.removed_file << ": replaced by " << report.conflist
              << " (original kept in " << report.backup_file.value_or("?") << ")\n";
  }
  std::cout << std::flush;
}

}  // namespace

CLI::App* add_install_command(CLI::App& app, InstallArgs& args) {
  CLI::App* command = app.add_subcommand(
      "install-cni",
      "copy meshlane-cni into the CNI bin dir and chain it into the primary network's conflist; "
      "exit status: 0 done, 1 bad option, config or plugin, 2 a file operation failed, 3 no "
      "primary CNI config yet (nothing written: retry)");
  // --config (meshlaned's own option) may follow the subcommand too: the DaemonSet writes it so.
  command->fallthrough();
  command->add_option("--cni-bin-dir", args.cni_bin_dir, "where the runtime finds CNI plugins")
      ->capture_default_str();
  command
      ->add_option("--cni-conf-dir", args.cni_conf_dir, "where the primary CNI writes its config")
      ->capture_default_str();
  command->add_option("--plugin", args.plugin,
                      "the meshlane-cni binary to install (default: next to meshlaned)");
  command->add_option("--control-socket", args.control_socket,
                      "the socket the plugin calls (default: daemon.socket of --config, else "
                      "/run/meshlane/meshlane.sock)");
  command
      ->add_option("--failure-policy", args.failure_policy,
                   "open: pods start unaccelerated when meshlaned is down (istio-init or "
                   "linkerd-init still redirect); closed: pod setup fails and is retried")
      ->check(CLI::IsMember({"open", "closed"}))
      ->capture_default_str();
  command
      ->add_option("--exclude-namespaces", args.exclude_namespaces,
                   "comma-separated namespaces the plugin leaves alone (\"\" for none)")
      ->capture_default_str();
  command
      ->add_option("--wait", args.wait_seconds,
                   "seconds to wait for the primary CNI's config before exit status 3")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_flag("--watch", args.watch,
                    "keep running: wait for the primary config, install, and put the entry back "
                    "whenever the primary CNI rewrites its file; SIGTERM stops (entry left)");
  command->add_option("-o,--output", args.output, "text, or one JSON object per change")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  return command;
}

CLI::App* add_uninstall_command(CLI::App& app, UninstallArgs& args) {
  CLI::App* command = app.add_subcommand(
      "uninstall-cni",
      "remove meshlane-cni's entry from every CNI config (a converted .conf comes back), then the "
      "binary; exit status: 0 done (also when nothing was installed), 2 a file operation failed "
      "(the binary is then left in place)");
  command->fallthrough();
  command->add_option("--cni-bin-dir", args.cni_bin_dir, "where the plugin was installed")
      ->capture_default_str();
  command->add_option("--cni-conf-dir", args.cni_conf_dir, "the CNI config directory")
      ->capture_default_str();
  command->add_option("-o,--output", args.output, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  return command;
}

int run_install(const InstallArgs& args, const std::string& config_path) {
  cni_install::InstallOptions options;
  options.cni_bin_dir = args.cni_bin_dir;
  options.cni_conf_dir = args.cni_conf_dir;
  options.plugin_path = args.plugin.empty() ? default_plugin_path() : args.plugin;
  options.settings.failure_policy = args.failure_policy;
  options.settings.exclude_namespaces = split_list(args.exclude_namespaces);
  options.settings.control_socket = args.control_socket;
  if (options.settings.control_socket.empty()) {
    options.settings.control_socket = kDefaultControlSocket;
    if (!config_path.empty()) {
      auto config = load_config_file(config_path);
      if (!config) {
        std::cerr << "meshlaned install-cni: " << config.error().message() << '\n';
        return kExitUsage;
      }
      options.settings.control_socket = config->daemon.socket;
    }
  }
  if (options.settings.control_socket.front() != '/') {
    std::cerr << "meshlaned install-cni: --control-socket " << options.settings.control_socket
              << " is not an absolute path: the runtime runs the plugin from another directory\n";
    return kExitUsage;
  }
  if (::access(options.plugin_path.c_str(), R_OK) != 0) {
    std::cerr << "meshlaned install-cni: cannot read the plugin " << options.plugin_path
              << ": build it (ninja meshlane-cni) or pass --plugin PATH\n";
    return kExitUsage;
  }

  const bool json = args.output == "json";
  UniqueFd stop = stop_signal_fd();
  if (args.watch) {
    Status status = cni_install::watch(
        options, stop.get(), [json](const InstallReport& report) { print_install(report, json); });
    if (!status) {
      std::cerr << "meshlaned install-cni: " << status.error().message() << '\n';
      return kExitFailed;
    }
    return kExitOk;
  }
  auto result =
      cni_install::install_when_ready(options, std::chrono::seconds(args.wait_seconds), stop.get());
  if (!result) {
    std::cerr << "meshlaned install-cni: " << result.error().error.message() << '\n';
    return result.error().no_primary_yet ? kExitNoPrimaryYet : kExitFailed;
  }
  print_install(result.value(), json);
  return kExitOk;
}

int run_uninstall(const UninstallArgs& args) {
  auto result = cni_install::uninstall(args.cni_bin_dir, args.cni_conf_dir);
  if (!result) {
    std::cerr << "meshlaned uninstall-cni: " << result.error().message() << '\n';
    return kExitFailed;
  }
  const UninstallReport& report = result.value();
  if (args.output == "json") {
    std::cout << report.to_json().dump() << std::endl;
    return kExitOk;
  }
  for (const std::string& path : report.conflists) {
    std::cout << path << ": entry removed\n";
  }
  for (const std::string& path : report.restored) {
    std::cout << path << ": restored\n";
  }
  std::cout << report.binary << ": " << (report.binary_removed ? "removed" : "not installed")
            << '\n';
  return kExitOk;
}

}  // namespace meshlane::cni_commands
