// meshlaned: loads, pins and attaches the meshlane datapath and keeps it running
// (controller/daemon/run.cpp); this file is its command line.
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
  app.set_version_flag("--version", std::string("meshlaned ") + MESHLANE_VERSION);
  CLI11_PARSE(app, argc, argv);

  // A client that disconnects mid-response must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_default_logger(spdlog::stderr_color_mt("meshlaned"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

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
