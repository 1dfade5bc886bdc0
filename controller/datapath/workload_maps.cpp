#include "datapath/workload_maps.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/netns.hpp"
#include "common/text_file.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/counter_maps.hpp"
#include "datapath/pin_layout.hpp"
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

Result<std::vector<ResolvedWorkload>> resolve_workloads(
    const std::vector<WorkloadConfig>& configs) {
  std::vector<const WorkloadConfig*> by_name;
  by_name.reserve(configs.size());
  for (const WorkloadConfig& config : configs) {
    by_name.push_back(&config);
  }
  std::sort(by_name.begin(), by_name.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  std::vector<ResolvedWorkload> resolved;
  std::set<std::uint64_t> cookies;
  for (const WorkloadConfig* config : by_name) {
    auto cookie = netns_cookie_of(config->netns);
    if (!cookie) {
      return make_error(cookie.error().errnum,
                        "workload " + config->name + ": " + cookie.error().context);
    }
    if (!cookies.insert(cookie.value()).second) {
      return make_error(EINVAL, "workload " + config->name + ": netns " + config->netns +
                                    " is already another workload's namespace");
    }
    if (auto index = interface_index_in(config->netns, config->interface); !index) {
      return make_error(index.error().errnum,
                        "workload " + config->name + ": " + index.error().context);
    }
    resolved.push_back({*config, cookie.value(), static_cast<std::uint32_t>(resolved.size() + 1)});
  }
  return resolved;
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
                                 std::string record_path)
    : bpffs_dir_(std::move(bpffs_dir)),
      tc_programs_(tc_programs),
      record_path_(std::move(record_path)) {
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

Status WorkloadManager::apply(const std::vector<WorkloadConfig>& workloads) {
  auto resolved = resolve_workloads(workloads);
  if (!resolved) {
    return resolved.error();
  }
  const WorkloadMaps maps = build_workload_maps(resolved.value());
  const PinLayout pins{bpffs_dir_};
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
  for (const ResolvedWorkload& workload : resolved.value()) {
    cookies.push_back(workload.netns_cookie);
  }
  if (auto status = sync_workload_counters(bpffs_dir_, cookies); !status) {
    return status;
  }

  std::map<std::string, Attachment> now_applied;
  for (const ResolvedWorkload& workload : resolved.value()) {
    const WorkloadConfig& config = workload.config;
    if (tc_programs_.ingress_fd < 0) {
      spdlog::warn("workload {}: no tc filters, interception is off", config.name);
      continue;
    }
    // Recorded before attaching: a crash in between must not leave a filter nobody knows of.
    now_applied[config.name] = {config.netns, config.interface, config.ips};
    save_record(&now_applied);
    if (auto status = attach_tc(config.netns, config.interface, tc_programs_); !status) {
      return status;
    }
    draining_.erase(config.name);
    spdlog::info("workload {}: netns {} (cookie {}), {} address(es), mesh {}, tc on {}",
                 config.name, config.netns, workload.netns_cookie, config.ips.size(),
                 to_string(config.mesh), config.interface);
  }
  for (const auto& [name, attachment] : applied_) {
    auto still = now_applied.find(name);
    if (still == now_applied.end() || still->second.netns != attachment.netns ||
        still->second.interface != attachment.interface) {
      spdlog::info("workload {} removed; its tc filters stay until its steered connections end",
                   name);
      draining_[name] = {attachment, std::chrono::steady_clock::now()};
    }
  }
  applied_ = std::move(now_applied);
  resolved_ = std::move(resolved.value());
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
