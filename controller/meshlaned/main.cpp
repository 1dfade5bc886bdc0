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

// main() without its last-resort exception handler.
int parse_and_run(int argc, char** argv) {
  CLI::App app{"meshlaned: node daemon that accelerates service-mesh TCP with eBPF"};
  std::string config_path = "config/meshlane.toml";
  bool do_cleanup = false;
  bool do_stats = false;
  std::string output = "text";
  app.add_option("-c,--config", config_path, "TOML configuration file")->capture_default_str();
  auto* cleanup_flag =
      app.add_flag("--cleanup", do_cleanup,
                   "detach and unpin everything meshlaned made under daemon.bpffs_dir, then exit");
  app.add_flag("--stats", do_stats, "print the datapath counters and exit")->excludes(cleanup_flag);
  app.add_option("-o,--output", output, "output format of --stats")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
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

  auto config = meshlane::load_config_file(config_path);
  if (!config) {
    std::cerr << "meshlaned: " << config.error().message() << '\n';
    return kExitConfig;
  }
  spdlog::set_level(spdlog::level::from_str(config->daemon.log_level));

  if (do_stats) {
    return meshlane::daemon::print_stats(config.value(), output == "json");
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
