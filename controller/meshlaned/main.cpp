// meshlaned: loads, pins and attaches the meshlane datapath and keeps it running.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
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
#include <optional>
#include <string>

#include "common/mounts.hpp"
#include "common/netns.hpp"
#include "config/config.hpp"
#include "control/server.hpp"
#include "daemon/control_api.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/counter_maps.hpp"
#include "datapath/datapath.hpp"
#include "datapath/event_ring.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/listener_scan.hpp"
#include "datapath/policy_map.hpp"
#include "datapath/sockhash_keys.hpp"
#include "datapath/stale_sweep.hpp"
#include "datapath/workload_maps.hpp"
#include "observe/connections.hpp"
#include "observe/counters.hpp"
#include "observe/metrics.hpp"
#include "observe/metrics_server.hpp"
#include "observe/monitor_hub.hpp"
#include "policy/compile.hpp"
#include "policy/registry.hpp"
#include "workloads/registry.hpp"

namespace {

constexpr std::chrono::seconds kDrainCheckInterval{2};
// How stale the workload names in monitor events may get (refreshing costs a netns open per
// workload).
constexpr std::chrono::seconds kWorkloadNamesMaxAge{1};

constexpr int kExitOk = 0;
constexpr int kExitConfig = 1;
constexpr int kExitRuntime = 2;

// Whether the workloads in force already have exactly these settings.
bool same_workloads(const std::vector<meshlane::WorkloadConfig>& wanted,
                    const std::vector<meshlane::ResolvedWorkload>& applied) {
  if (wanted.size() != applied.size()) {
    return false;
  }
  for (const auto& workload : wanted) {
    const auto it = std::find_if(applied.begin(), applied.end(), [&](const auto& resolved) {
      return resolved.config.name == workload.name;
    });
    if (it == applied.end() || it->config != workload) {
      return false;
    }
  }
  return true;
}

// Compiles `set` for the workloads in force and switches the kernel to it.
meshlane::Result<nlohmann::json> install_policies(
    const std::string& bpffs_dir, const std::vector<meshlane::Policy>& set,
    const std::vector<meshlane::ResolvedWorkload>& applied) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<meshlane::PolicyWorkload> workloads;
  workloads.reserve(applied.size());
  for (const auto& workload : applied) {
    workloads.push_back({workload.config, workload.netns_cookie});
  }
  auto compiled = meshlane::compile_policies(set, workloads);
  if (!compiled) {
    return compiled.error();
  }
  auto installed = meshlane::install_policy(bpffs_dir, compiled.value());
  if (!installed) {
    return installed.error();
  }
  const auto total = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  spdlog::info(
      "policy: {} policies, {} identities, {} pairs, {} kernel entries, in force after "
      "{} us",
      set.size(), compiled->identities, compiled->pairs, installed->entries, total.count());
  for (const std::string& name : compiled->unmatched_policies) {
    spdlog::warn("policy {} selects no workload now", name);
  }
  return nlohmann::json{
      {"policies", set.size()},      {"identities", compiled->identities},
      {"pairs", compiled->pairs},    {"kernel_entries", installed->entries},
      {"install_us", total.count()}, {"unmatched_policies", compiled->unmatched_policies}};
}

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
  // And every interface the daemon recorded filters on: workloads removed by a reload whose
  // filters were still draining are in no config, only in the record.
  const std::string record = meshlane::tc_record_path(config.daemon.state_dir);
  for (auto& recorded : meshlane::read_tc_record(record)) {
    workloads.push_back(std::move(recorded));
  }
  int visited = meshlane::detach_workload_filters(workloads);
  if (::unlink(record.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("cleanup: cannot remove {}: {}", record, std::strerror(errno));
  }
  if (visited > 0) {
    spdlog::info("cleanup: removed tc filters of {} workload(s)", visited);
  }
  // A socket file nobody serves goes too; anything else at that path is left alone.
  auto socket_file = meshlane::control::remove_stale_socket(config.daemon.socket);
  if (socket_file && *socket_file == meshlane::control::SocketFile::kRemoved) {
    spdlog::info("cleanup: removed the stale control socket {}", config.daemon.socket);
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

// "2026-12-05T06:25:45Z"
std::string utc_time(std::time_t when) {
  char text[32] = {};
  std::tm utc{};
  ::gmtime_r(&when, &utc);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
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
    nlohmann::json maps = nlohmann::json::object();
    for (const auto& decision : datapath_.map_plan()) {
      maps[decision.name] = meshlane::to_string(decision.action);
    }
    utsname host{};
    ::uname(&host);
    const std::string started = utc_time(started_wall_);
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
        {"maps", maps},
        {"splicing", datapath_.support().splicing},
        {"interception", datapath_.support().interception},
        {"cgroup", cgroup_path_},
        {"acceleration",
         {{"enabled", config_.acceleration.enabled},
          {"sockhash_max_entries", config_.acceleration.sockhash_max_entries}}},
        {"socket", config_.daemon.socket},
        {"control",
         {{"clients", control_server_ != nullptr ? control_server_->client_count() : 0},
          {"max_clients", control_server_ != nullptr ? control_server_->max_clients() : 0}}},
        {"state_dir", config_.daemon.state_dir},
        {"swept",
         {{"orig_dsts", swept_.orig_dsts},
          {"tc_flows", swept_.tc_flows},
          {"dead_tc_flows", swept_.dead_tc_flows}}},
        {"listener_scan", listener_scan_json()},
    };
  }

  // The outcome of a listener scan, for status "listener_scan".
  void add_listener_scan(const std::string& reason,
                         const meshlane::Result<meshlane::ListenerScanReport>& outcome) {
    ++listener_scans_;
    last_scan_reason_ = reason;
    last_scan_at_ = std::time(nullptr);
    if (outcome) {
      last_scan_ = outcome.value();
      last_scan_error_.clear();
      total_scanned_ += outcome->recorded;
    } else {
      last_scan_error_ = outcome.error().message();
    }
  }

  // Entries the periodic sweep removed since the daemon started (status "swept").
  void add_swept(const meshlane::SweepReport& report) {
    swept_.orig_dsts += report.orig_dsts;
    swept_.tc_flows += report.tc_flows;
    swept_.dead_tc_flows += report.dead_tc_flows;
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
    return meshlane::read_sockhash_keys(config_.daemon.bpffs_dir);
  }

  meshlane::Result<meshlane::Counters> workload_counters(std::uint64_t netns_cookie) override {
    return meshlane::read_workload_counters(config_.daemon.bpffs_dir, netns_cookie);
  }

  std::optional<std::uint64_t> netns_cookie(const std::string& netns_path) override {
    auto cookie = meshlane::netns_cookie_of(netns_path);
    if (!cookie) {
      return std::nullopt;
    }
    return cookie.value();
  }

  meshlane::control::ControlResult<std::shared_ptr<meshlane::monitor::Subscription>> subscribe(
      const meshlane::monitor::Filter& filter) override {
    if (hub_ == nullptr) {
      return meshlane::control::ControlError{
          meshlane::control::ErrorCode::kUnavailable,
          "the event ring buffer could not be opened at start (see the daemon log)"};
    }
    return hub_->subscribe(filter);
  }

  void set_hub(meshlane::monitor::Hub* hub) { hub_ = hub; }

  bool listening(std::uint64_t netns_cookie, std::uint16_t port) override {
    if (!listeners_) {
      // The listener filter, not the registry: an established connection's listener may have
      // closed since (a server that accepts once), and the connection is still what it was.
      auto opened = ListenerMap::open_pin(datapath_.pins().map(ML_LISTENERS_MAP_NAME));
      if (!opened) {
        return true;  // cannot tell: classify by the settings alone
      }
      listeners_.emplace(std::move(opened.value()));
    }
    return listeners_->lookup(ml_listener_key{netns_cookie, port, 0, 0}).has_value();
  }

 private:
  using ListenerMap = meshlane::TypedMap<ml_listener_key, std::uint8_t>;
  meshlane::monitor::Hub* hub_ = nullptr;
  std::optional<ListenerMap> listeners_;
  const meshlane::Config& config_;
  const meshlane::Datapath& datapath_;
  std::string cgroup_path_;
  std::vector<meshlane::KernelFeature> features_;
  std::chrono::steady_clock::time_point started_steady_;
  std::time_t started_wall_;
  const meshlane::control::Server* control_server_ = nullptr;
  meshlane::SweepReport swept_;
  std::size_t listener_scans_ = 0;
  std::size_t total_scanned_ = 0;
  std::optional<meshlane::ListenerScanReport> last_scan_;
  std::string last_scan_reason_;
  std::string last_scan_error_;
  std::time_t last_scan_at_ = 0;

  nlohmann::json listener_scan_json() const {
    nlohmann::json scan = {{"available", datapath_.listener_scan_unavailable().empty() &&
                                             datapath_.support().splicing},
                           {"scans", listener_scans_},
                           {"recorded_total", total_scanned_}};
    if (!datapath_.listener_scan_unavailable().empty()) {
      scan["unavailable"] = datapath_.listener_scan_unavailable();
    }
    if (listener_scans_ == 0) {
      return scan;
    }
    nlohmann::json last = {{"reason", last_scan_reason_}, {"at", utc_time(last_scan_at_)}};
    if (!last_scan_error_.empty()) {
      last["error"] = last_scan_error_;
    } else if (last_scan_) {
      last["listeners"] = last_scan_->listeners;
      last["recorded"] = last_scan_->recorded;
      last["recorded_nonblocking"] = last_scan_->recorded_nonblocking;
      last["recorded_blocking"] = last_scan_->recorded_blocking;
      last["already_known"] = last_scan_->already_known;
      last["registered"] = last_scan_->registered;
      last["registry_full"] = last_scan_->registry_full;
      last["complete"] = last_scan_->complete;
      last["elapsed_us"] = last_scan_->elapsed.count();
    }
    scan["last"] = std::move(last);
    return scan;
  }
};

// The workloads monitor events are attributed to: by netns cookie and address, rebuilt when
// older than kWorkloadNamesMaxAge and events arrive.
class WorkloadNames {
 public:
  WorkloadNames(const meshlane::control::WorkloadRegistry& workloads,
                meshlane::control::ControlBackend& backend)
      : workloads_(workloads), backend_(backend) {}

  const meshlane::control::WorkloadIndex& index() {
    const auto now = std::chrono::steady_clock::now();
    if (!built_ || now - built_at_ >= kWorkloadNamesMaxAge) {
      index_ = {};
      for (const auto& entry : workloads_.list()) {
        index_.add(*entry.workload, backend_.netns_cookie(entry.workload->netns).value_or(0));
      }
      built_ = true;
      built_at_ = now;
    }
    return index_;
  }

 private:
  const meshlane::control::WorkloadRegistry& workloads_;
  meshlane::control::ControlBackend& backend_;
  meshlane::control::WorkloadIndex index_;
  std::chrono::steady_clock::time_point built_at_;
  bool built_ = false;
};

std::string type_list(std::uint64_t mask) {
  std::string names;
  for (const std::string& name : meshlane::monitor::type_names()) {
    if ((mask & meshlane::monitor::type_bit(*meshlane::monitor::type_from_name(name))) != 0) {
      names += (names.empty() ? "" : ",") + name;
    }
  }
  return names.empty() ? "none" : names;
}

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
  // Node-wide, then one labelled set per workload (its counters since it was applied).
  std::vector<meshlane::metrics::CounterSet> counter_sets = {{{}, counters.value()}};
  for (const auto& entry : workloads.list()) {
    const std::optional<std::uint64_t> cookie = backend.netns_cookie(entry.workload->netns);
    if (!cookie) {
      continue;
    }
    if (auto own = backend.workload_counters(*cookie)) {
      counter_sets.push_back({{{"workload", entry.workload->name}}, own.value()});
    }
  }
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
  if (fresh->metrics != running.metrics) {
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
  std::vector<meshlane::KernelFeature> features = meshlane::probe_all_features();
  auto support = meshlane::decide_features(features, config.daemon.on_missing_feature);
  if (!support) {
    spdlog::error("{}", support.error().message());
    return kExitRuntime;
  }
  if (!support->splicing || !support->interception) {
    spdlog::warn("degraded (daemon.on_missing_feature = \"degrade\"): {}{}",
                 support->splicing ? "" : "splicing is off; ",
                 support->interception ? "" : "interception is off; ");
  }
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

  auto saved_policies = meshlane::control::load_policies(config.daemon.state_dir);
  if (!saved_policies) {
    spdlog::error("{}", saved_policies.error().message());
    return kExitConfig;
  }

  // Load first, fill the workload maps and tc filters, attach the cgroup programs last: a new
  // program never runs before the maps it reads are filled.
  auto datapath = meshlane::Datapath::load(config, support.value());
  if (!datapath) {
    spdlog::error("{}", datapath.error().message());
    return kExitRuntime;
  }
  const auto& pins = datapath->pins();
  spdlog::info("maps {} under {}", datapath->maps_adopted() ? "adopted" : "created and pinned",
               pins.dir);
  for (const auto& decision : datapath->map_plan()) {
    spdlog::debug("map {}: {}", decision.name, meshlane::to_string(decision.action));
  }
  if (auto status = meshlane::control::ensure_state_dir(config.daemon.state_dir); !status) {
    spdlog::error("{}", status.error().message());
    return kExitRuntime;
  }
  meshlane::WorkloadManager manager(config.daemon.bpffs_dir, datapath->tc_programs(),
                                    meshlane::tc_record_path(config.daemon.state_dir));
  // Until the first workload apply recompiles it, the policy pinned by an earlier run stays in
  // force, so a restart never opens what the policy closes. Policies also carry interception
  // and acceleration settings for the workloads they select (apply_policy_overrides), so the
  // workloads are applied with the policies' overrides on top.
  meshlane::control::WorkloadRegistry* workload_registry = nullptr;
  // Set once the datapath is attached: records the modes of listeners opened before it, at
  // start and whenever workloads change (a pod added with its sidecar already listening).
  std::function<void(const std::string&)> scan_listeners = [](const std::string&) {};
  auto install_authorization = [&](const std::vector<meshlane::Policy>& set) {
    return install_policies(config.daemon.bpffs_dir, set, manager.applied());
  };
  meshlane::control::PolicyRegistry policies(
      [&](const std::vector<meshlane::Policy>& set) -> meshlane::Result<nlohmann::json> {
        if (workload_registry != nullptr) {
          const auto effective =
              meshlane::apply_policy_overrides(workload_registry->combined(), set);
          if (!same_workloads(effective, manager.applied())) {
            if (auto status = manager.apply(effective); !status) {
              return status.error();
            }
          }
        }
        return install_authorization(set);
      },
      [&config](const std::vector<meshlane::Policy>& set) {
        return meshlane::control::save_policies(config.daemon.state_dir, set);
      },
      std::move(saved_policies.value()));
  meshlane::control::WorkloadRegistry workloads(
      [&](const std::vector<meshlane::WorkloadConfig>& desired) {
        const std::vector<meshlane::Policy> set = policies.list();
        if (auto status = manager.apply(meshlane::apply_policy_overrides(desired, set)); !status) {
          return status;
        }
        // Policies name workloads and select them by label: recompile for the new set.
        auto report = install_authorization(set);
        if (!report) {
          spdlog::error(
              "policy: cannot recompile for the new workloads (the previous policy "
              "stays in force): {}",
              report.error().message());
        }
        scan_listeners("workloads changed");
        return meshlane::Status{};
      },
      [&config](const std::vector<meshlane::WorkloadConfig>& live) {
        return meshlane::control::save_live_workloads(config.daemon.state_dir, live);
      });
  workload_registry = &workloads;
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
  if (auto status = datapath->attach(cgroup.value()); !status) {
    spdlog::error("{}", status.error().message());
    return kExitRuntime;
  }
  for (const auto& attachment : datapath->attachments()) {
    spdlog::info("{}: {} (pin {})", attachment.what, meshlane::to_string(attachment.outcome),
                 attachment.pin);
  }
  spdlog::info("acceleration {}, sockhash capacity {}", config.acceleration.enabled ? "on" : "off",
               config.acceleration.sockhash_max_entries);

  boost::asio::io_context io;
  DaemonBackend backend(config, datapath.value(), cgroup.value(), std::move(features));
  if (datapath->support().splicing && datapath->listener_scan_unavailable().empty()) {
    scan_listeners = [&datapath, &backend](const std::string& reason) {
      auto report = datapath->scan_listeners();
      if (report) {
        spdlog::info("listener scan ({}): {}", reason, meshlane::describe(report.value()));
      } else {
        spdlog::warn("listener scan ({}) failed: {}", reason, report.error().message());
      }
      backend.add_listener_scan(reason, report);
    };
    scan_listeners("start");
  }

  // meshlanectl monitor: the ring buffer is read on this io_context; the datapath emits only
  // while a client is subscribed (the hub sets the gate to the union of the clients' types).
  std::unique_ptr<meshlane::EventPump> pump;
  meshlane::monitor::Hub hub([&pump](std::uint64_t mask) {
    if (!pump) {
      return;
    }
    if (auto status = pump->gate().set_mask(mask); !status) {
      spdlog::warn("monitor: cannot set the event gate: {}", status.error().message());
      return;
    }
    spdlog::info("monitor: datapath now emits {}", type_list(mask));
  });
  WorkloadNames names(workloads, backend);
  auto started_pump = meshlane::EventPump::start(
      io, pins,
      [&hub, &names](const ml_event& event, std::int64_t unix_ns) {
        hub.publish(meshlane::monitor::make_event(event, unix_ns, names.index()));
      },
      [&hub](std::uint64_t lost) {
        spdlog::warn("monitor: the datapath dropped {} event(s): its ring buffer was full", lost);
        hub.publish_kernel_drops(lost);
      });
  if (started_pump) {
    pump = std::move(started_pump.value());
    backend.set_hub(&hub);
  } else {
    spdlog::warn("monitor: unavailable: {}", started_pump.error().message());
  }
  meshlane::control::ControlApi api(backend, workloads, {*socket_group, *socket_group}, &policies);
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

  // Handshakes that never completed leave original destinations and tc flows behind in maps
  // that refuse (not evict) when full: remove them once they are old.
  // Steered flows whose end tc never saw are found by looking for their socket in the pod.
  const meshlane::SweepTiming sweep_timing = meshlane::sweep_timing();
  auto last_dead_flow_check = std::chrono::steady_clock::now();
  boost::asio::steady_timer sweep_timer(io);
  std::function<void(const boost::system::error_code&)> on_sweep_tick =
      [&](const boost::system::error_code& error) {
        if (error) {
          return;
        }
        const std::uint64_t now_ns = meshlane::datapath_now_ns();
        auto swept = meshlane::sweep_stale_entries(pins, now_ns);
        if (!swept) {
          spdlog::warn("sweep of stale original destinations and tc flows failed: {}",
                       swept.error().message());
        } else {
          if (std::chrono::steady_clock::now() - last_dead_flow_check >=
              sweep_timing.dead_flow_interval) {
            last_dead_flow_check = std::chrono::steady_clock::now();
            auto dead = meshlane::sweep_dead_tc_flows(
                pins, now_ns, sweep_timing.tc_flow_check_after,
                [&manager](const std::uint8_t* ip6) { return manager.netns_of_address(ip6); });
            if (!dead) {
              spdlog::warn("check of steered tc flows against the pods' sockets failed: {}",
                           dead.error().message());
            } else {
              swept->dead_tc_flows = dead.value();
            }
          }
          if (swept->orig_dsts > 0 || swept->tc_flows > 0 || swept->dead_tc_flows > 0) {
            spdlog::debug(
                "swept {} stale original destination(s), {} tc flow(s) left at SYN and {} tc "
                "flow(s) whose socket is gone",
                swept->orig_dsts, swept->tc_flows, swept->dead_tc_flows);
          }
          backend.add_swept(swept.value());
        }
        sweep_timer.expires_after(sweep_timing.interval);
        sweep_timer.async_wait(on_sweep_tick);
      };
  sweep_timer.expires_after(sweep_timing.interval);
  sweep_timer.async_wait(on_sweep_tick);
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
