#include "daemon/backend.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <utility>

#include "common/netns.hpp"
#include "datapath/counter_maps.hpp"
#include "datapath/sockhash_keys.hpp"

namespace meshlane::daemon {

std::string utc_time(std::time_t when) {
  char text[32] = {};
  std::tm utc{};
  ::gmtime_r(&when, &utc);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

nlohmann::json DaemonBackend::status() {
  // Required features (a missing one refuses or degrades) apart from optional ones (one that is
  // off only turns a refinement off): "N of M found" counts the required ones only.
  nlohmann::json features = nlohmann::json::array();
  nlohmann::json optional_features = nlohmann::json::array();
  for (const auto& feature : features_) {
    if (feature.optional) {
      optional_features.push_back({{"name", feature.name},
                                   {"needed_for", feature.needed_for},
                                   {"present", feature.present},
                                   {"when_absent", feature.when_absent}});
    } else {
      features.push_back({{"name", feature.name},
                          {"needed_for", feature.needed_for},
                          {"present", feature.present}});
    }
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
      {"optional_kernel_features", optional_features},
      {"attachments", attachments},
      {"bpffs_dir", config_.daemon.bpffs_dir},
      {"maps_adopted", datapath_.maps_adopted()},
      {"maps", maps},
      {"splicing", datapath_.support().splicing},
      {"interception", datapath_.support().interception},
      {"inbound_steering", datapath_.inbound_steering()},
      {"policies_enforced", datapath_.support().interception},
      // What daemon.on_missing_feature = "degrade" turned off; never an optional feature.
      {"degraded", !datapath_.support().splicing || !datapath_.support().interception},
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
      {"cni_resync", cni_resync_},
      {"map_usage", map_usage_json()},
      {"last_reload",
       {{"applied", last_reload_applied_},
        {"at", utc_time(last_reload_at_)},
        {"reloads", reloads_}}},
  };
}

nlohmann::json DaemonBackend::map_usage_json() const {
  nlohmann::json maps = nlohmann::json::object();
  for (const meshlane::MapOccupancy& map : map_occupancy_) {
    nlohmann::json entry = {{"pin", map.pin_name},
                            {"setting", map.setting},
                            {"entries", map.entries},
                            {"capacity", map.capacity},
                            {"complete", map.complete}};
    if (!map.error.empty()) {
      entry["error"] = map.error;
    }
    maps[map.map] = std::move(entry);
  }
  return {{"counted_at",
           map_occupancy_at_ != 0 ? nlohmann::json(utc_time(map_occupancy_at_)) : nlohmann::json()},
          {"maps", std::move(maps)}};
}

std::string DaemonBackend::policy_enforcement_unavailable() {
  if (datapath_.support().interception) {
    return {};
  }
  // Policies are decided at connect (cgroup hooks) and at the pod's tc ingress, and neither is
  // attached without interception.
  return "interception is off (daemon.on_missing_feature = \"degrade\" and the kernel lacks a "
         "feature it needs: see meshlanectl status), so no program would enforce it; run on a "
         "kernel with every feature, or keep the mesh's own authorization";
}

void DaemonBackend::add_listener_scan(const std::string& reason,
                                      const Result<ListenerScanReport>& outcome) {
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

bool DaemonBackend::listening(std::uint64_t netns_cookie, std::uint16_t port) {
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

nlohmann::json DaemonBackend::listener_scan_json() const {
  nlohmann::json scan = {
      {"available", datapath_.listener_scan_unavailable().empty() && datapath_.support().splicing},
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
    last["modes_recorded"] = last_scan_->modes_recorded;
    last["registered"] = last_scan_->registered;
    last["registry_full"] = last_scan_->registry_full;
    last["complete"] = last_scan_->complete;
    last["elapsed_us"] = last_scan_->elapsed.count();
  }
  scan["last"] = std::move(last);
  return scan;
}

meshlane::control::ControlResult<std::shared_ptr<meshlane::monitor::Subscription>>
DaemonBackend::subscribe(const meshlane::monitor::Filter& filter) {
  if (hub_ == nullptr) {
    return meshlane::control::ControlError{
        meshlane::control::ErrorCode::kUnavailable,
        "the event ring buffer could not be opened at start (see the daemon log)"};
  }
  return hub_->subscribe(filter);
}

meshlane::Result<meshlane::Counters> DaemonBackend::counters() {
  return meshlane::read_counters(config_.daemon.bpffs_dir);
}

meshlane::Result<std::vector<ml_sock_key>> DaemonBackend::sockhash_keys() {
  return meshlane::read_sockhash_keys(config_.daemon.bpffs_dir);
}

meshlane::Result<meshlane::Counters> DaemonBackend::workload_counters(std::uint64_t netns_cookie) {
  return meshlane::read_workload_counters(config_.daemon.bpffs_dir, netns_cookie);
}

std::optional<std::uint64_t> DaemonBackend::netns_cookie(const std::string& netns_path) {
  // A workload in force: the cookie it was applied with, which is what the programs count and
  // key by, known without entering its namespace (a setns per workload on the I/O thread).
  if (manager_ != nullptr) {
    for (const meshlane::ResolvedWorkload& workload : manager_->applied()) {
      if (workload.config.netns == netns_path) {
        return workload.netns_cookie;
      }
    }
  }
  auto cookie = meshlane::netns_cookie_of(netns_path);
  if (!cookie) {
    return std::nullopt;
  }
  return cookie.value();
}

namespace {

std::int64_t whole_seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::seconds>(duration).count();
}

}  // namespace

nlohmann::json DaemonBackend::workload_health(const meshlane::WorkloadConfig& workload) {
  if (manager_ == nullptr) {
    return nullptr;
  }
  const meshlane::WorkloadHealth health = manager_->health(workload);
  const bool applied = health.state == meshlane::WorkloadHealth::State::kApplied;
  nlohmann::json out = {
      {"state", meshlane::to_string(health.state)},
      {"netns_cookie", applied ? nlohmann::json(health.netns_cookie) : nlohmann::json()},
      {"netns_inode",
       health.netns_id.inode != 0 ? nlohmann::json(health.netns_id.inode) : nlohmann::json()},
      {"netns", meshlane::to_string(health.netns)},
      {"netns_exists", health.netns == meshlane::WorkloadHealth::Netns::kPresent ||
                           health.netns == meshlane::WorkloadHealth::Netns::kReplaced},
      {"tc_filters", meshlane::to_string(health.tc)},
      {"draining", health.draining},
  };
  if (!health.netns_error.empty()) {
    out["netns_error"] = health.netns_error;
  }
  if (!health.tc_error.empty()) {
    out["tc_error"] = health.tc_error;
  }
  if (health.state == meshlane::WorkloadHealth::State::kUnavailable) {
    out["unavailable_reason"] = health.unavailable_reason;
    out["unavailable_seconds"] = whole_seconds(health.unavailable_for);
  }
  return out;
}

nlohmann::json DaemonBackend::draining_workloads() {
  nlohmann::json list = nlohmann::json::array();
  if (manager_ == nullptr) {
    return list;
  }
  for (const meshlane::DrainingAttachment& draining : manager_->draining()) {
    list.push_back(
        {{"name", draining.name},
         {"netns", draining.netns},
         {"interface", draining.interface},
         {"draining_seconds", whole_seconds(draining.draining_for)},
         {"steered_flows",
          draining.steered_flows ? nlohmann::json(*draining.steered_flows) : nlohmann::json()}});
  }
  return list;
}

}  // namespace meshlane::daemon
