#include "workloads/registry.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <utility>

#include "common/instance_lock.hpp"
#include "common/text_file.hpp"

namespace meshlane::workloads {

namespace {

nlohmann::json addresses(const std::vector<IpAddress>& list) {
  nlohmann::json array = nlohmann::json::array();
  for (const IpAddress& address : list) {
    array.push_back(to_string(address));
  }
  return array;
}

nlohmann::json cidrs(const std::vector<Cidr>& list) {
  nlohmann::json array = nlohmann::json::array();
  for (const Cidr& cidr : list) {
    array.push_back(to_string(cidr));
  }
  return array;
}

std::string node_proxy_text(const IpAddress& address, std::uint16_t port) {
  std::string host = to_string(address);
  if (port == 0) {
    return host;
  }
  return (address.is_ipv4 ? host : "[" + host + "]") + ":" + std::to_string(port);
}

}  // namespace

nlohmann::json workload_to_json(const WorkloadConfig& w) {
  nlohmann::json object = {
      {"name", w.name},
      {"netns", w.netns},
      {"ips", addresses(w.ips)},
      {"mesh", to_string(w.mesh)},
      {"proxy_uid", w.proxy_uid},
      {"proxy_gid", w.proxy_gid},
      {"outbound_port", w.outbound_port},
      {"inbound_port", w.inbound_port},
      {"inbound_passthrough_sources", addresses(w.inbound_passthrough_sources)},
      {"include_outbound_ports", w.include_outbound_ports},
      {"exclude_outbound_ports", w.exclude_outbound_ports},
      {"include_inbound_ports", w.include_inbound_ports},
      {"exclude_inbound_ports", w.exclude_inbound_ports},
      {"include_outbound_cidrs", cidrs(w.include_outbound_cidrs)},
      {"exclude_outbound_cidrs", cidrs(w.exclude_outbound_cidrs)},
      {"exclude_inbound_cidrs", cidrs(w.exclude_inbound_cidrs)},
      {"interface", w.interface},
      {"labels", w.labels},
      {"acceleration", w.acceleration},
      {"exclude_acceleration_ports", w.exclude_acceleration_ports},
      {"fast_path", w.fast_path},
      {"fast_path_exclude_ports", w.fast_path_exclude_ports},
      {"dns_capture", w.dns_capture},
  };
  // 0 is "no DNS proxy" (linkerd, custom), which no port key accepts: left out, as the preset
  // gives it back when read.
  if (w.dns_proxy_port != 0) {
    object["dns_proxy_port"] = w.dns_proxy_port;
  }
  if (w.node_proxy_address) {
    object["node_proxy"] = node_proxy_text(*w.node_proxy_address, w.node_proxy_port);
  }
  return object;
}

std::string workload_state_path(const std::string& state_dir) {
  return state_dir + "/" + kWorkloadStateFile;
}

Status ensure_state_dir(const std::string& state_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(state_dir, ec)) {
    const std::filesystem::path dir(state_dir);
    if (dir.has_parent_path()) {
      std::filesystem::create_directories(dir.parent_path(), ec);
      if (ec) {
        return make_error(ec.value(), "cannot create " + dir.parent_path().string() +
                                          " (the parent of daemon.state_dir)");
      }
    }
    if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error(errno, "cannot create daemon.state_dir " + state_dir);
    }
  }
  // Its files are read and acted on as root at the next start: nobody else may write there.
  return check_private_directory(state_dir, "daemon.state_dir");
}

Result<std::vector<WorkloadConfig>> load_live_workloads(const std::string& state_dir) {
  const std::string path = workload_state_path(state_dir);
  auto text = read_state_file(path);
  if (!text) {
    return text.error();
  }
  if (!text->has_value()) {
    return std::vector<WorkloadConfig>{};
  }
  const char* const fix =
      " (fix or remove the file; it holds the workloads added with "
      "meshlanectl)";
  nlohmann::json state = nlohmann::json::parse(**text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded() || !state.is_object()) {
    return make_error(path + ": not a JSON object" + fix);
  }
  if (state.value("v", nlohmann::json()) != kStateVersion) {
    return make_error(path + ": \"v\" is not " + std::to_string(kStateVersion) + fix);
  }
  const nlohmann::json list = state.value("workloads", nlohmann::json());
  if (!list.is_array()) {
    return make_error(path + ": \"workloads\" is not an array" + fix);
  }
  std::vector<WorkloadConfig> workloads;
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto workload = parse_workload_json(list[i], path, "workloads[" + std::to_string(i) + "]");
    if (!workload) {
      return make_error(workload.error().context + fix);
    }
    if (!names.insert(workload->name).second) {
      return make_error(path + ": workloads[" + std::to_string(i) + "]: duplicate name \"" +
                        workload->name + "\"" + fix);
    }
    workloads.push_back(std::move(workload.value()));
  }
  return workloads;
}

Status save_live_workloads(const std::string& state_dir,
                           const std::vector<WorkloadConfig>& workloads) {
  nlohmann::json list = nlohmann::json::array();
  for (const WorkloadConfig& workload : workloads) {
    list.push_back(workload_to_json(workload));
  }
  const nlohmann::json state = {{"v", kStateVersion}, {"workloads", list}};
  // Created on first use: a daemon that never gets a live workload leaves no trace.
  if (Status status = ensure_state_dir(state_dir); !status) {
    return status;
  }
  return write_file_atomically(workload_state_path(state_dir), state.dump(2) + "\n");
}

const char* to_string(WorkloadSource source) {
  return source == WorkloadSource::kConfig ? "config" : "live";
}

const char* to_string(AddOutcome outcome) {
  switch (outcome) {
    case AddOutcome::kAdded: return "added";
    case AddOutcome::kUnchanged: return "unchanged";
    case AddOutcome::kReplaced: return "replaced";
  }
  return "?";
}

const char* to_string(DeleteOutcome outcome) {
  return outcome == DeleteOutcome::kDeleted ? "deleted" : "absent";
}

std::vector<WorkloadConfig> WorkloadRegistry::values(
    const std::map<std::string, WorkloadConfig>& live) {
  std::vector<WorkloadConfig> result;
  result.reserve(live.size());
  for (const auto& [name, workload] : live) {
    result.push_back(workload);
  }
  return result;
}

std::vector<WorkloadConfig> WorkloadRegistry::combined_with(
    const std::map<std::string, WorkloadConfig>& live) const {
  std::vector<WorkloadConfig> result = config_;
  for (const auto& [name, workload] : live) {
    result.push_back(workload);
  }
  return result;
}

std::vector<WorkloadConfig> WorkloadRegistry::combined() const { return combined_with(live_); }

Status WorkloadRegistry::start(std::vector<WorkloadConfig> config_workloads,
                               std::vector<WorkloadConfig> saved_live, const CheckFn& check) {
  config_ = std::move(config_workloads);
  live_.clear();
  bool dropped = false;
  for (WorkloadConfig& workload : saved_live) {
    if (find(workload.name).workload != nullptr) {
      spdlog::warn(
          "live workload {} dropped: the config file defines a workload of that name, "
          "which takes precedence",
          workload.name);
      dropped = true;
      continue;
    }
    if (Status status = check(workload); !status) {
      spdlog::error("live workload {} dropped, its pod is gone: {} (spec was {})", workload.name,
                    status.error().message(), workload_to_json(workload).dump());
      dropped = true;
      continue;
    }
    std::string name = workload.name;
    live_.emplace(std::move(name), std::move(workload));
  }
  Status applied = apply_(combined());
  if (!applied && !live_.empty()) {
    spdlog::error(
        "config and live workloads cannot be applied together ({}); dropping the {} "
        "live workload(s):",
        applied.error().message(), live_.size());
    for (const auto& [name, workload] : live_) {
      spdlog::error("  dropped live workload {}: {}", name, workload_to_json(workload).dump());
    }
    live_.clear();
    dropped = true;
    applied = apply_(combined());
  }
  if (!applied) {
    return applied;
  }
  if (dropped) {
    if (Status saved = persist_(values(live_)); !saved) {
      spdlog::error("cannot rewrite the state file: {}", saved.error().message());
    }
  }
  return {};
}

Status WorkloadRegistry::reload(std::vector<WorkloadConfig> config_workloads) {
  for (const WorkloadConfig& workload : config_workloads) {
    if (live_.count(workload.name) != 0) {
      return make_error("workload " + workload.name +
                        " is defined in the config file and was also added live; delete the "
                        "live one first (meshlanectl workload del " +
                        workload.name + ")");
    }
  }
  std::vector<WorkloadConfig> previous = std::move(config_);
  config_ = std::move(config_workloads);
  if (Status status = apply_(combined()); !status) {
    config_ = std::move(previous);
    return status;
  }
  return {};
}

control::ControlStatus WorkloadRegistry::commit(std::map<std::string, WorkloadConfig> next) {
  if (Status status = apply_(combined_with(next)); !status) {
    return control::ControlError{control::ErrorCode::kApplyFailed, status.error().message()};
  }
  if (Status saved = persist_(values(next)); !saved) {
    std::string message =
        "cannot save the workload state, the change was undone: " + saved.error().message();
    if (Status undone = apply_(combined()); !undone) {
      message = "cannot save the workload state (" + saved.error().message() +
                ") and cannot undo the change (" + undone.error().message() +
                "): the kernel holds the new state until the next change";
      spdlog::error("{}", message);
    }
    return control::ControlError{control::ErrorCode::kApplyFailed, message};
  }
  live_ = std::move(next);
  return {};
}

std::optional<NetnsId> namespace_id_of(const std::string& netns_path) {
  const Result<OpenNetns> opened = open_network_namespace_with_id(netns_path);
  return opened ? std::optional<NetnsId>(opened->id) : std::nullopt;
}

const WorkloadConfig* WorkloadRegistry::namespace_owner(const WorkloadConfig& workload) const {
  // By identity, not by path: two paths to one namespace would put two workloads' rules on the
  // same netns cookie. The path comparison still holds when a namespace cannot be opened.
  const std::optional<NetnsId> id = namespace_id_(workload.netns);
  for (const WorkloadConfig& other : config_) {
    if (other.name != workload.name &&
        (other.netns == workload.netns || (id && namespace_id_(other.netns) == id))) {
      return &other;
    }
  }
  for (const auto& [name, other] : live_) {
    if (name != workload.name &&
        (other.netns == workload.netns || (id && namespace_id_(other.netns) == id))) {
      return &other;
    }
  }
  return nullptr;
}

control::ControlResult<AddOutcome> WorkloadRegistry::add(const WorkloadConfig& workload) {
  for (const WorkloadConfig& configured : config_) {
    if (configured.name == workload.name) {
      return control::ControlError{
          control::ErrorCode::kConflict,
          "workload " + workload.name +
              " is defined in the config file; change it there and send SIGHUP"};
    }
  }
  if (const WorkloadConfig* owner = namespace_owner(workload); owner != nullptr) {
    return control::ControlError{
        control::ErrorCode::kConflict,
        "netns " + workload.netns + " is already the namespace of workload " + owner->name +
            (owner->netns == workload.netns
                 ? ""
                 : " (its netns " + owner->netns + " is the same network namespace)")};
  }
  auto existing = live_.find(workload.name);
  if (existing != live_.end() && existing->second == workload) {
    return AddOutcome::kUnchanged;
  }
  const AddOutcome outcome = existing == live_.end() ? AddOutcome::kAdded : AddOutcome::kReplaced;
  std::map<std::string, WorkloadConfig> next = live_;
  next.insert_or_assign(workload.name, workload);
  if (control::ControlStatus committed = commit(std::move(next)); !committed) {
    return committed.error();
  }
  spdlog::info("control: workload {} {}", workload.name, to_string(outcome));
  return outcome;
}

control::ControlResult<DeleteOutcome> WorkloadRegistry::remove(const std::string& name,
                                                               bool missing_ok) {
  for (const WorkloadConfig& configured : config_) {
    if (configured.name == name) {
      return control::ControlError{
          control::ErrorCode::kConflict,
          "workload " + name + " is defined in the config file; remove it there and send SIGHUP"};
    }
  }
  if (live_.count(name) == 0) {
    if (missing_ok) {
      return DeleteOutcome::kAbsent;
    }
    return control::ControlError{control::ErrorCode::kNotFound, "no workload named " + name};
  }
  std::map<std::string, WorkloadConfig> next = live_;
  next.erase(name);
  if (control::ControlStatus committed = commit(std::move(next)); !committed) {
    return committed.error();
  }
  spdlog::info("control: workload {} deleted", name);
  return DeleteOutcome::kDeleted;
}

WorkloadRegistry::Entry WorkloadRegistry::find(const std::string& name) const {
  for (const WorkloadConfig& workload : config_) {
    if (workload.name == name) {
      return {&workload, WorkloadSource::kConfig};
    }
  }
  if (auto live = live_.find(name); live != live_.end()) {
    return {&live->second, WorkloadSource::kLive};
  }
  return {};
}

std::vector<WorkloadRegistry::Entry> WorkloadRegistry::list() const {
  std::vector<Entry> entries;
  for (const WorkloadConfig& workload : config_) {
    entries.push_back({&workload, WorkloadSource::kConfig});
  }
  for (const auto& [name, workload] : live_) {
    entries.push_back({&workload, WorkloadSource::kLive});
  }
  return entries;
}

}  // namespace meshlane::workloads
