// meshlaned: loads, pins and attaches the meshlane datapath and keeps it running
// (controller/daemon/run.cpp); this file is its command line. Without a subcommand it is the
// daemon (and --cleanup, --stats); `install-cni` and `uninstall-cni` manage the CNI plugin on
// the node (meshlaned/cni_commands.cpp, docs/kubernetes.md).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <exception>
#include <iostream>
#include <string>

#include "config/config.hpp"
#include "daemon/run.hpp"
#include "datapath/test_hooks.hpp"
#include "meshlaned/cni_commands.hpp"

namespace {

using meshlane::daemon::kExitConfig;
using meshlane::daemon::kExitRuntime;

// Where `cmake --install` puts the configuration (MESHLANE_CONFIG_DIR, /etc/meshlane).
constexpr const char* kDefaultConfigPath = MESHLANE_DEFAULT_CONFIG;

// main() without its last-resort exception handler.
int parse_and_run(int argc, char** argv) {
  CLI::App app{"meshlaned: node daemon that accelerates service-mesh TCP with eBPF"};
  std::string config_path = kDefaultConfigPath;
  bool do_cleanup = false;
  bool do_stats = false;
  bool do_check = false;
  std::string output = "table";
  app.add_option("-c,--config", config_path, "TOML configuration file")->capture_default_str();
  auto* cleanup_flag =
      app.add_flag("--cleanup", do_cleanup,
                   "detach and unpin everything meshlaned made under daemon.bpffs_dir, then exit");
  auto* stats_flag = app.add_flag("--stats", do_stats, "print the datapath counters and exit")
                         ->excludes(cleanup_flag);
  app.add_flag("--check-config", do_check,
               "check the config file (syntax, every value, the socket groups, the cgroup) and "
               "exit: 0 when the daemon would start with it")
      ->excludes(cleanup_flag)
      ->excludes(stats_flag);
  // meshlanectl's spelling; "text" is the older name of "table".
  app.add_option("-o,--output", output, "output format of --stats and --check-config")
      ->check(CLI::IsMember({"table", "json", "text"}))
      ->capture_default_str();
  app.footer(
      "exit status: 0 ok, 1 the configuration (or a command-line value) is wrong, 2 the daemon "
      "could not start or failed (the message says why); install-cni also 3: no primary CNI "
      "config yet\n");
  // A test build says so: tests/netns/lib.sh's ml_require_test_hooks looks for it.
  app.set_version_flag("--version", std::string("meshlaned ") + MESHLANE_VERSION +
                                        (meshlane::test_hooks_compiled_in()
                                             ? " (test build: MESHLANE_TEST_* knobs compiled in)"
                                             : ""));
  meshlane::cni_commands::InstallArgs install_args;
  meshlane::cni_commands::UninstallArgs uninstall_args;
  CLI::App* install_cni = meshlane::cni_commands::add_install_command(app, install_args);
  CLI::App* uninstall_cni = meshlane::cni_commands::add_uninstall_command(app, uninstall_args);
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  // A client that disconnects mid-response must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_default_logger(spdlog::stderr_color_mt("meshlaned"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  if (install_cni->parsed() || uninstall_cni->parsed()) {
    if (do_cleanup || do_stats) {
      std::cerr << "meshlaned: --cleanup and --stats do not go with "
                << app.get_subcommands()[0]->get_name() << '\n';
      return meshlane::cni_commands::kExitUsage;
    }
    if (uninstall_cni->parsed()) {
      return meshlane::cni_commands::run_uninstall(uninstall_args);
    }
    // --config only when given: install-cni then reads daemon.socket from it.
    return meshlane::cni_commands::run_install(install_args,
                                               app.count("--config") > 0 ? config_path : "");
  }

  const bool json = output == "json";
  auto config = meshlane::load_config_file(config_path);
  if (!config) {
    if (do_check) {
      return meshlane::daemon::report_unparsable_config(config_path, config.error().message(),
                                                        json);
    }
    std::cerr << "meshlaned: " << config.error().message() << '\n';
    if (app.count("--config") == 0) {
      std::cerr << "meshlaned: (the default config file; pass --config FILE, or install one with "
                   "cmake --install)\n";
    }
    return kExitConfig;
  }
  spdlog::set_level(spdlog::level::from_str(config->daemon.log_level));

  if (do_check) {
    return meshlane::daemon::check_config(config_path, config.value(), json);
  }
  if (do_stats) {
    return meshlane::daemon::print_stats(config.value(), json);
  }
  if (do_cleanup) {
    return meshlane::daemon::cleanup(config.value());
  }
  return meshlane::daemon::run(config_path, config.value(),
                               meshlane::test_hooks_from_environment());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "meshlaned: fatal: " << error.what() << '\n';
  } catch (...) {
    std::cerr << "meshlaned: fatal: unknown exception\n";
  }
  return kExitRuntime;
}
