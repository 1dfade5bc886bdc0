#include "datapath/workload_maps.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/netns.hpp"
#include "common/text_file.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/counter_maps.hpp"
#include "datapath/pin_layout.hpp"
#include "datapath/sk_lookup_attach.hpp"
#include "datapath/tc_attach.hpp"
#include "observe/counters.hpp"

namespace meshlane {

namespace {

void copy_address(const std::array<std::uint8_t, 16>& bytes, __u32 out[4]) {
  std::memcpy(out, bytes.data(), bytes.size());
}

void add_port_rules(std::uint32_t id, std::uint8_t direction,
                    const std::vector<std::uint16_t>& include,
                    const std::vector<std::uint16_t>& exclude, WorkloadMaps& maps) {
  // Exclusion wins: written last, it replaces an include of the same port.
  std::map<std::uint16_t, std::uint8_t> rules;
  for (std::uint16_t port : include) {
    rules[port] = ML_RULE_INCLUDE;
  }
  for (std::uint16_t port : exclude) {
    rules[port] = ML_RULE_EXCLUDE;
  }
  for (const auto& [port, rule] : rules) {
    ml_port_rule_key key{};
    key.workload_id = id;
    key.port = port;
    key.direction = direction;
    maps.port_rules.emplace_back(key, rule);
  }
}

void add_cidr_rules(std::uint32_t id, std::uint32_t list, std::uint8_t rule,
                    const std::vector<Cidr>& cidrs, WorkloadMaps& maps) {
  for (const Cidr& cidr : cidrs) {
    ml_cidr_rule_key key{};
    key.prefixlen = ML_CIDR_KEY_PREFIX_BITS + cidr.prefix_length;
    key.workload_id = htonl(id);
    key.list = htonl(list);
    copy_address(cidr.address, key.ip6);
    maps.cidr_rules.emplace_back(key, rule);
  }
}

template <typename Key>
std::string key_bytes(const Key& key) {
  return {reinterpret_cast<const char*>(&key), sizeof(key)};
}

// Writes every desired entry, then deletes the entries nobody wants any more.
template <typename Key, typename Value>
Status sync_map(const std::string& pin, const std::vector<std::pair<Key, Value>>& desired) {
  auto map = TypedMap<Key, Value>::open_pin(pin);
  if (!map) {
    return map.error();
  }
  std::set<std::string> wanted;
  for (const auto& [key, value] : desired) {
    if (auto status = map->update(key, value); !status) {
      return status;
    }
    wanted.insert(key_bytes(key));
  }
  for (const Key& key : map->keys()) {
    if (wanted.count(key_bytes(key)) == 0) {
      if (auto status = map->erase(key); !status) {
        return status;
      }
    }
  }
  return {};
}

// Whether the map pinned at `pin` can hold `wanted` entries. Its capacity is the setting
// `size_key` (read back from the kernel, which is what counts).
Status check_capacity(const std::string& pin, std::size_t wanted, const char* what,
                      const char* size_key) {
  auto map = open_pinned_map(pin);
  if (!map) {
    return map.error();
  }
  const MapSpec& info = map->info;
  if (wanted > info.max_entries) {
    return make_error(E2BIG, std::to_string(wanted) + " " + what + " do not fit in " + info.name +
                                 ", which holds " + std::to_string(info.max_entries) + " (" +
                                 size_key + "; raise it and restart meshlaned)");
  }
  return {};
}

}  // namespace

ml_workload make_kernel_workload(const ResolvedWorkload& workload) {
  const WorkloadConfig& config = workload.config;
  ml_workload kernel{};
  kernel.id = workload.id;
  kernel.netns_cookie = workload.netns_cookie;
  kernel.proxy_uid = config.proxy_uid;
  kernel.proxy_gid = config.proxy_gid;
  kernel.outbound_port = config.outbound_port;
  kernel.inbound_port = config.inbound_port;
  const std::size_t sources =
      std::min<std::size_t>(config.inbound_passthrough_sources.size(), ML_MAX_PASSTHROUGH);
  kernel.passthrough_count = static_cast<std::uint32_t>(sources);
  for (std::size_t i = 0; i < sources; ++i) {
    copy_address(config.inbound_passthrough_sources[i].bytes, kernel.passthrough_ip6[i]);
  }
  if (config.node_proxy_address) {
    kernel.flags |= ML_WL_NODE_PROXY;
    copy_address(config.node_proxy_address->bytes, kernel.node_proxy_ip6);
    kernel.node_proxy_port = config.node_proxy_port;
  }
  if (!config.include_outbound_ports.empty()) {
    kernel.flags |= ML_WL_INCLUDE_OUT_PORTS;
  }
  if (!config.include_inbound_ports.empty()) {
    kernel.flags |= ML_WL_INCLUDE_IN_PORTS;
  }
  if (!config.include_outbound_cidrs.empty()) {
    kernel.flags |= ML_WL_INCLUDE_OUT_CIDRS;
  }
  if (!config.acceleration) {
    kernel.flags |= ML_WL_NO_ACCEL;
  }
  if (!config.exclude_acceleration_ports.empty()) {
    kernel.flags |= ML_WL_ACCEL_PORT_RULES;
  }
  if (config.fast_path) {
    kernel.flags |= ML_WL_FAST_PATH;
  }
  if (!config.fast_path_exclude_ports.empty()) {
    kernel.flags |= ML_WL_FAST_PATH_PORT_RULES;
  }
  if (config.dns_capture && config.dns_proxy_port != 0) {
    kernel.flags |= ML_WL_DNS_CAPTURE;
    kernel.dns_proxy_port = config.dns_proxy_port;
  }
  return kernel;
}

WorkloadMaps build_workload_maps(const std::vector<ResolvedWorkload>& workloads) {
  WorkloadMaps maps;
  for (const ResolvedWorkload& workload : workloads) {
    const WorkloadConfig& config = workload.config;
    const ml_workload kernel = make_kernel_workload(workload);
    maps.workloads.emplace_back(workload.netns_cookie, kernel);
    for (const IpAddress& ip : config.ips) {
      ml_ip_key key{};
      copy_address(ip.bytes, key.ip6);
      maps.pod_ips.emplace_back(key, kernel);
    }
    add_port_rules(workload.id, ML_DIR_OUTBOUND, config.include_outbound_ports,
                   config.exclude_outbound_ports, maps);
    add_port_rules(workload.id, ML_DIR_INBOUND, config.include_inbound_ports,
                   config.exclude_inbound_ports, maps);
    add_port_rules(workload.id, ML_DIR_ACCEL, {}, config.exclude_acceleration_ports, maps);
    add_port_rules(workload.id, ML_DIR_FAST_PATH, {}, config.fast_path_exclude_ports, maps);
    add_cidr_rules(workload.id, ML_CIDR_LIST_OUT_INCLUDE, ML_RULE_INCLUDE,
                   config.include_outbound_cidrs, maps);
    add_cidr_rules(workload.id, ML_CIDR_LIST_OUT_EXCLUDE, ML_RULE_EXCLUDE,
                   config.exclude_outbound_cidrs, maps);
    add_cidr_rules(workload.id, ML_CIDR_LIST_IN_EXCLUDE, ML_RULE_EXCLUDE,
                   config.exclude_inbound_cidrs, maps);
  }
  return maps;
}

Result<NetnsInfo> resolve_workload_netns(const WorkloadConfig& config, HostNetns host) {
  auto info = inspect_workload_netns(config.netns, host);
  if (!info) {
    return make_error(info.error().errnum, "workload " + config.name + ": " + info.error().context);
  }
  if (auto index = interface_index_in(config.netns, config.interface); !index) {
    return make_error(index.error().errnum,
                      "workload " + config.name + ": " + index.error().context);
  }
  return info;
}

Result<WorkloadResolution> resolve_workloads(const std::vector<WorkloadConfig>& configs,
                                             const ResolveNetnsFn& resolve,
                                             const WasInForceFn& was_in_force) {
  std::vector<const WorkloadConfig*> by_name;
  by_name.reserve(configs.size());
  for (const WorkloadConfig& config : configs) {
    by_name.push_back(&config);
  }
  std::sort(by_name.begin(), by_name.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  WorkloadResolution resolution;
  std::map<std::uint64_t, const WorkloadConfig*> by_cookie;  // the namespaces taken so far
  const auto now = std::chrono::steady_clock::now();
  for (const WorkloadConfig* config : by_name) {
    auto info = resolve(*config);
    if (!info) {
      if (!was_in_force(*config)) {
        return info.error();
      }
      resolution.unavailable[config->name] = {
          config->netns, config->interface, info.error().message(), {}, now};
      continue;
    }
    // By cookie, so two paths to one namespace are caught as well as one path named twice.
    if (auto [taken, inserted] = by_cookie.emplace(info->cookie, config); !inserted) {
      return make_error("workload " + config->name + ": netns " + config->netns +
                        " is already the namespace of workload " + taken->second->name + " (" +
                        taken->second->netns + ")");
    }
    resolution.resolved.push_back({*config, info->cookie,
                                   static_cast<std::uint32_t>(resolution.resolved.size() + 1),
                                   info->id});
  }
  return resolution;
}

Result<std::vector<ResolvedWorkload>> resolve_workloads(const std::vector<WorkloadConfig>& configs,
                                                        HostNetns host) {
  auto resolution = resolve_workloads(
      configs,
      [host](const WorkloadConfig& config) { return resolve_workload_netns(config, host); },
      [](const WorkloadConfig&) { return false; });
  if (!resolution) {
    return resolution.error();
  }
  return std::move(resolution->resolved);
}

std::string tc_record_path(const std::string& state_dir) { return state_dir + "/tc-filters"; }

// One line per interface: name, netns, interface, addresses (comma-separated), tab-separated.
std::vector<WorkloadConfig> read_tc_record(const std::string& record_path) {
  std::vector<WorkloadConfig> out;
  // Never through a symlink (read_state_file): the record names interfaces whose filters root
  // removes. A refused record is only a warning: the next write replaces it (the link itself).
  auto text = read_state_file(record_path);
  if (!text) {
    spdlog::warn("{}; its tc filters are not known (--cleanup may miss some)",
                 text.error().message());
    return out;
  }
  if (!text->has_value()) {
    return out;
  }
  std::istringstream lines(**text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    WorkloadConfig config;
    std::string ips;
    if (!std::getline(fields, config.name, '\t') || !std::getline(fields, config.netns, '\t') ||
        !std::getline(fields, config.interface, '\t')) {
      continue;
    }
    std::getline(fields, ips);
    std::istringstream list(ips);
    std::string ip;
    while (std::getline(list, ip, ',')) {
      if (auto parsed = parse_ip_address(ip)) {
        config.ips.push_back(*parsed);
      }
    }
    out.push_back(std::move(config));
  }
  return out;
}

WorkloadManager::WorkloadManager(std::string bpffs_dir, TcPrograms tc_programs,
                                 std::string record_path, HostNetns host_netns)
    : bpffs_dir_(std::move(bpffs_dir)),
      tc_programs_(tc_programs),
      record_path_(std::move(record_path)),
      host_netns_(host_netns) {
  // Filters an earlier run left (a workload removed while its connections drained, then the
  // daemon restarted): drained like any removed workload unless apply() wants them again.
  const auto now = std::chrono::steady_clock::now();
  for (WorkloadConfig& recorded : read_tc_record(record_path_)) {
    std::string key = recorded.name;
    if (draining_.count(key) != 0) {
      key += " (" + recorded.netns + ")";  // the same workload on two interfaces
    }
    draining_[key] = {{recorded.netns, recorded.interface, recorded.ips}, now};
  }
}

void WorkloadManager::save_record(const std::map<std::string, Attachment>* pending) const {
  if (record_path_.empty()) {
    return;
  }
  std::string text;
  auto add = [&text](const std::string& name, const Attachment& attachment) {
    std::string ips;
    for (const IpAddress& ip : attachment.ips) {
      ips += (ips.empty() ? "" : ",") + to_string(ip);
    }
    text += name + "\t" + attachment.netns + "\t" + attachment.interface + "\t" + ips + "\n";
  };
  for (const auto& [name, attachment] : applied_) {
    add(name, attachment);
  }
  for (const auto& [name, draining] : draining_) {
    add(name, draining.attachment);
  }
  if (pending != nullptr) {
    for (const auto& [name, attachment] : *pending) {
      add(name, attachment);
    }
  }
  // Written whole or not at all: a crash never leaves half a record.
  if (auto status = write_file_atomically(record_path_, text); !status) {
    spdlog::warn("{}: --cleanup may miss tc filters", status.error().message());
  }
}

Status WorkloadManager::check(const WorkloadConfig& workload) const {
  if (auto info = resolve_workload_netns(workload, host_netns_); !info) {
    return info.error();
  }
  return {};
}

Status WorkloadManager::apply(const std::vector<WorkloadConfig>& workloads) {
  // A pod that vanished after it was applied (same name, netns path and interface) must not
  // make every later change fail: it is kept as unavailable. Anything new must resolve.
  auto was_in_force = [this](const WorkloadConfig& config) {
    auto same_pod = [&config](const WorkloadConfig& other) {
      return other.name == config.name && other.netns == config.netns &&
             other.interface == config.interface;
    };
    const bool applied = std::any_of(resolved_.begin(), resolved_.end(),
                                     [&](const ResolvedWorkload& r) { return same_pod(r.config); });
    auto unavailable = unavailable_.find(config.name);
    return applied ||
           (unavailable != unavailable_.end() && unavailable->second.netns == config.netns &&
            unavailable->second.interface == config.interface);
  };
  auto resolution = resolve_workloads(
      workloads,
      [this](const WorkloadConfig& config) { return resolve_workload_netns(config, host_netns_); },
      was_in_force);
  if (!resolution) {
    return resolution.error();
  }
  for (auto& [name, unavailable] : resolution->unavailable) {
    if (auto before = unavailable_.find(name); before != unavailable_.end()) {
      unavailable.since = before->second.since;  // unavailable since it first failed
      unavailable.netns_id = before->second.netns_id;
    } else {
      for (const ResolvedWorkload& applied : resolved_) {
        if (applied.config.name == name) {
          unavailable.netns_id = applied.netns_id;
        }
      }
      spdlog::warn(
          "workload {} unavailable, kept: {}; it is out of the maps until a later change "
          "finds its namespace again (meshlanectl workload del removes it)",
          name, unavailable.reason);
    }
  }
  const std::vector<ResolvedWorkload> resolved = resolution->resolved;
  const WorkloadMaps maps = build_workload_maps(resolved);
  const PinLayout pins{bpffs_dir_};
  // Both sized by [maps]: checked before anything is written, so that too many workloads for
  // the configured capacity fail the change as a whole, naming the setting to raise.
  if (auto status = check_capacity(pins.map(ML_WORKLOADS_MAP_NAME), maps.workloads.size(),
                                   "workloads", "maps.workload_max_entries");
      !status) {
    return status;
  }
  if (auto status = check_capacity(pins.map(ML_POD_IPS_MAP_NAME), maps.pod_ips.size(),
                                   "workload addresses", "maps.pod_address_max_entries");
      !status) {
    return status;
  }
  // Rules before the workloads that refer to them, so a new workload is never seen without
  // its exclusions.
  if (auto status = sync_map(pins.map(ML_PORT_RULES_MAP_NAME), maps.port_rules); !status) {
    return status;
  }
  if (auto status = sync_map(pins.map(ML_CIDR_RULES_MAP_NAME), maps.cidr_rules); !status) {
    return status;
  }
  if (auto status = sync_map(pins.map(ML_WORKLOADS_MAP_NAME), maps.workloads); !status) {
    return status;
  }
  if (auto status = sync_map(pins.map(ML_POD_IPS_MAP_NAME), maps.pod_ips); !status) {
    return status;
  }
  std::vector<std::uint64_t> cookies;
  for (const ResolvedWorkload& workload : resolved) {
    cookies.push_back(workload.netns_cookie);
  }
  if (auto status = sync_workload_counters(bpffs_dir_, cookies); !status) {
    return status;
  }

  std::map<std::string, Attachment> now_applied;
  for (const ResolvedWorkload& workload : resolved) {
    const WorkloadConfig& config = workload.config;
    if (tc_programs_.ingress_fd < 0) {
      spdlog::warn("workload {}: no tc filters, interception is off", config.name);
      continue;
    }
    // Recorded before attaching: a crash in between must not leave a filter nobody knows of.
    now_applied[config.name] = {config.netns, config.interface, config.ips};
    save_record(&now_applied);
    bool tc_draining = false;
    if (tc_programs_.steer_by_lookup) {
      if (auto status = attach_sk_lookup(PinLayout{bpffs_dir_}, config.name, config.netns,
                                         tc_programs_.sk_lookup_fd);
          !status) {
        return status;
      }
      // tc filters an earlier run left (daemon.inbound_steering was "tc"): the connections
      // they steered need their rewrite until they end. Their programs are swapped for this
      // build's, which steer no new connection, and they go once those connections have.
      auto filters = tc_filters_attached(config.netns, config.interface);
      if (filters && filters.value()) {
        if (auto status = attach_tc(config.netns, config.interface, tc_programs_); !status) {
          return status;
        }
        auto since = draining_.find(config.name);
        draining_[config.name] = {now_applied[config.name], since != draining_.end()
                                                                ? since->second.since
                                                                : std::chrono::steady_clock::now()};
        tc_draining = true;
        spdlog::info(
            "workload {}: tc filters of an earlier run kept for the connections they steered "
            "(no new one); removed once those end",
            config.name);
      }
    } else {
      if (auto status = attach_tc(config.netns, config.interface, tc_programs_); !status) {
        return status;
      }
      // A socket-lookup link of an earlier run (daemon.inbound_steering was "sk_lookup"):
      // established connections do not need it, and tc steers from now on.
      if (auto status = detach_sk_lookup(PinLayout{bpffs_dir_}, config.name); !status) {
        spdlog::warn("workload {}: cannot remove the socket-lookup link of an earlier run: {}",
                     config.name, status.error().message());
      }
    }
    if (!tc_draining) {
      draining_.erase(config.name);
    }
    spdlog::info("workload {}: netns {} (cookie {}), {} address(es), mesh {}, {}", config.name,
                 config.netns, workload.netns_cookie, config.ips.size(), to_string(config.mesh),
                 tc_programs_.steer_by_lookup ? std::string("steered by socket lookup")
                                              : "tc on " + config.interface);
  }
  for (const auto& [name, attachment] : applied_) {
    auto still = now_applied.find(name);
    if (still == now_applied.end() || still->second.netns != attachment.netns ||
        still->second.interface != attachment.interface) {
      if (resolution->unavailable.count(name) != 0) {
        spdlog::info(
            "workload {} unavailable; its tc filters, if its interface still exists, "
            "stay until its steered connections end",
            name);
      } else {
        spdlog::info("workload {} removed; its tc filters stay until its steered connections end",
                     name);
      }
      draining_[name] = {attachment, std::chrono::steady_clock::now()};
    }
  }
  applied_ = std::move(now_applied);
  resolved_ = resolved;
  unavailable_ = std::move(resolution->unavailable);
  reap_draining();
  save_record();
  return {};
}

Result<std::size_t> count_steered_flows(const std::string& bpffs_dir,
                                        const std::vector<IpAddress>& ips) {
  const PinLayout pins{bpffs_dir};
  auto flows = TypedMap<ml_tc_flow_key, ml_tc_flow>::open_pin(pins.map(ML_TC_FLOWS_MAP_NAME));
  if (!flows) {
    return flows.error();
  }
  std::size_t count = 0;
  for (const ml_tc_flow_key& key : flows->keys()) {
    for (const IpAddress& ip : ips) {
      if (std::memcmp(key.local_ip6, ip.bytes.data(), ip.bytes.size()) == 0) {
        ++count;
        break;
      }
    }
  }
  return count;
}

std::optional<std::string> WorkloadManager::netns_of_address(const std::uint8_t* ip6) const {
  auto has = [ip6](const Attachment& attachment) {
    return std::any_of(attachment.ips.begin(), attachment.ips.end(), [ip6](const IpAddress& ip) {
      return std::memcmp(ip.bytes.data(), ip6, ip.bytes.size()) == 0;
    });
  };
  for (const auto& [name, attachment] : applied_) {
    if (has(attachment)) {
      return attachment.netns;
    }
  }
  for (const auto& [name, draining] : draining_) {
    if (has(draining.attachment)) {
      return draining.attachment.netns;
    }
  }
  return std::nullopt;
}

std::size_t WorkloadManager::reap_draining(std::chrono::steady_clock::duration max_drain) {
  const auto now = std::chrono::steady_clock::now();
  bool changed = false;
  for (auto it = draining_.begin(); it != draining_.end();) {
    const Attachment& attachment = it->second.attachment;
    auto flows = count_steered_flows(bpffs_dir_, attachment.ips);
    const bool drained = flows && flows.value() == 0;
    if (!drained && now - it->second.since < max_drain) {
      ++it;
      continue;
    }
    // A socket-lookup link is per workload name: one that is applied again (in another
    // namespace) has its link re-attached already. Removing it leaves every established
    // connection as it is, so nothing waits for it.
    if (applied_.count(it->first) == 0) {
      if (auto status = detach_sk_lookup(PinLayout{bpffs_dir_}, it->first); !status) {
        spdlog::warn("workload {}: cannot remove its socket-lookup steering: {}", it->first,
                     status.error().message());
      }
    }
    if (auto status = detach_tc(attachment.netns, attachment.interface); !status) {
      spdlog::warn("workload {}: cannot remove its tc filters: {}", it->first,
                   status.error().message());
    } else {
      spdlog::info("workload {}: tc filters removed ({})", it->first,
                   drained ? "no steered connection left" : "drain time exceeded");
    }
    it = draining_.erase(it);
    changed = true;
  }
  if (changed) {
    save_record();
  }
  return draining_.size();
}

const char* to_string(WorkloadHealth::State state) {
  switch (state) {
    case WorkloadHealth::State::kApplied: return "applied";
    case WorkloadHealth::State::kUnavailable: return "unavailable";
    case WorkloadHealth::State::kNotApplied: return "not_applied";
  }
  return "?";
}

const char* to_string(WorkloadHealth::Netns netns) {
  switch (netns) {
    case WorkloadHealth::Netns::kPresent: return "present";
    case WorkloadHealth::Netns::kGone: return "gone";
    case WorkloadHealth::Netns::kReplaced: return "replaced";
    case WorkloadHealth::Netns::kUnknown: return "unknown";
  }
  return "?";
}

const char* to_string(WorkloadHealth::Tc tc) {
  switch (tc) {
    case WorkloadHealth::Tc::kAttached: return "attached";
    case WorkloadHealth::Tc::kMissing: return "missing";
    case WorkloadHealth::Tc::kNotAttached: return "not_attached";
    case WorkloadHealth::Tc::kOff: return "off";
    case WorkloadHealth::Tc::kUnknown: return "unknown";
  }
  return "?";
}

WorkloadHealth WorkloadManager::health(const WorkloadConfig& workload) const {
  WorkloadHealth health;
  const auto applied = std::find_if(
      resolved_.begin(), resolved_.end(),
      [&](const ResolvedWorkload& resolved) { return resolved.config.name == workload.name; });
  const auto unavailable = unavailable_.find(workload.name);
  if (applied != resolved_.end()) {
    health.state = WorkloadHealth::State::kApplied;
    health.netns_cookie = applied->netns_cookie;
    health.netns_id = applied->netns_id;
  } else if (unavailable != unavailable_.end()) {
    health.state = WorkloadHealth::State::kUnavailable;
    health.netns_id = unavailable->second.netns_id;
    health.unavailable_reason = unavailable->second.reason;
    health.unavailable_for = std::chrono::steady_clock::now() - unavailable->second.since;
  }
  // The namespace now: gone when the path names no network namespace any more (ENOENT, or a
  // file that is something else now), replaced when it names another one than was applied.
  auto netns = open_network_namespace(workload.netns);
  if (!netns) {
    const Error& error = netns.error();
    const bool gone = error.errnum == ENOENT || error.errnum == 0;
    health.netns = gone ? WorkloadHealth::Netns::kGone : WorkloadHealth::Netns::kUnknown;
    health.netns_error = error.message();
  } else if (auto id = netns_id_of(netns->get(), workload.netns); !id) {
    health.netns_error = id.error().message();
  } else {
    const bool known = health.netns_id.inode != 0;
    health.netns = known && !(id.value() == health.netns_id) ? WorkloadHealth::Netns::kReplaced
                                                             : WorkloadHealth::Netns::kPresent;
    if (!known) {
      health.netns_id = id.value();
    }
  }
  if (health.state == WorkloadHealth::State::kApplied) {
    if (tc_programs_.ingress_fd < 0) {
      health.tc = WorkloadHealth::Tc::kOff;
    } else if (health.netns == WorkloadHealth::Netns::kPresent) {
      auto attached = tc_programs_.steer_by_lookup
                          ? sk_lookup_attached(PinLayout{bpffs_dir_}, workload.name, workload.netns)
                          : tc_filters_attached(workload.netns, workload.interface);
      if (!attached) {
        health.tc = WorkloadHealth::Tc::kUnknown;
        health.tc_error = attached.error().message();
      } else {
        health.tc = attached.value() ? WorkloadHealth::Tc::kAttached : WorkloadHealth::Tc::kMissing;
      }
    } else {
      // The filters were on an interface of the namespace that was applied, which is gone.
      health.tc = WorkloadHealth::Tc::kMissing;
    }
  }
  health.draining = draining_.count(workload.name) != 0;
  return health;
}

std::vector<DrainingAttachment> WorkloadManager::draining() const {
  std::vector<DrainingAttachment> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [name, draining] : draining_) {
    DrainingAttachment entry{name, draining.attachment.netns, draining.attachment.interface,
                             now - draining.since, std::nullopt};
    if (auto flows = count_steered_flows(bpffs_dir_, draining.attachment.ips)) {
      entry.steered_flows = flows.value();
    }
    out.push_back(std::move(entry));
  }
  return out;
}

int detach_workload_filters(const std::vector<WorkloadConfig>& workloads) {
  int visited = 0;
  for (const WorkloadConfig& config : workloads) {
    if (auto status = detach_tc(config.netns, config.interface); !status) {
      spdlog::warn("workload {}: {}", config.name, status.error().message());
    }
    ++visited;
  }
  return visited;
}

}  // namespace meshlane
