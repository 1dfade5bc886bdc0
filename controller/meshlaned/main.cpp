// meshlaned: loads, pins and attaches the meshlane datapath and keeps it running.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <functional>
#include <iostream>

#include "meshlane/config.hpp"
#include "meshlane/counters.hpp"
#include "meshlane/datapath.hpp"
#include "meshlane/mounts.hpp"
#include "meshlane/workloads.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitConfig = 1;
constexpr int kExitRuntime = 2;

int print_stats(const meshlane::Config& config, bool json) {
  auto counters = meshlane::read_counters(config.daemon.bpffs_dir);
  if (!counters) {
    std::cerr << "meshlaned: " << counters.error().message() << '\n';
    return kExitRuntime;
  }
  if (json) {
    std::cout << meshlane::counters_to_json(counters.value()).dump() << '\n';
  } else {
    std::cout << meshlane::counters_to_table(counters.value());
  }
  return kExitOk;
}

int cleanup(const meshlane::Config& config) {
  int visited = meshlane::detach_workload_filters(config.workloads);
  if (visited > 0) {
    spdlog::info("cleanup: removed tc filters of {} workload(s)", visited);
  }
  auto report = meshlane::remove_datapath(config.daemon.bpffs_dir);
  if (!report) {
    spdlog::error("cleanup failed: {}", report.error().message());
    return kExitRuntime;
  }
  spdlog::info("cleanup: detached {} link(s), removed {} pin(s) under {}",
               report->links_detached, report->pins_removed, config.daemon.bpffs_dir);
  return kExitOk;
}

// SIGHUP: re-reads the config file and applies its workloads. A file that does not parse, or a
// workload whose namespace cannot be resolved, changes nothing.
void reload_workloads(const std::string& config_path, const meshlane::Config& running,
                      meshlane::WorkloadManager& workloads) {
  spdlog::info("SIGHUP: reloading workloads from {}", config_path);
  auto fresh = meshlane::load_config_file(config_path);
  if (!fresh) {
    spdlog::error("reload rejected, nothing changed: {}", fresh.error().message());
    return;
  }
  if (fresh->daemon.bpffs_dir != running.daemon.bpffs_dir ||
      fresh->daemon.cgroup != running.daemon.cgroup) {
    spdlog::warn("reload: [daemon] changes take effect only after a restart");
  }
  if (auto status = workloads.apply(fresh->workloads); !status) {
    spdlog::error("reload rejected, nothing changed: {}", status.error().message());
    return;
  }
  spdlog::info("reload: {} workload(s) applied", workloads.applied_count());
}

int run(const std::string& config_path, const meshlane::Config& config) {
  auto mount = meshlane::find_cgroup2_mount();
  if (!mount) {
    spdlog::error("{}", mount.error().message());
    return kExitRuntime;
  }
  auto cgroup = meshlane::resolve_cgroup_path(mount.value(), config.daemon.cgroup);
  if (!cgroup) {
    spdlog::error("{}", cgroup.error().message());
    return kExitConfig;
  }
  spdlog::info("cgroup v2 mounted at {}; attaching to {}", mount.value(), cgroup.value());

  auto datapath = meshlane::Datapath::start(config, cgroup.value());
  if (!datapath) {
    spdlog::error("{}", datapath.error().message());
    return kExitRuntime;
  }
  const auto& pins = datapath->pins();
  spdlog::info("maps {} under {}", datapath->maps_adopted() ? "adopted" : "created and pinned",
               pins.dir);
  for (const auto& attachment : datapath->attachments()) {
    spdlog::info("{}: {} (pin {})", attachment.what, meshlane::to_string(attachment.outcome),
                 attachment.pin);
  }
  spdlog::info("acceleration {}, sockhash capacity {}",
               config.acceleration.enabled ? "on" : "off",
               config.acceleration.sockhash_max_entries);
  meshlane::WorkloadManager workloads(config.daemon.bpffs_dir, datapath->tc_programs());
  if (auto status = workloads.apply(config.workloads); !status) {
    spdlog::error("{}", status.error().message());
    return kExitConfig;
  }
  spdlog::info("{} workload(s) applied", workloads.applied_count());
  spdlog::info("meshlaned ready");

  boost::asio::io_context io;
  boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  stop_signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (!error) {
      spdlog::info("received {}; exiting, the datapath stays pinned and attached "
                   "(meshlaned --cleanup removes it)",
                   strsignal(signal_number));
      io.stop();
    }
  });
  boost::asio::signal_set reload_signal(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_reload =
      [&](const boost::system::error_code& error, int) {
        if (error) {
          return;
        }
        reload_workloads(config_path, config, workloads);
        reload_signal.async_wait(on_reload);
      };
  reload_signal.async_wait(on_reload);
  io.run();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshlaned: node daemon that accelerates service-mesh TCP with eBPF"};
  std::string config_path = "config/meshlane.toml";
  bool do_cleanup = false;
  bool do_stats = false;
  std::string output = "text";
  app.add_option("-c,--config", config_path, "TOML configuration file")->capture_default_str();
  auto* cleanup_flag = app.add_flag(
      "--cleanup", do_cleanup,
      "detach and unpin everything meshlaned made under daemon.bpffs_dir, then exit");
  app.add_flag("--stats", do_stats, "print the datapath counters and exit")->excludes(cleanup_flag);
  app.add_option("-o,--output", output, "output format of --stats")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.set_version_flag("--version", std::string("meshlaned ") + MESHLANE_VERSION);
  CLI11_PARSE(app, argc, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("meshlaned"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto config = meshlane::load_config_file(config_path);
  if (!config) {
    std::cerr << "meshlaned: " << config.error().message() << '\n';
    return kExitConfig;
  }
  spdlog::set_level(spdlog::level::from_str(config->daemon.log_level));

  if (do_stats) {
    return print_stats(config.value(), output == "json");
  }
  if (do_cleanup) {
    return cleanup(config.value());
  }
  return run(config_path, config.value());
}
