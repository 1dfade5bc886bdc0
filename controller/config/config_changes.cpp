#include "config/config_changes.hpp"

namespace meshlane {

namespace {

// Appends name when the two values differ. Every key of every table but [[workload]] is listed
// below, in the order of config/meshlane.toml; a key added to a table is added here too
// (config_changes_test.cpp changes each key and expects its name).
template <typename T>
void compare(std::vector<std::string>& out, const char* name, const T& was, const T& now) {
  if (!(was == now)) {
    out.emplace_back(name);
  }
}

}  // namespace

std::vector<std::string> changed_keys(const Config& was, const Config& now) {
  std::vector<std::string> out;
  const DaemonConfig& d0 = was.daemon;
  const DaemonConfig& d1 = now.daemon;
  compare(out, "daemon.bpffs_dir", d0.bpffs_dir, d1.bpffs_dir);
  compare(out, "daemon.cgroup", d0.cgroup, d1.cgroup);
  compare(out, "daemon.log_level", d0.log_level, d1.log_level);
  compare(out, "daemon.on_missing_feature", d0.on_missing_feature, d1.on_missing_feature);
  compare(out, "daemon.socket", d0.socket, d1.socket);
  compare(out, "daemon.socket_mode", d0.socket_mode, d1.socket_mode);
  // The deprecated socket_group is folded into socket_write_group by the loader: compared there.
  compare(out, "daemon.socket_read_group", d0.socket_read_group, d1.socket_read_group);
  compare(out, "daemon.socket_write_group", d0.socket_write_group, d1.socket_write_group);
  compare(out, "daemon.state_dir", d0.state_dir, d1.state_dir);
  compare(out, "daemon.allow_host_netns", d0.allow_host_netns, d1.allow_host_netns);
  compare(out, "daemon.decision_log", d0.decision_log, d1.decision_log);
  compare(out, "daemon.inbound_steering", d0.inbound_steering, d1.inbound_steering);
  const AccelerationConfig& a0 = was.acceleration;
  const AccelerationConfig& a1 = now.acceleration;
  compare(out, "acceleration.enabled", a0.enabled, a1.enabled);
  compare(out, "acceleration.sockhash_max_entries", a0.sockhash_max_entries,
          a1.sockhash_max_entries);
  compare(out, "acceleration.include_ports", a0.include_ports, a1.include_ports);
  compare(out, "acceleration.exclude_ports", a0.exclude_ports, a1.exclude_ports);
  compare(out, "acceleration.splice_blocking_sockets", a0.splice_blocking_sockets,
          a1.splice_blocking_sockets);
  compare(out, "acceleration.max_unread_bytes", a0.max_unread_bytes, a1.max_unread_bytes);
  compare(out, "acceleration.adaptive_splicing", a0.adaptive_splicing, a1.adaptive_splicing);
  compare(out, "acceleration.leave_spinning_readers", a0.leave_spinning_readers,
          a1.leave_spinning_readers);
  compare(out, "acceleration.spinning_reader_per_mille", a0.spinning_reader_per_mille,
          a1.spinning_reader_per_mille);
  compare(out, "maps.orig_dst_max_entries", was.maps.orig_dst_max_entries,
          now.maps.orig_dst_max_entries);
  compare(out, "maps.tc_flow_max_entries", was.maps.tc_flow_max_entries,
          now.maps.tc_flow_max_entries);
  compare(out, "maps.workload_max_entries", was.maps.workload_max_entries,
          now.maps.workload_max_entries);
  compare(out, "maps.pod_address_max_entries", was.maps.pod_address_max_entries,
          now.maps.pod_address_max_entries);
  compare(out, "metrics.listen", was.metrics.listen, now.metrics.listen);
  compare(out, "metrics.allow_non_loopback", was.metrics.allow_non_loopback,
          now.metrics.allow_non_loopback);
  compare(out, "kubernetes.cni_cache_dir", was.kubernetes.cni_cache_dir,
          now.kubernetes.cni_cache_dir);
  compare(out, "kubernetes.cni_conf_dir", was.kubernetes.cni_conf_dir, now.kubernetes.cni_conf_dir);
  return out;
}

bool applied_on_reload(const std::string& dotted_key) { return dotted_key == "daemon.log_level"; }

}  // namespace meshlane
