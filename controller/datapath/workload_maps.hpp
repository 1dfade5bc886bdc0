// Workloads (pods) as the kernel sees them: built from the config, written to the pinned maps
// as a desired state, with tc filters on each pod's interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "config/config.hpp"
#include "datapath/datapath.hpp"
#include "meshlane/shared.h"

namespace meshlane {

// A workload whose namespace was found: the cookie the kernel identifies it by.
struct ResolvedWorkload {
  WorkloadConfig config;
  std::uint64_t netns_cookie = 0;
  std::uint32_t id = 0;  // non-zero; scopes its port and CIDR rules
};

// Everything the maps should hold for a set of workloads.
struct WorkloadMaps {
  std::vector<std::pair<std::uint64_t, ml_workload>> workloads;       // ml_workloads_v1
  std::vector<std::pair<ml_ip_key, ml_workload>> pod_ips;             // ml_pod_ips_v1
  std::vector<std::pair<ml_port_rule_key, std::uint8_t>> port_rules;  // ml_portrules_v1
  std::vector<std::pair<ml_cidr_rule_key, std::uint8_t>> cidr_rules;  // ml_cidrrules_v1
};

ml_workload make_kernel_workload(const ResolvedWorkload& workload);
WorkloadMaps build_workload_maps(const std::vector<ResolvedWorkload>& workloads);

// Applies workloads to the pinned maps and tc filters. Resolving is all or nothing: if any
// namespace or interface is missing, nothing changes and the error names it.
class WorkloadManager {
 public:
  // record_path: a file (in daemon.state_dir) that lists every interface meshlane's tc filters
  // are on, kept up to date, so that a restarted daemon still drains the filters of workloads
  // removed before it died and --cleanup finds them all. "" keeps no record.
  WorkloadManager(std::string bpffs_dir, TcPrograms tc_programs, std::string record_path = "");

  // A workload that is removed stops being intercepted at once, but its tc filters stay until
  // the connections they steered have ended (see reap_draining), so none of them breaks.
  Status apply(const std::vector<WorkloadConfig>& workloads);

  // Detaches the filters of removed workloads that no longer carry a steered flow, or that
  // have drained for longer than max_drain. Returns how many are still draining.
  std::size_t reap_draining(std::chrono::steady_clock::duration max_drain = std::chrono::hours(1));

  [[nodiscard]] std::size_t applied_count() const { return applied_.size(); }
  // The workloads in force, with their netns cookies (what policies are compiled against).
  [[nodiscard]] const std::vector<ResolvedWorkload>& applied() const { return resolved_; }
  [[nodiscard]] std::size_t draining_count() const { return draining_.size(); }
  // The namespace of the applied or draining workload that has this address (16 bytes,
  // v4-mapped for IPv4), if any.
  [[nodiscard]] std::optional<std::string> netns_of_address(const std::uint8_t* ip6) const;

 private:
  struct Attachment {
    std::string netns;
    std::string interface;
    std::vector<IpAddress> ips;
  };
  struct Draining {
    Attachment attachment;
    std::chrono::steady_clock::time_point since;
  };

  std::string bpffs_dir_;
  TcPrograms tc_programs_;
  std::map<std::string, Attachment> applied_;  // by workload name
  std::vector<ResolvedWorkload> resolved_;
  std::map<std::string, Draining> draining_;  // removed, filters kept for open flows
  std::string record_path_;

  // Writes applied_, draining_ and `pending` (attachments about to be made) to record_path_.
  void save_record(const std::map<std::string, Attachment>* pending = nullptr) const;
};

// Where WorkloadManager records its tc attachments, below daemon.state_dir.
std::string tc_record_path(const std::string& state_dir);

// The interfaces with meshlane's tc filters according to the record (for --cleanup), as
// workloads with name, netns and interface set. A record that is a symlink or not a regular
// file is ignored with a warning.
std::vector<WorkloadConfig> read_tc_record(const std::string& record_path);

// Number of tc-steered flows whose pod-side address is one of `ips` (ml_tcflows_v1).
Result<std::size_t> count_steered_flows(const std::string& bpffs_dir,
                                        const std::vector<IpAddress>& ips);

// Resolves netns cookies for the configured workloads (ids by sorted name).
Result<std::vector<ResolvedWorkload>> resolve_workloads(const std::vector<WorkloadConfig>& configs);

// Removes meshlane's tc filters from every configured workload (for --cleanup). Missing
// namespaces are fine; returns the number of workloads visited.
int detach_workload_filters(const std::vector<WorkloadConfig>& workloads);

}  // namespace meshlane
