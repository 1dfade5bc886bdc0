// Workloads (pods) as the kernel sees them: built from the config, written to the pinned maps
// as a desired state, with tc filters on each pod's interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/netns.hpp"
#include "config/config.hpp"
#include "datapath/datapath.hpp"
#include "meshlane/shared.h"

namespace meshlane {

// A workload whose namespace was found: the cookie the kernel identifies it by.
struct ResolvedWorkload {
  WorkloadConfig config;
  std::uint64_t netns_cookie = 0;
  std::uint32_t id = 0;  // non-zero; scopes its port and CIDR rules
  NetnsId netns_id;      // which namespace the path named when it was resolved
};

// A workload that was in force and whose namespace (or interface) has since vanished: kept in
// the desired state, out of the maps, until it resolves again or is removed.
struct UnavailableWorkload {
  std::string netns;
  std::string interface;
  std::string reason;  // the resolution error
  NetnsId netns_id;    // the namespace it had when last applied; zero when unknown
  std::chrono::steady_clock::time_point since;
};

// A desired set of workloads, resolved: the ones in force (ids by sorted name) and, by name,
// the ones whose namespace vanished.
struct WorkloadResolution {
  std::vector<ResolvedWorkload> resolved;
  std::map<std::string, UnavailableWorkload> unavailable;
};

// Checks one workload's namespace (open_network_namespace, and the host's refused unless
// `host` allows it) and interface, and reads its cookie. Errors start "workload NAME: ".
Result<NetnsInfo> resolve_workload_netns(const WorkloadConfig& config, HostNetns host);

using ResolveNetnsFn = std::function<Result<NetnsInfo>(const WorkloadConfig&)>;
// Whether a workload whose namespace does not resolve is one already in force (same name, netns
// and interface), and so kept as unavailable rather than failing the whole set.
using WasInForceFn = std::function<bool(const WorkloadConfig&)>;

// Resolves every workload with `resolve`. A failure is an error naming the workload, unless
// `was_in_force` says it is a pod that vanished since it was applied: that one is listed in
// `unavailable` and the rest still resolve. Two workloads in one namespace are an error.
Result<WorkloadResolution> resolve_workloads(const std::vector<WorkloadConfig>& configs,
                                             const ResolveNetnsFn& resolve,
                                             const WasInForceFn& was_in_force);

// Everything the maps should hold for a set of workloads.
struct WorkloadMaps {
  std::vector<std::pair<std::uint64_t, ml_workload>> workloads;       // ml_workloads_v1
  std::vector<std::pair<ml_ip_key, ml_workload>> pod_ips;             // ml_pod_ips_v1
  std::vector<std::pair<ml_port_rule_key, std::uint8_t>> port_rules;  // ml_portrules_v1
  std::vector<std::pair<ml_cidr_rule_key, std::uint8_t>> cidr_rules;  // ml_cidrrules_v1
};

ml_workload make_kernel_workload(const ResolvedWorkload& workload);
WorkloadMaps build_workload_maps(const std::vector<ResolvedWorkload>& workloads);

// What workload list/get report about one workload besides its spec.
struct WorkloadHealth {
  enum class State {
    kApplied,      // in the maps, intercepted
    kUnavailable,  // its namespace or interface vanished after it was applied
    kNotApplied,   // not in what the manager applied (no change has applied it yet)
  };
  enum class Netns {
    kPresent,   // the path names the namespace that was applied (or, unavailable: a namespace)
    kGone,      // the path names no network namespace now
    kReplaced,  // the path names another namespace than the one applied (pod recreated)
    kUnknown,   // the check failed (netns_error)
  };
  enum class Tc {
    kAttached,     // both filters are on the interface
    kMissing,      // applied, but the kernel has not both filters (removed by someone else)
    kNotAttached,  // not applied, or unavailable: none expected
    kOff,          // interception is off (degraded mode): no tc programs
    kUnknown,      // the query failed (tc_error)
  };
  State state = State::kNotApplied;
  std::uint64_t netns_cookie = 0;  // as applied; 0 when not applied
  NetnsId netns_id;                // as applied (or last applied)
  Netns netns = Netns::kUnknown;
  std::string netns_error;
  Tc tc = Tc::kNotAttached;
  std::string tc_error;
  std::string unavailable_reason;
  std::chrono::steady_clock::duration unavailable_for{};
  bool draining = false;  // an earlier attachment of this name still drains
};
const char* to_string(WorkloadHealth::State state);
const char* to_string(WorkloadHealth::Netns netns);
const char* to_string(WorkloadHealth::Tc tc);

// A removed (or vanished) workload's tc filters, kept while steered connections drain.
struct DrainingAttachment {
  std::string name;
  std::string netns;
  std::string interface;
  std::chrono::steady_clock::duration draining_for{};
  std::optional<std::size_t> steered_flows;  // nullopt when the flow map cannot be read
};

// Applies workloads to the pinned maps and tc filters. A new or changed workload whose
// namespace or interface does not resolve fails the whole change (nothing changes, the error
// names it); one that was in force and whose pod vanished since is kept as unavailable (out
// of the maps, reported by health()) so that it blocks no other change.
class WorkloadManager {
 public:
  // record_path: a file (in daemon.state_dir) that lists every interface meshlane's tc filters
  // are on, kept up to date, so that a restarted daemon still drains the filters of workloads
  // removed before it died and --cleanup finds them all. "" keeps no record. host_netns:
  // daemon.allow_host_netns.
  WorkloadManager(std::string bpffs_dir, TcPrograms tc_programs, std::string record_path = "",
                  HostNetns host_netns = HostNetns::kRefuse);

  // A workload that is removed stops being intercepted at once, but its tc filters stay until
  // the connections they steered have ended (see reap_draining), so none of them breaks. A
  // workload whose namespace vanished is handled the same way and reported unavailable.
  Status apply(const std::vector<WorkloadConfig>& workloads);

  // Whether one workload could be applied on its own (its netns and interface resolve).
  [[nodiscard]] Status check(const WorkloadConfig& workload) const;

  // The workload's state now (the namespace and tc filters are looked at live).
  [[nodiscard]] WorkloadHealth health(const WorkloadConfig& workload) const;
  // Attachments draining after their workload was removed, by name.
  [[nodiscard]] std::vector<DrainingAttachment> draining() const;
  [[nodiscard]] std::size_t unavailable_count() const { return unavailable_.size(); }

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
  HostNetns host_netns_;
  std::map<std::string, UnavailableWorkload> unavailable_;  // by workload name

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

// Resolves netns cookies for the configured workloads (ids by sorted name), all or nothing.
Result<std::vector<ResolvedWorkload>> resolve_workloads(const std::vector<WorkloadConfig>& configs,
                                                        HostNetns host = HostNetns::kRefuse);

// Removes meshlane's tc filters from every configured workload (for --cleanup). Missing
// namespaces are fine; returns the number of workloads visited.
int detach_workload_filters(const std::vector<WorkloadConfig>& workloads);

}  // namespace meshlane
