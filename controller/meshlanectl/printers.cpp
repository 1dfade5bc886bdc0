#include "meshlanectl/printers.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "observe/decisions.hpp"

namespace meshlane::cli {

// ---- Tables ----------------------------------------------------------------------------------

// Columns padded to their widest cell, two spaces apart; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  [[nodiscard]] std::string str() const {
    std::vector<std::size_t> widths;
    for (const auto& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()));
      for (std::size_t i = 0; i < row.size(); ++i) {
        widths[i] = std::max(widths[i], row[i].size());
      }
    }
    std::ostringstream out;
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) {
          line += std::string(widths[i] - row[i].size() + 2, ' ');
        }
      }
      out << line << '\n';
    }
    return out.str();
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string text(const json& value) {
  if (value.is_null()) {
    return "-";
  }
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "yes" : "no";
  }
  if (value.is_array()) {
    if (value.empty()) {
      return "-";
    }
    std::string joined;
    for (const json& element : value) {
      joined += (joined.empty() ? "" : ", ") + text(element);
    }
    return joined;
  }
  return value.dump();
}

std::string duration_text(std::int64_t seconds) {
  std::ostringstream out;
  const std::int64_t days = seconds / 86400;
  const std::int64_t hours = seconds % 86400 / 3600;
  const std::int64_t minutes = seconds % 3600 / 60;
  if (days > 0) {
    out << days << "d ";
  }
  if (days > 0 || hours > 0) {
    out << hours << "h ";
  }
  if (days > 0 || hours > 0 || minutes > 0) {
    out << minutes << "m ";
  }
  out << seconds % 60 << "s";
  return out.str();
}

// ---- Printers (one per method) -----------------------------------------------------------------

// "start: 7 listener(s), 7 recorded (6 non-blocking, 1 blocking), 0 already known; 1 scan(s)"
std::string listener_scan_text(const json& scan) {
  if (scan.contains("unavailable")) {
    return "unavailable: " + text(scan["unavailable"]);
  }
  if (!scan.contains("last")) {
    return scan.value("available", false) ? "not run yet" : "off (splicing is off)";
  }
  const json& last = scan["last"];
  std::string line = text(last.value("reason", json())) + ": ";
  if (last.contains("error")) {
    line += "failed: " + text(last["error"]);
  } else {
    const std::string modes = last.value("modes_recorded", true)
                                  ? text(last.value("recorded_nonblocking", json())) +
                                        " non-blocking, " +
                                        text(last.value("recorded_blocking", json())) + " blocking"
                                  : std::string("acceleration off: no mode is recorded");
    line += text(last.value("listeners", json())) + " listener(s), " +
            text(last.value("recorded", json())) + " recorded (" + modes + "), " +
            text(last.value("already_known", json())) + " already known, " +
            text(last.value("registered", json())) + " registered" +
            (last.value("complete", true) ? "" : ", incomplete");
  }
  return line + "; " + text(scan.value("scans", json())) + " scan(s)";
}

// "splicing on, interception on (inbound steering by sk_lookup)", and why when a part is off.
std::string datapath_text(const json& r) {
  const bool splicing = r.value("splicing", true);
  const bool interception = r.value("interception", true);
  std::string line = std::string("splicing ") + (splicing ? "on" : "off") + ", interception " +
                     (interception ? "on" : "off");
  if (interception && r.contains("inbound_steering")) {
    line += " (inbound steering by " + text(r["inbound_steering"]) + ")";
  }
  if (!splicing || !interception) {
    line += " (degraded: the kernel lacks a feature, see KERNEL FEATURE)";
  }
  return line;
}

void print_status(const json& r) {
  const auto count_present = [](const json& features) {
    std::size_t found = 0;
    for (const json& feature : features) {
      found += feature.value("present", false) ? 1 : 0;
    }
    return found;
  };
  const json features = r.value("kernel_features", json::array());
  const json optional_features = r.value("optional_kernel_features", json::array());
  const json acceleration = r.value("acceleration", json::object());
  const json workloads = r.value("workloads", json::object());
  Table summary({"version", text(r.value("version", json())) + " (protocol " +
                                text(r.value("protocol", json())) + "), pid " +
                                text(r.value("pid", json()))});
  summary.add({"uptime", duration_text(r.value("uptime_seconds", std::int64_t{0})) + " (since " +
                             text(r.value("started_at", json())) + ")"});
  std::string kernel_line = text(r.value("kernel_release", json())) + ", " +
                            std::to_string(count_present(features)) + " of " +
                            std::to_string(features.size()) + " features found";
  if (!optional_features.empty()) {
    kernel_line += ", " + std::to_string(count_present(optional_features)) + " of " +
                   std::to_string(optional_features.size()) + " optional ones on";
  }
  summary.add({"kernel", kernel_line});
  if (r.contains("splicing") || r.contains("interception")) {
    summary.add({"datapath", datapath_text(r)});
  }
  summary.add({"cgroup", text(r.value("cgroup", json()))});
  summary.add({"bpffs_dir", text(r.value("bpffs_dir", json())) +
                                (r.value("maps_adopted", false) ? " (maps adopted)" : "")});
  summary.add({"acceleration", std::string(acceleration.value("enabled", false) ? "on" : "off") +
                                   ", sockhash capacity " +
                                   text(acceleration.value("sockhash_max_entries", json()))});
  summary.add({"workloads", text(workloads.value("total", json())) + " (" +
                                text(workloads.value("config", json())) +
                                " from the config file, " + text(workloads.value("live", json())) +
                                " live)"});
  summary.add({"listener scan", listener_scan_text(r.value("listener_scan", json::object()))});
  summary.add({"socket", text(r.value("socket", json()))});
  summary.add({"state_dir", text(r.value("state_dir", json()))});
  std::cout << summary.str() << '\n';

  Table attachments({"ATTACH POINT", "OUTCOME", "PIN"});
  for (const json& a : r.value("attachments", json::array())) {
    attachments.add({text(a.value("what", json())), text(a.value("outcome", json())),
                     text(a.value("pin", json()))});
  }
  std::cout << attachments.str() << '\n';

  const json usage = r.value("map_usage", json::object());
  const json maps = usage.value("maps", json::object());
  if (!maps.empty()) {
    Table table({"MAP", "USED", "CAPACITY", "USE", "SETTING"});
    for (const auto& [name, map] : maps.items()) {
      const std::uint64_t used = map.value("entries", std::uint64_t{0});
      const std::uint64_t capacity = map.value("capacity", std::uint64_t{0});
      std::string share = "-";
      if (map.contains("error")) {
        share = "unreadable: " + text(map["error"]);
      } else if (capacity > 0) {
        share = std::to_string(used * 100 / capacity) + "%" +
                (map.value("complete", true) ? "" : " (at least)");
      }
      table.add({name + " (" + text(map.value("pin", json())) + ")", std::to_string(used),
                 std::to_string(capacity), share, text(map.value("setting", json()))});
    }
    std::cout << table.str() << "(counted at " << text(usage.value("counted_at", json()))
              << ")\n\n";
  }

  Table kernel({"KERNEL FEATURE", "FOUND", "NEEDED FOR"});
  for (const json& feature : features) {
    kernel.add({text(feature.value("name", json())), text(feature.value("present", json())),
                text(feature.value("needed_for", json()))});
  }
  std::cout << kernel.str();
  if (optional_features.empty()) {
    return;
  }
  // What an optional feature that is off costs, on its own row: it never degrades the daemon.
  Table optional({"OPTIONAL KERNEL FEATURE", "ON", "FOR", "WHEN OFF"});
  for (const json& feature : optional_features) {
    const bool on = feature.value("present", false);
    optional.add({text(feature.value("name", json())), on ? "yes" : "no",
                  text(feature.value("needed_for", json())),
                  on ? "-" : text(feature.value("when_absent", json()))});
  }
  std::cout << '\n' << optional.str();
}

void print_stats(const json& r) {
  Table table({"COUNTER", "VALUE"});
  const json counters = r.value("counters", json::object());
  for (const auto& [name, value] : counters.items()) {
    table.add({name, text(value)});
  }
  std::cout << table.str();
}

void print_policy_apply(const json& r) {
  const json outcomes = r.value("outcomes", json::object());
  for (const auto& [name, outcome] : outcomes.items()) {
    std::cout << "policy " << name << ": " << text(outcome) << '\n';
  }
  const json removed = r.value("removed", json::array());
  for (const json& name : removed) {
    std::cout << "policy " << text(name) << ": removed\n";
  }
  if (r.contains("name")) {
    std::cout << "policy " << text(r["name"]) << ": " << text(r.value("outcome", json())) << '\n';
  }
  std::cout << "in force: " << text(r.value("policies", json())) << " policies, "
            << text(r.value("kernel_entries", json())) << " kernel entries, switched after "
            << text(r.value("install_us", json())) << " us\n";
  const json unmatched = r.value("unmatched_policies", json::array());
  for (const json& name : unmatched) {
    std::cout << "warning: policy " << text(name) << " selects no workload now\n";
  }
}

void print_policy_list(const json& r) {
  const json policies = r.value("policies", json::array());
  if (policies.size() == 1) {
    std::cout << policies[0].dump(2) << '\n';
    return;
  }
  Table table({"NAME", "APPLIES TO", "INGRESS RULES", "EGRESS RULES"});
  for (const json& policy : policies) {
    const std::string target = policy.contains("workload")
                                   ? "workload " + text(policy["workload"])
                                   : "labels " + policy.value("selector", json::object()).dump();
    table.add({text(policy["name"]), target,
               std::to_string(policy.value("ingress", json::array()).size()),
               std::to_string(policy.value("egress", json::array()).size())});
  }
  std::cout << table.str();
}

// A policy file for `policy apply`: {"policies": [...]} or one policy object; "-" is stdin.
std::optional<json> read_policy_file(const std::string& path) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << "meshlanectl: cannot read policy file " << path << ": " << std::strerror(errno)
                << '\n';
      return std::nullopt;
    }
    in = &file;
  }
  const std::string content((std::istreambuf_iterator<char>(*in)),
                            std::istreambuf_iterator<char>());
  json document = json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    std::cerr << "meshlanectl: " << path << " is not valid JSON\n";
    return std::nullopt;
  }
  if (document.is_object() && document.contains("policies")) {
    return document["policies"];
  }
  return json::array({document});
}

// "applied", "unavailable", ...: the health's state, "-" from a daemon that reports none.
std::string health_state(const json& entry) {
  const json health = entry.value("health", json());
  return health.is_object() ? text(health.value("state", json())) : "-";
}

// {"app":"reviews","version":"v1"} -> "app=reviews, version=v1"; none -> "-".
std::string labels_text(const json& labels) {
  if (!labels.is_object() || labels.empty()) {
    return "-";
  }
  std::string joined;
  for (const auto& [key, value] : labels.items()) {
    joined += (joined.empty() ? "" : ", ") + key + "=" + text(value);
  }
  return joined;
}

// A workload's own splicing setting: "yes", "no", or "yes, not 6379, 5432" with excepted ports.
std::string acceleration_text(const json& spec) {
  const json enabled = spec.value("acceleration", json());
  if (!enabled.is_boolean()) {
    return "-";  // a daemon that reports no such key
  }
  const json excepted = spec.value("exclude_acceleration_ports", json::array());
  if (!enabled.get<bool>() || !excepted.is_array() || excepted.empty()) {
    return text(enabled);
  }
  return "yes, not " + text(excepted);
}

void print_workload_list(const json& r) {
  Table table(
      {"NAME", "SOURCE", "STATE", "MESH", "FAST PATH", "ACCELERATION", "NETNS", "IPS", "LABELS"});
  for (const json& entry : r.value("workloads", json::array())) {
    const json spec = entry.value("spec", json::object());
    table.add({text(entry.value("name", json())), text(entry.value("source", json())),
               health_state(entry), text(spec.value("mesh", json())),
               text(spec.value("fast_path", json())), acceleration_text(spec),
               text(spec.value("netns", json())), text(spec.value("ips", json())),
               labels_text(spec.value("labels", json()))});
  }
  std::cout << table.str();
  const json draining = r.value("draining", json::array());
  if (draining.is_array() && !draining.empty()) {
    // Removed workloads are no longer listed above, but their tc filters are still on the pod.
    std::cout << "\ndraining (removed; tc filters kept until their steered connections end):\n";
    Table drains({"NAME", "NETNS", "INTERFACE", "FOR", "STEERED"});
    for (const json& d : draining) {
      drains.add({text(d.value("name", json())), text(d.value("netns", json())),
                  text(d.value("interface", json())),
                  text(d.value("draining_seconds", json())) + "s",
                  text(d.value("steered_flows", json()))});
    }
    std::cout << drains.str();
  }
}

// The health keys workload get prints after the spec, in this order.
constexpr const char* kHealthKeys[] = {
    "state",   "unavailable_reason", "unavailable_seconds", "netns_cookie", "netns_inode",
    "netns",   "netns_exists",       "netns_error",         "tc_filters",   "tc_error",
    "draining"};

// Every [[workload]] key, in the order of config/meshlane.toml.
constexpr const char* kSpecKeys[] = {"name",
                                     "netns",
                                     "ips",
                                     "mesh",
                                     "proxy_uid",
                                     "proxy_gid",
                                     "outbound_port",
                                     "inbound_port",
                                     "inbound_passthrough_sources",
                                     "include_outbound_ports",
                                     "exclude_outbound_ports",
                                     "include_inbound_ports",
                                     "exclude_inbound_ports",
                                     "include_outbound_cidrs",
                                     "exclude_outbound_cidrs",
                                     "exclude_inbound_cidrs",
                                     "node_proxy",
                                     "interface",
                                     "acceleration",
                                     "exclude_acceleration_ports",
                                     "fast_path",
                                     "fast_path_exclude_ports",
                                     "labels"};

void print_workload(const json& r) {
  const json spec = r.value("spec", json::object());
  Table table({"source", text(r.value("source", json()))});
  for (const char* key : kSpecKeys) {
    const json value = spec.value(key, json());
    table.add({key, value.is_object() ? labels_text(value) : text(value)});
  }
  const json health = r.value("health", json());
  if (health.is_object()) {
    for (const char* key : kHealthKeys) {
      if (health.contains(key)) {
        table.add({std::string("health.") + key, text(health[key])});
      }
    }
  }
  std::cout << table.str();
}

void print_workload_add(const json& r) {
  std::cout << "workload " << text(r.value("name", json())) << ' '
            << text(r.value("outcome", json())) << '\n';
}

void print_workload_del(const json& r) {
  const std::string outcome = text(r.value("outcome", json()));
  std::cout << "workload " << text(r.value("name", json())) << ' '
            << (outcome == "absent" ? "was not there" : outcome) << '\n';
}

void print_conns(const json& r) {
  Table table({"LOCAL", "REMOTE", "WORKLOAD", "REMOTE WORKLOAD", "KIND", "PEER SPLICED", "SCOPE"});
  for (const json& c : r.value("connections", json::array())) {
    const json scope = c.value("scope", json());
    table.add({text(c.value("local", json())), text(c.value("remote", json())),
               text(c.value("workload", json())), text(c.value("remote_workload", json())),
               text(c.value("kind", json())), text(c.value("peer_in_map", json())),
               scope == 0 ? std::string("-") : "netns " + text(scope)});
  }
  std::cout << table.str();
  std::cout << text(r.value("total", json())) << " socket(s) in the sockhash";
  if (r.value("truncated", false)) {
    std::cout << ", " << text(r.value("shown", json())) << " shown (--limit)";
  }
  std::cout << '\n';
}

void print_explain(const json& r) { std::cout << meshlane::monitor::format_explain(r); }

}  // namespace meshlane::cli
