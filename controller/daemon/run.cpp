#include "daemon/run.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/instance_lock.hpp"
#include "common/mounts.hpp"
#include "common/netns.hpp"
#include "common/unique_fd.hpp"
#include "config/config_changes.hpp"
#include "control/server.hpp"
#include "daemon/backend.hpp"
#include "daemon/cni_resync.hpp"
#include "daemon/control_api.hpp"
#include "daemon/every.hpp"
#include "daemon/every_off_thread.hpp"
#include "daemon/reconciler.hpp"
#include "datapath/counter_maps.hpp"
#include "datapath/datapath.hpp"
#include "datapath/event_ring.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/listener_scan.hpp"
#include "datapath/map_occupancy.hpp"
#include "datapath/stale_sweep.hpp"
#include "datapath/test_hooks.hpp"
#include "datapath/workload_maps.hpp"
#include "observe/counters.hpp"
#include "observe/metrics.hpp"
#include "observe/metrics_server.hpp"
#include "observe/monitor_hub.hpp"

namespace meshlane::daemon {

namespace {

constexpr std::chrono::seconds kDrainCheckInterval{2};
// How often the sized maps' entries are counted for status and the metrics: a count walks every
// key (one syscall each) on the I/O thread, so it runs on this clock rather than per request,
// and a burst of scrapes or status calls costs nothing more.
constexpr std::chrono::seconds kMapOccupancyInterval{5};
// How stale the workload names in monitor events may get (refreshing costs a netns open per
// workload).
constexpr std::chrono::seconds kWorkloadNamesMaxAge{1};

// The workloads monitor events are attributed to: by netns cookie and address, rebuilt when
// older than kWorkloadNamesMaxAge and events arrive.
class WorkloadNames {
 public:
  WorkloadNames(const meshlane::workloads::WorkloadRegistry& workloads,
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
  const meshlane::workloads::WorkloadRegistry& workloads_;
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

// The page GET /metrics serves: the datapath counters node-wide and per workload, then the
// daemon's gauges. Everything here is read from maps and memory: no namespace is entered (the
// workloads' netns cookies are the ones the manager applied) and no map is walked (the
// occupancy is the periodic count's), so a scrape costs the I/O thread a few map lookups.
meshlane::Result<std::string> render_metrics(DaemonBackend& backend,
                                             const meshlane::workloads::WorkloadRegistry& workloads,
                                             const meshlane::WorkloadManager& manager,
                                             const meshlane::policy::PolicyRegistry& policies,
                                             const meshlane::control::Server& control) {
  auto counters = backend.counters();
  if (!counters) {
    return counters.error();
  }
  // Each workload in force: its counters since it was applied (keyed by the cookie it was
  // applied with, which is what the programs count by).
  std::vector<meshlane::metrics::CounterSet> workload_sets;
  for (const meshlane::ResolvedWorkload& workload : manager.applied()) {
    if (auto own = backend.workload_counters(workload.netns_cookie)) {
      workload_sets.push_back({{{"workload", workload.config.name}}, own.value()});
    }
  }
  using meshlane::metrics::GaugeSample;
  const std::string workloads_help = "Workloads meshlane intercepts, by where they come from.";
  const auto& support = backend.datapath().support();
  std::vector<GaugeSample> gauges = {
      {"build_info", "meshlaned's version (always 1).", {{"version", MESHLANE_VERSION}}, 1},
      {"start_time_seconds",
       "When meshlaned started, in seconds since the Unix epoch.",
       {},
       static_cast<double>(backend.started_at())},
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
      {"degraded",
       "1 when a kernel feature is missing and meshlaned runs without splicing or interception "
       "(daemon.on_missing_feature = \"degrade\"), else 0.",
       {},
       support.splicing && support.interception ? 0.0 : 1.0},
      {"datapath_feature_enabled",
       "Whether a part of the datapath runs (1) or is off because the kernel lacks a feature "
       "(0).",
       {{"feature", "splicing"}},
       support.splicing ? 1.0 : 0.0},
      {"datapath_feature_enabled",
       "Whether a part of the datapath runs (1) or is off because the kernel lacks a feature "
       "(0).",
       {{"feature", "interception"}},
       support.interception ? 1.0 : 0.0},
  };
  for (const meshlane::KernelFeature& feature : backend.kernel_features()) {
    gauges.push_back({"kernel_feature_present",
                      "Kernel features the datapath uses, probed at start: 1 present, 0 missing.",
                      {{"feature", feature.name}, {"needed_for", feature.needed_for}},
                      feature.present ? 1.0 : 0.0});
  }
  gauges.push_back({"last_reload_success",
                    "Whether the last SIGHUP reload of the config file applied (1) or was "
                    "rejected (0); 1 before any reload.",
                    {},
                    backend.last_reload_applied() ? 1.0 : 0.0});
  gauges.push_back({"last_reload_timestamp_seconds",
                    "When the config file was last read (start or SIGHUP), in seconds since the "
                    "Unix epoch.",
                    {},
                    static_cast<double>(backend.last_reload_at())});
  gauges.push_back({"policies",
                    "L4 policies in force (applied and saved).",
                    {},
                    static_cast<double>(policies.size())});
  gauges.push_back({"policies_enforced",
                    "1 when the programs that enforce L4 policies run, 0 when interception is "
                    "off (degraded) and policies are saved but not enforced.",
                    {},
                    support.interception ? 1.0 : 0.0});
  for (const meshlane::MapOccupancy& map : backend.map_occupancy()) {
    if (!map.error.empty()) {
      continue;  // not pinned (e.g. removed under the daemon): no value rather than a 0
    }
    gauges.push_back({"map_entries",
                      "Entries in a datapath map, counted periodically by the daemon "
                      "(docs/metrics.md).",
                      {{"map", map.map}},
                      static_cast<double>(map.entries)});
  }
  for (const meshlane::MapOccupancy& map : backend.map_occupancy()) {
    if (!map.error.empty()) {
      continue;
    }
    gauges.push_back({"map_capacity",
                      "Capacity (max_entries) of a datapath map, as the kernel reports it.",
                      {{"map", map.map}},
                      static_cast<double>(map.capacity)});
  }
  return meshlane::metrics::format_prometheus(counters.value(), workload_sets, gauges);
}

// SIGHUP: re-reads the config file and applies its workloads with the live ones. A file that
// does not parse, or a workload whose namespace cannot be resolved, changes nothing.
// Of the keys outside [[workload]], a reload applies only the log level; the others are given to
// the programs at load time or shape what the daemon opened at start. Say which ones changed, so
// that an operator does not believe them applied. `running` keeps its values: status and the
// next reload compare with what is in force.
void report_restart_only_changes(const meshlane::Config& running, const meshlane::Config& fresh) {
  std::string later;
  for (const std::string& key : meshlane::changed_keys(running, fresh)) {
    if (meshlane::applied_on_reload(key)) {
      spdlog::set_level(spdlog::level::from_str(fresh.daemon.log_level));
      spdlog::info("reload: {} is now {}", key, fresh.daemon.log_level);
      continue;
    }
    later += (later.empty() ? "" : ", ") + key;
  }
  if (!later.empty()) {
    spdlog::warn("reload: not applied, they take effect at the next start (restart meshlaned): {}",
                 later);
  }
}

// Returns whether the reload applied.
bool reload_workloads(const std::string& config_path, const meshlane::Config& running,
                      meshlane::workloads::WorkloadRegistry& workloads) {
  // Audit lines like the control socket's (control_api.cpp). Asio's signal_set does not say
  // who sent the signal; only root (or meshlaned's own uid) can send it (docs/security.md).
  spdlog::info("SIGHUP: reloading workloads from {}", config_path);
  auto fresh = meshlane::load_config_file(config_path);
  if (!fresh) {
    spdlog::error("reload rejected, nothing changed: {}", fresh.error().message());
    spdlog::info("audit: SIGHUP reload of {}: failed, nothing changed", config_path);
    return false;
  }
  report_restart_only_changes(running, fresh.value());
  if (auto status = workloads.reload(fresh->workloads); !status) {
    spdlog::error("reload rejected, nothing changed: {}", status.error().message());
    spdlog::info("audit: SIGHUP reload of {}: failed, nothing changed", config_path);
    return false;
  }
  spdlog::info("reload: {} workload(s) applied ({} from the config file, {} live)",
               workloads.config_count() + workloads.live_count(), workloads.config_count(),
               workloads.live_count());
  std::string names;
  for (const auto& workload : fresh->workloads) {
    names += (names.empty() ? "" : ", ") + workload.name;
  }
  spdlog::info("audit: SIGHUP reload of {}: applied, config workloads now [{}]", config_path,
               names);
  return true;
}

// Before the daemon (or --cleanup) touches anything: the directories whose files it acts on as
// root must be root's alone, and the instance lock must be ours (docs/security.md). The
// socket's directory is checked when it exists (the control server creates it, 0755, when it
// does not); the state_dir is created (0700) when missing. With create_state_dir false
// (--cleanup), a missing state_dir or bpffs_dir is left alone: no daemon runs with it. On
// failure exit_code says which kind of failure it was.
meshlane::Result<meshlane::InstanceLock> claim_instance(const meshlane::Config& config,
                                                        bool create_state_dir, int& exit_code) {
  exit_code = kExitConfig;
  const std::string socket_dir = std::filesystem::path(config.daemon.socket).parent_path().string();
  std::error_code ec;
  if (!socket_dir.empty() && std::filesystem::exists(socket_dir, ec)) {
    if (auto status =
            meshlane::check_private_directory(socket_dir, "the directory of daemon.socket");
        !status) {
      return status.error();
    }
  }
  std::string state_dir = config.daemon.state_dir;
  if (create_state_dir || std::filesystem::exists(state_dir, ec)) {
    if (auto status = meshlane::workloads::ensure_state_dir(state_dir); !status) {
      return status.error();
    }
  } else {
    state_dir.clear();
  }
  exit_code = kExitRuntime;
  // The daemon creates the bpffs directory here so that it is locked from the first start on.
  return meshlane::InstanceLock::acquire(state_dir, config.daemon.bpffs_dir,
                                         /*create_bpffs_dir=*/create_state_dir);
}

}  // namespace

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

namespace {

int print_check(const std::string& config_path, const std::vector<std::string>& problems,
                std::size_t workload_count, bool json) {
  if (json) {
    nlohmann::json out = {
        {"config", config_path}, {"ok", problems.empty()}, {"problems", problems}};
    if (problems.empty()) {
      out["workloads"] = workload_count;
    }
    std::cout << out.dump() << '\n';
  } else if (problems.empty()) {
    std::cout << config_path << ": ok (" << workload_count << " workload(s))\n";
  } else {
    for (const std::string& problem : problems) {
      std::cerr << "meshlaned: " << problem << '\n';
    }
  }
  return problems.empty() ? kExitOk : kExitConfig;
}

}  // namespace

int check_config(const std::string& config_path, const meshlane::Config& config, bool json) {
  std::vector<std::string> problems;
  if (auto access = meshlane::control::resolve_access_policy(config.daemon); !access) {
    problems.push_back(access.error().message());
  }
  if (auto mount = meshlane::find_cgroup2_mount(); !mount) {
    problems.push_back(mount.error().message());
  } else if (auto cgroup = meshlane::resolve_cgroup_path(mount.value(), config.daemon.cgroup);
             !cgroup) {
    problems.push_back(cgroup.error().message());
  }
  return print_check(config_path, problems, config.workloads.size(), json);
}

int report_unparsable_config(const std::string& config_path, const std::string& error, bool json) {
  return print_check(config_path, {error}, 0, json);
}

int cleanup(const meshlane::Config& config) {
  // Not under a running daemon: it would tear down the datapath that daemon serves.
  int exit_code = kExitOk;
  auto lock = claim_instance(config, /*create_state_dir=*/false, exit_code);
  if (!lock) {
    spdlog::error("cleanup refused: {}", lock.error().message());
    return exit_code;
  }
  // The live workloads' filters too; their state file stays, so a restarted daemon brings them
  // back.
  std::vector<meshlane::WorkloadConfig> workloads = config.workloads;
  if (auto live = meshlane::workloads::load_live_workloads(config.daemon.state_dir)) {
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

int run(const std::string& config_path, const Config& config, const TestHooks& test_hooks) {
  // First of all: a second daemon must change nothing, not workloads, policies or links.
  int exit_code = kExitOk;
  auto instance_lock = claim_instance(config, /*create_state_dir=*/true, exit_code);
  if (!instance_lock) {
    spdlog::error("{}", instance_lock.error().message());
    return exit_code;
  }
  spdlog::debug("instance lock {} taken", instance_lock->path());
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
  std::vector<meshlane::KernelFeature> features = meshlane::probe_all_features(test_hooks);
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
  // Optional features never refuse nor degrade: each off one only turns a refinement off.
  for (meshlane::KernelFeature& feature : meshlane::probe_optional_features(test_hooks)) {
    if (!feature.present) {
      // A warning where the operator asked for what is now off, information otherwise.
      const bool asked_for = feature.needed_for == meshlane::kForReaderLimits &&
                             config.acceleration.max_unread_bytes > 0;
      spdlog::log(asked_for ? spdlog::level::warn : spdlog::level::info,
                  "optional kernel feature off: {} (for {}): {}", feature.name, feature.needed_for,
                  feature.when_absent);
    }
    features.push_back(std::move(feature));
  }
  auto access = meshlane::control::resolve_access_policy(config.daemon);
  if (!access) {
    spdlog::error("{}", access.error().message());
    return kExitConfig;
  }
  auto saved_live = meshlane::workloads::load_live_workloads(config.daemon.state_dir);
  if (!saved_live) {
    spdlog::error("{}", saved_live.error().message());
    return kExitConfig;
  }

  auto saved_policies = meshlane::policy::load_policies(config.daemon.state_dir);
  if (!saved_policies) {
    spdlog::error("{}", saved_policies.error().message());
    return kExitConfig;
  }

  if (!support->interception && !saved_policies->empty()) {
    spdlog::warn(
        "{} saved polic{} not enforced: interception is off (no connect or tc program decides); "
        "they stay saved and are enforced again by a daemon started with interception",
        saved_policies->size(), saved_policies->size() == 1 ? "y is" : "ies are");
  }

  // Load first, fill the workload maps and tc filters, attach the cgroup programs last: a new
  // program never runs before the maps it reads are filled.
  auto datapath = meshlane::Datapath::load(config, support.value(), test_hooks);
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
  if (auto status = meshlane::workloads::ensure_state_dir(config.daemon.state_dir); !status) {
    spdlog::error("{}", status.error().message());
    return kExitRuntime;
  }
  meshlane::WorkloadManager manager(
      config.daemon.bpffs_dir, datapath->tc_programs(),
      meshlane::tc_record_path(config.daemon.state_dir),
      config.daemon.allow_host_netns ? meshlane::HostNetns::kAllow : meshlane::HostNetns::kRefuse);
  Reconciler reconciler(config, manager, std::move(saved_policies.value()));
  auto& workloads = reconciler.workloads();
  auto& policies = reconciler.policies();
  auto resolvable = [&manager](const meshlane::WorkloadConfig& workload) {
    return manager.check(workload);
  };
  if (auto status = workloads.start(config.workloads, std::move(saved_live.value()), resolvable);
      !status) {
    spdlog::error("{}", status.error().message());
    return kExitConfig;
  }
  spdlog::info("{} workload(s) applied ({} from the config file, {} live from {})",
               manager.applied_count(), workloads.config_count(), workloads.live_count(),
               meshlane::workloads::workload_state_path(config.daemon.state_dir));
  // Before the programs attach, like the saved workloads: pods whose ADD found no daemon.
  const CniResyncReport cni_resync = resync_from_cni_cache(config.kubernetes, workloads);
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
  backend.set_cni_resync(to_json(cni_resync));
  backend.set_workload_manager(&manager);
  if (datapath->support().splicing && datapath->listener_scan_unavailable().empty()) {
    auto scan_listeners = [&datapath, &backend](const std::string& reason) {
      auto report = datapath->scan_listeners();
      if (report) {
        spdlog::info("listener scan ({}): {}", reason, meshlane::describe(report.value()));
      } else {
        spdlog::warn("listener scan ({}) failed: {}", reason, report.error().message());
      }
      backend.add_listener_scan(reason, report);
    };
    // Listeners opened before the datapath: at start and whenever workloads change (a pod
    // added with its sidecar already listening).
    reconciler.after_workloads_change(scan_listeners);
    scan_listeners("start");
  }

  // meshlanectl monitor: the ring buffer is read on this io_context; the datapath emits only
  // while a client is subscribed (the hub sets the gate to the union of the clients' types).
  std::unique_ptr<meshlane::EventPump> pump;
  // meshlanectl explain: with daemon.decision_log > 0 every event type stays on, whoever
  // watches, and the daemon keeps the last decision_log events.
  meshlane::monitor::DecisionLog decisions(config.daemon.decision_log);
  const std::uint64_t logged_types =
      config.daemon.decision_log > 0 ? meshlane::monitor::kAllTypes : 0;
  meshlane::monitor::Hub hub([&pump, logged_types](std::uint64_t subscribed) {
    if (!pump) {
      return;
    }
    const std::uint64_t mask = subscribed | logged_types;
    if (auto status = pump->gate().set_mask(mask); !status) {
      spdlog::warn("monitor: cannot set the event gate: {}", status.error().message());
      return;
    }
    spdlog::info("monitor: datapath now emits {}", type_list(mask));
  });
  WorkloadNames names(workloads, backend);
  auto started_pump = meshlane::EventPump::start(
      io, pins,
      [&hub, &names, &decisions, &reconciler](const ml_event& event, std::int64_t unix_ns) {
        meshlane::monitor::Event named =
            meshlane::monitor::make_event(event, unix_ns, names.index());
        if (event.type == ML_EVENT_DENIED) {
          named.rule_name = reconciler.policy_rule(event.detail & ML_DENY_RULE_MASK);
        }
        decisions.record(named);
        hub.publish(named);
      },
      [&hub](std::uint64_t lost) {
        spdlog::warn("monitor: the datapath dropped {} event(s): its ring buffer was full", lost);
        hub.publish_kernel_drops(lost);
      });
  if (started_pump) {
    pump = std::move(started_pump.value());
    backend.set_hub(&hub);
    if (logged_types != 0) {
      if (auto status = pump->gate().set_mask(logged_types); status) {
        backend.set_decision_log(&decisions);
        spdlog::info("explain: keeping the last {} datapath decisions (daemon.decision_log)",
                     config.daemon.decision_log);
      } else {
        spdlog::warn("explain: cannot set the event gate, no decisions kept: {}",
                     status.error().message());
      }
    }
  } else {
    spdlog::warn("monitor: unavailable: {}", started_pump.error().message());
  }
  meshlane::control::ControlApi api(backend, workloads, *access, &policies);
  meshlane::control::ServerOptions server_options;
  server_options.path = config.daemon.socket;
  server_options.mode = config.daemon.socket_mode;
  meshlane::control::set_socket_groups(*access, server_options);
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
  spdlog::info("control socket {} (mode {:04o}, {}; up to {} clients)", config.daemon.socket,
               config.daemon.socket_mode, meshlane::control::describe(*access), max_clients);
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
        io, metrics_options,
        [&backend, &workloads, &manager, &policies, &control = *server.value()] {
          return render_metrics(backend, workloads, manager, policies, control);
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
        backend.add_reload(reload_workloads(config_path, config, workloads));
        reload_signal.async_wait(on_reload);
      };
  reload_signal.async_wait(on_reload);

  // Counting walks every key of each sized map: up to 2^20 lookups a map when they are full,
  // too long for the I/O thread that answers the control socket and /metrics.
  backend.set_map_occupancy(meshlane::count_map_occupancy(pins));
  auto count_maps = every_off_thread<std::vector<meshlane::MapOccupancy>>(
      io, kMapOccupancyInterval, [pins] { return meshlane::count_map_occupancy(pins); },
      [&backend](std::vector<meshlane::MapOccupancy> counted) {
        backend.set_map_occupancy(std::move(counted));
      });

  // Removed workloads keep their tc filters until their steered connections end.
  auto drain = every(io, kDrainCheckInterval, [&manager] { manager.reap_draining(); });

  // Handshakes that never completed leave original destinations and tc flows behind in maps
  // that refuse (not evict) when full: remove them once they are old.
  // Steered flows whose end tc never saw are found by looking for their socket in the pod.
  const meshlane::SweepTiming sweep_timing = meshlane::sweep_timing(test_hooks);
  auto last_dead_flow_check = std::chrono::steady_clock::now();
  auto sweep = every(io, sweep_timing.interval, [&] {
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
  });
  io.run();
  metrics_server.reset();
  server->reset();  // removes the socket file before the daemon exits
  return kExitOk;
}

}  // namespace meshlane::daemon
