// What the control methods and the metrics read from the running daemon: its status, the
// datapath's counters and sockets, the monitor hub, and what the periodic work reports.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "control/server.hpp"
#include "daemon/control_api.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/datapath.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/listener_scan.hpp"
#include "datapath/map_occupancy.hpp"
#include "datapath/stale_sweep.hpp"
#include "datapath/workload_maps.hpp"
#include "observe/monitor_hub.hpp"

namespace meshlane::daemon {

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

  nlohmann::json status() override;

  // The outcome of a listener scan, for status "listener_scan".
  void add_listener_scan(const std::string& reason,
                         const meshlane::Result<meshlane::ListenerScanReport>& outcome);

  // Entries the periodic sweep removed since the daemon started (status "swept").
  void add_swept(const meshlane::SweepReport& report) {
    swept_.orig_dsts += report.orig_dsts;
    swept_.tc_flows += report.tc_flows;
    swept_.dead_tc_flows += report.dead_tc_flows;
  }

  // What the start-up scan of the CNI result cache did (status "cni_resync").
  void set_cni_resync(nlohmann::json report) { cni_resync_ = std::move(report); }

  // The control socket's server, for its client counts in status (set once it is started).
  void set_control_server(const meshlane::control::Server* server) { control_server_ = server; }

  // The latest count of the sized maps (status "map_usage", the metrics' meshlane_map_*),
  // taken by the daemon's periodic count, never per request.
  void set_map_occupancy(std::vector<meshlane::MapOccupancy> occupancy) {
    map_occupancy_ = std::move(occupancy);
    map_occupancy_at_ = std::time(nullptr);
  }
  [[nodiscard]] const std::vector<meshlane::MapOccupancy>& map_occupancy() const {
    return map_occupancy_;
  }

  // The outcome of a SIGHUP reload (status "last_reload", the metrics). The configuration
  // read at start counts as the first successful one.
  void add_reload(bool applied) {
    last_reload_applied_ = applied;
    last_reload_at_ = std::time(nullptr);
    ++reloads_;
  }
  [[nodiscard]] bool last_reload_applied() const { return last_reload_applied_; }
  [[nodiscard]] std::time_t last_reload_at() const { return last_reload_at_; }
  [[nodiscard]] std::time_t started_at() const { return started_wall_; }
  [[nodiscard]] const meshlane::Datapath& datapath() const { return datapath_; }
  [[nodiscard]] const std::vector<meshlane::KernelFeature>& kernel_features() const {
    return features_;
  }

  [[nodiscard]] std::chrono::steady_clock::duration uptime() const {
    return std::chrono::steady_clock::now() - started_steady_;
  }

  meshlane::Result<meshlane::Counters> counters() override;

  meshlane::Result<std::vector<ml_sock_key>> sockhash_keys() override;

  meshlane::Result<meshlane::Counters> workload_counters(std::uint64_t netns_cookie) override;

  std::optional<std::uint64_t> netns_cookie(const std::string& netns_path) override;

  meshlane::control::ControlResult<std::shared_ptr<meshlane::monitor::Subscription>> subscribe(
      const meshlane::monitor::Filter& filter) override;

  void set_hub(meshlane::monitor::Hub* hub) { hub_ = hub; }

  const meshlane::monitor::DecisionLog* decision_log() override { return decision_log_; }
  void set_decision_log(const meshlane::monitor::DecisionLog* log) { decision_log_ = log; }

  bool listening(std::uint64_t netns_cookie, std::uint16_t port) override;

  std::string policy_enforcement_unavailable() override;
  // What workload list/get report of each workload's state (set once the manager exists).
  void set_workload_manager(const meshlane::WorkloadManager* manager) { manager_ = manager; }
  nlohmann::json workload_health(const meshlane::WorkloadConfig& workload) override;
  nlohmann::json draining_workloads() override;

 private:
  using ListenerMap = meshlane::TypedMap<ml_listener_key, std::uint8_t>;
  meshlane::monitor::Hub* hub_ = nullptr;
  const meshlane::monitor::DecisionLog* decision_log_ = nullptr;
  const meshlane::WorkloadManager* manager_ = nullptr;
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
  nlohmann::json cni_resync_ = nlohmann::json{{"enabled", false}};
  std::vector<meshlane::MapOccupancy> map_occupancy_;
  std::time_t map_occupancy_at_ = 0;
  bool last_reload_applied_ = true;
  std::time_t last_reload_at_ = started_wall_;
  std::size_t reloads_ = 0;

  [[nodiscard]] nlohmann::json map_usage_json() const;

  [[nodiscard]] nlohmann::json listener_scan_json() const;
};

// "2026-12-05T06:25:45Z"
std::string utc_time(std::time_t when);

}  // namespace meshlane::daemon
