// meshlaned: loads, pins and attaches the meshlane datapath and keeps it running.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <exception>
#include <functional>
#include <iostream>

#include "meshlane/config.hpp"
#include "meshlane/control_api.hpp"
#include "meshlane/control_conns.hpp"
#include "meshlane/control_server.hpp"
#include "meshlane/control_workloads.hpp"
#include "meshlane/counters.hpp"
#include "meshlane/datapath.hpp"
#include "meshlane/kernel_features.hpp"
#include "meshlane/metrics.hpp"
#include "meshlane/metrics_server.hpp"
#include "meshlane/mounts.hpp"
#include "meshlane/netns.hpp"
#include "meshlane/workloads.hpp"

namespace {

constexpr std::chrono::seconds kDrainCheckInterval{2};

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
  // The live workloads' filters too; their state file stays, so a restarted daemon brings them
  // back.
  std::vector<meshlane::WorkloadConfig> workloads = config.workloads;
  if (auto live = meshlane::control::load_live_workloads(config.daemon.state_dir)) {
    workloads.insert(workloads.end(), live->begin(), live->end());
  } else {
    spdlog::warn("cleanup: {}", live.error().message());
  }
  int visited = meshlane::detach_workload_filters(workloads);
  if (visited > 0) {
    spdlog::info("cleanup: removed tc filters of {} workload(s)", visited);
  }
  auto report = meshlane::remove_datapath(config.daemon.bpffs_dir);
  if (!report) {
    spdlog::error("cleanup failed: {}", report.error().message());
    return kExitRuntime;
  }
  spdlog::info("cleanup: detached {} link(s), removed {} pin(s) under {}", report->links_detached,
               report->pins_removed, config.daemon.bpffs_dir);
  return kExitOk;
}

// What the control methods read from the running daemon.
class DaemonBackend final : public meshlane::control::ControlBackend {
 public:
  DaemonBackend(const meshlane::Config& config, const meshlane::Datapath& datapath,
                std::string cgroup_path, std::vector<meshlane::KernelFeature> features)
      : config_(config),
        datapath_(datapath),
        cgroup_path_(std::move(cgroup_path)),
        features_(std::move(features)),
        started_steady_(std::chrono::steady_clock::now()),
        started_wall_(std::time(nullptr)) {}

  nlohmann::json status() override {
    nlohmann::json features = nlohmann::json::array();
    for (const auto& feature : features_) {
      features.push_back({{"name", feature.name},
                          {"needed_for", feature.needed_for},
                          {"present", feature.present}});
    }
    nlohmann::json attachments = nlohmann::json::array();
    for (const auto& attachment : datapath_.attachments()) {
      attachments.push_back({{"what", attachment.what},
                             {"pin", attachment.pin},
                             {"outcome", meshlane::to_string(attachment.outcome)}});
    }
    utsname host{};
    ::uname(&host);
    char started[32] = {};
    std::tm utc{};
    ::gmtime_r(&started_wall_, &utc);
    std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(this->uptime());
    return {
        {"version", MESHLANE_VERSION},
        {"pid", ::getpid()},
        {"started_at", started},
        {"uptime_seconds", uptime.count()},
        {"kernel_release", host.release},
        {"kernel_features", features},
        {"attachments", attachments},
        {"bpffs_dir", config_.daemon.bpffs_dir},
        {"maps_adopted", datapath_.maps_adopted()},
        {"cgroup", cgroup_path_},
        {"acceleration",
         {{"enabled", config_.acceleration.enabled},
          {"sockhash_max_entries", config_.acceleration.sockhash_max_entries}}},
        {"socket", config_.daemon.socket},
        {"control",
         {{"clients", control_server_ != nullptr ? control_server_->client_count() : 0},
          {"max_clients", control_server_ != nullptr ? control_server_->max_clients() : 0}}},
        {"state_dir", config_.daemon.state_dir},
    };
  }

  // The control socket's server, for its client counts in status (set once it is started).
  void set_control_server(const meshlane::control::Server* server) { control_server_ = server; }

  [[nodiscard]] std::chrono::steady_clock::duration uptime() const {
    return std::chrono::steady_clock::now() - started_steady_;
  }

  meshlane::Result<meshlane::Counters> counters() override {
    return meshlane::read_counters(config_.daemon.bpffs_dir);
  }

  meshlane::Result<std::vector<ml_sock_key>> sockhash_keys() override {
    return meshlane::control::read_sockhash_keys(config_.daemon.bpffs_dir);
  }

  std::optional<std::uint64_t> netns_cookie(const std::string& netns_path) override {
    auto cookie = meshlane::netns_cookie_of(netns_path);
    if (!cookie) {
      return std::nullopt;
    }
    return cookie.value();
  }

 private:
  const meshlane::Config& config_;
  const meshlane::Datapath& datapath_;
  std::string cgroup_path_;
  std::vector<meshlane::KernelFeature> features_;
  std::chrono::steady_clock::time_point started_steady_;
  std::time_t started_wall_;
  const meshlane::control::Server* control_server_ = nullptr;
};

// File descriptors the daemon needs besides its clients: BPF maps, programs and links, netns
// files, the listening sockets, logs, and the metrics endpoint's connections.
constexpr rlim_t kReservedFileDescriptors = 128;

// Every control client holds a file descriptor, and the usual soft RLIMIT_NOFILE (1024) is below
// the control socket's client limit: raises the soft limit to the hard one. Returns how many
// control clients fit in what the daemon got (the client limit when nothing is short).
std::size_t raise_file_limit(std::size_t wanted_clients) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("cannot read RLIMIT_NOFILE ({}); keeping {} control clients", std::strerror(errno),
                 wanted_clients);
    return wanted_clients;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t previous = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
      spdlog::info("open file limit (RLIMIT_NOFILE) raised from {} to {}", previous,
                   limit.rlim_cur);
    } else {
      spdlog::warn("cannot raise the open file limit (RLIMIT_NOFILE) from {} to {}: {}", previous,
                   limit.rlim_max, std::strerror(errno));
      limit.rlim_cur = previous;
    }
  } else {
    spdlog::info("open file limit (RLIMIT_NOFILE) {}", limit.rlim_cur);
  }
  const rlim_t room =
      limit.rlim_cur > kReservedFileDescriptors ? limit.rlim_cur - kReservedFileDescriptors : 1;
  if (room < wanted_clients) {
    spdlog::warn(
        "the open file limit {} leaves room for {} control clients instead of {}; raise "
        "LimitNOFILE (systemd) or `ulimit -Hn` for meshlaned",
        limit.rlim_cur, room, wanted_clients);
    return static_cast<std::size_t>(room);
  }
  return wanted_clients;
}

// The page GET /metrics serves: the datapath counters node-wide, then the daemon's gauges.
meshlane::Result<std::string> render_metrics(DaemonBackend& backend,
                                             const meshlane::control::WorkloadRegistry& workloads,
                                             const meshlane::control::Server& control) {
  auto counters = backend.counters();
  if (!counters) {
    return counters.error();
  }
  const std::vector<meshlane::metrics::CounterSet> counter_sets = {{{}, counters.value()}};
  const std::string workloads_help = "Workloads meshlane intercepts, by where they come from.";
  const std::vector<meshlane::metrics::GaugeSample> gauges = {
      {"build_info", "meshlaned's version (always 1).", {{"version", MESHLANE_VERSION}}, 1},
      {"uptime_seconds",
       "Seconds since meshlaned started.",
       {},
       std::chrono::duration<double>(backend.uptime()).count()},
      {"workloads",
       workloads_help,
       {{"source", "config"}},
       static_cast<double>(workloads.config_count())},
      {"workloads",
       workloads_help,
       {{"source", "live"}},
       static_cast<double>(workloads.live_count())},
      {"control_clients",
       "Clients connected to the control socket.",
       {},
       static_cast<double>(control.client_count())},
  };
  return meshlane::metrics::format_prometheus(counter_sets, gauges);
}

// SIGHUP: re-reads the config file and applies its workloads with the live ones. A file that
// does not parse, or a workload whose namespace cannot be resolved, changes nothing.
void reload_workloads(const std::string& config_path, const meshlane::Config& running,
                      meshlane::control::WorkloadRegistry& workloads) {
  spdlog::info("SIGHUP: reloading workloads from {}", config_path);
  auto fresh = meshlane::load_config_file(config_path);
  if (!fresh) {
    spdlog::error("reload rejected, nothing changed: {}", fresh.error().message());
    return;
  }
  const auto& now = fresh->daemon;
  const auto& was = running.daemon;
  if (now.bpffs_dir != was.bpffs_dir || now.cgroup != was.cgroup || now.socket != was.socket ||
      now.socket_mode != was.socket_mode || now.socket_group != was.socket_group ||
      now.state_dir != was.state_dir) {
    spdlog::warn("reload: [daemon] changes take effect only after a restart");
  }
  if (fresh->metrics.listen != running.metrics.listen ||
      fresh->metrics.allow_non_loopback != running.metrics.allow_non_loopback) {
    spdlog::warn("reload: [metrics] changes take effect only after a restart");
  }
  if (auto status = workloads.reload(fresh->workloads); !status) {
    spdlog::error("reload rejected, nothing changed: {}", status.error().message());
    return;
  }
  spdlog::info("reload: {} workload(s) applied ({} from the config file, {} live)",
               workloads.config_count() + workloads.live_count(), workloads.config_count(),
               workloads.live_count());
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

  const std::size_t max_clients = raise_file_limit(meshlane::control::ServerOptions{}.max_clients);
  std::vector<meshlane::KernelFeature> features = meshlane::probe_splice_features();
  auto socket_group = meshlane::control::resolve_socket_group(config.daemon.socket_group);
  if (!socket_group) {
    spdlog::error("{}", socket_group.error().message());
    return kExitConfig;
  }
  auto saved_live = meshlane::control::load_live_workloads(config.daemon.state_dir);
  if (!saved_live) {
    spdlog::error("{}", saved_live.error().message());
    return kExitConfig;
  }

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
  spdlog::info("acceleration {}, sockhash capacity {}", config.acceleration.enabled ? "on" : "off",
               config.acceleration.sockhash_max_entries);
  meshlane::WorkloadManager manager(config.daemon.bpffs_dir, datapath->tc_programs());
  meshlane::control::WorkloadRegistry workloads(
      [&manager](const std::vector<meshlane::WorkloadConfig>& desired) {
        return manager.apply(desired);
      },
      [&config](const std::vector<meshlane::WorkloadConfig>& live) {
        return meshlane::control::save_live_workloads(config.daemon.state_dir, live);
      });
  auto resolvable = [](const meshlane::WorkloadConfig& workload) -> meshlane::Status {
    auto resolved = meshlane::resolve_workloads({workload});
    if (!resolved) {
      return resolved.error();
    }
    return {};
  };
  if (auto status = workloads.start(config.workloads, std::move(saved_live.value()), resolvable);
      !status) {
    spdlog::error("{}", status.error().message());
    return kExitConfig;
  }
  spdlog::info("{} workload(s) applied ({} from the config file, {} live from {})",
               manager.applied_count(), workloads.config_count(), workloads.live_count(),
               meshlane::control::workload_state_path(config.daemon.state_dir));

  boost::asio::io_context io;
  DaemonBackend backend(config, datapath.value(), cgroup.value(), std::move(features));
  meshlane::control::ControlApi api(backend, workloads, {*socket_group, *socket_group});
  meshlane::control::ServerOptions server_options;
  server_options.path = config.daemon.socket;
  server_options.mode = config.daemon.socket_mode;
  server_options.group = *socket_group;
  server_options.max_clients = max_clients;
  auto server = meshlane::control::Server::start(
      io, server_options,
      [&api](const meshlane::control::PeerCredentials& peer, std::string_view line) {
        return api.handle_line(peer, line);
      });
  if (!server) {
    spdlog::error("{}", server.error().message());
    return kExitRuntime;
  }
  backend.set_control_server(server.value().get());
  spdlog::info("control socket {} (mode {:04o}, group {}, up to {} clients)", config.daemon.socket,
               config.daemon.socket_mode,
               config.daemon.socket_group.empty() ? "root only" : config.daemon.socket_group,
               max_clients);
  std::unique_ptr<meshlane::metrics::Server> metrics_server;
  if (const auto& listen = config.metrics.listen_address) {
    if (!meshlane::is_loopback(listen->address)) {
      spdlog::warn(
          "metrics: serving on {}, which is not loopback: anyone who can reach it reads the "
          "counters (metrics.allow_non_loopback = true)",
          meshlane::to_string(*listen));
    }
    meshlane::metrics::ServerOptions metrics_options;
    metrics_options.listen = *listen;
    auto started = meshlane::metrics::Server::start(
        io, metrics_options, [&backend, &workloads, &control = *server.value()] {
          return render_metrics(backend, workloads, control);
        });
    if (!started) {
      spdlog::error("{}", started.error().message());
      return kExitRuntime;
    }
    metrics_server = std::move(started.value());
    spdlog::info("metrics: http://{}/metrics", meshlane::to_string(*listen));
  }
  spdlog::info("meshlaned ready");

  boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  stop_signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (!error) {
      spdlog::info(
          "received {}; exiting, the datapath stays pinned and attached "
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

  // Removed workloads keep their tc filters until their steered connections end.
  boost::asio::steady_timer drain_timer(io);
  std::function<void(const boost::system::error_code&)> on_drain_tick =
      [&](const boost::system::error_code& error) {
        if (error) {
          return;
        }
        manager.reap_draining();
        drain_timer.expires_after(kDrainCheckInterval);
        drain_timer.async_wait(on_drain_tick);
      };
  drain_timer.expires_after(kDrainCheckInterval);
  drain_timer.async_wait(on_drain_tick);
  io.run();
  metrics_server.reset();
  server->reset();  // removes the socket file before the daemon exits
  return kExitOk;
}

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
    return print_stats(config.value(), output == "json");
  }
  if (do_cleanup) {
    return cleanup(config.value());
  }
  return run(config_path, config.value());
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
