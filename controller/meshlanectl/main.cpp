// meshlanectl: the operator CLI of meshlaned's control socket (docs/cli.md).
//
// Exit status: 0 ok, 1 usage error, 2 the daemon answered with an error (or broke off the
// exchange), 3 cannot connect to the daemon.
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "control/client.hpp"
#include "control/protocol.hpp"
#include "observe/events.hpp"

namespace {

namespace control = meshlane::control;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitDaemon = 2;
constexpr int kExitConnect = 3;

struct Globals {
  std::string socket = meshlane::kDefaultControlSocket;
  std::string output = "table";
  double timeout_seconds = 30;
};

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
    line += text(last.value("listeners", json())) + " listener(s), " +
            text(last.value("recorded", json())) + " recorded (" +
            text(last.value("recorded_nonblocking", json())) + " non-blocking, " +
            text(last.value("recorded_blocking", json())) + " blocking), " +
            text(last.value("already_known", json())) + " already known, " +
            text(last.value("registered", json())) + " registered" +
            (last.value("complete", true) ? "" : ", incomplete");
  }
  return line + "; " + text(scan.value("scans", json())) + " scan(s)";
}

void print_status(const json& r) {
  std::size_t found = 0;
  const json features = r.value("kernel_features", json::array());
  for (const json& feature : features) {
    found += feature.value("present", false) ? 1 : 0;
  }
  const json acceleration = r.value("acceleration", json::object());
  const json workloads = r.value("workloads", json::object());
  Table summary({"version", text(r.value("version", json())) + " (protocol " +
                                text(r.value("protocol", json())) + "), pid " +
                                text(r.value("pid", json()))});
  summary.add({"uptime", duration_text(r.value("uptime_seconds", std::int64_t{0})) + " (since " +
                             text(r.value("started_at", json())) + ")"});
  summary.add({"kernel", text(r.value("kernel_release", json())) + ", " + std::to_string(found) +
                             " of " + std::to_string(features.size()) + " features found"});
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

  Table kernel({"KERNEL FEATURE", "FOUND", "NEEDED FOR"});
  for (const json& feature : features) {
    kernel.add({text(feature.value("name", json())), text(feature.value("present", json())),
                text(feature.value("needed_for", json()))});
  }
  std::cout << kernel.str();
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

void print_workload_list(const json& r) {
  Table table({"NAME", "SOURCE", "MESH", "FAST PATH", "NETNS", "IPS"});
  for (const json& entry : r.value("workloads", json::array())) {
    const json spec = entry.value("spec", json::object());
    table.add({text(entry.value("name", json())), text(entry.value("source", json())),
               text(spec.value("mesh", json())), text(spec.value("fast_path", json())),
               text(spec.value("netns", json())), text(spec.value("ips", json()))});
  }
  std::cout << table.str();
}

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
                                     "fast_path",
                                     "fast_path_exclude_ports"};

void print_workload(const json& r) {
  const json spec = r.value("spec", json::object());
  Table table({"source", text(r.value("source", json()))});
  for (const char* key : kSpecKeys) {
    table.add({key, text(spec.value(key, json()))});
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

// ---- Calling the daemon ------------------------------------------------------------------------

using Printer = void (*)(const json&);

int call(const Globals& globals, const std::string& method, const json& params, Printer printer) {
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(globals.timeout_seconds * 1000));
  auto client = control::Client::connect(globals.socket, timeout);
  if (!client) {
    std::cerr << "meshlanectl: " << client.error().message() << '\n';
    return kExitConnect;
  }
  auto response = client->call(method, params);
  if (!response) {
    std::cerr << "meshlanectl: " << method << ": " << response.error().message() << '\n';
    return kExitDaemon;
  }
  const bool as_json = globals.output == "json";
  if (response->error) {
    if (as_json) {
      std::cout << json{{"error",
                         {{"code", response->error_code_text},
                          {"message", response->error->message}}}}
                       .dump()
                << '\n';
    }
    std::cerr << "meshlanectl: " << method << ": " << response->error->message << " ("
              << response->error_code_text << ")\n";
    return kExitDaemon;
  }
  if (as_json) {
    std::cout << response->result->dump() << '\n';
  } else {
    printer(*response->result);
  }
  return kExitOk;
}

// ---- workload add ------------------------------------------------------------------------------

// "a,b,c" -> ["a","b","c"]; "none" or "" -> [] (replaces the preset's list with nothing).
std::vector<std::string> split_list(const std::vector<std::string>& values) {
  std::vector<std::string> items;
  for (const std::string& value : values) {
    if (value == "none" || value.empty()) {
      continue;
    }
    std::stringstream stream(value);
    std::string item;
    while (std::getline(stream, item, ',')) {
      if (!item.empty()) {
        items.push_back(item);
      }
    }
  }
  return items;
}

// Integers are sent as integers; anything else as a string, for the daemon to reject with the
// same message the config file would get.
json port_list(const std::vector<std::string>& values) {
  json list = json::array();
  for (const std::string& item : split_list(values)) {
    std::int64_t number = 0;
    auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), number);
    if (error == std::errc() && end == item.data() + item.size()) {
      list.push_back(number);
    } else {
      list.push_back(item);
    }
  }
  return list;
}

json string_list(const std::vector<std::string>& values) {
  json list = json::array();
  for (const std::string& item : split_list(values)) {
    list.push_back(item);
  }
  return list;
}

struct AddOptions {
  std::string name;
  std::string netns;
  std::vector<std::string> ips;
  std::string mesh;
  std::optional<std::int64_t> proxy_uid;
  std::optional<std::int64_t> proxy_gid;
  std::optional<std::int64_t> outbound_port;
  std::optional<std::int64_t> inbound_port;
  std::string node_proxy;
  std::string interface;
  std::vector<std::string> labels;  // KEY=VALUE
  bool fast_path = false;
  struct ListOption {
    const char* key;
    bool ports;
    std::vector<std::string> values;
    CLI::Option* option = nullptr;
    const char* help = nullptr;  // nullptr: the generic "replaces the preset's" text
  };
  std::vector<ListOption> lists = {
      {"inbound_passthrough_sources", false, {}},
      {"include_outbound_ports", true, {}},
      {"exclude_outbound_ports", true, {}},
      {"include_inbound_ports", true, {}},
      {"exclude_inbound_ports", true, {}},
      {"include_outbound_cidrs", false, {}},
      {"exclude_outbound_cidrs", false, {}},
      {"exclude_inbound_cidrs", false, {}},
      {"fast_path_exclude_ports",
       true,
       {},
       nullptr,
       "LIST of destination ports that keep their sidecars on the fast path"},
  };

  [[nodiscard]] json params() const {
    json p = {{"name", name}, {"ips", string_list(ips)}};
    // A bare name is an `ip netns` namespace.
    p["netns"] = netns.find('/') == std::string::npos ? "/var/run/netns/" + netns : netns;
    if (!mesh.empty()) {
      p["mesh"] = mesh;
    }
    const std::pair<const char*, const std::optional<std::int64_t>*> numbers[] = {
        {"proxy_uid", &proxy_uid},
        {"proxy_gid", &proxy_gid},
        {"outbound_port", &outbound_port},
        {"inbound_port", &inbound_port}};
    for (const auto& [key, value] : numbers) {
      if (value->has_value()) {
        p[key] = **value;
      }
    }
    if (!node_proxy.empty()) {
      p["node_proxy"] = node_proxy;
    }
    if (!interface.empty()) {
      p["interface"] = interface;
    }
    if (fast_path) {
      p["fast_path"] = true;
    }
    if (!labels.empty()) {
      json map = json::object();
      for (const std::string& label : labels) {
        const std::size_t equals = label.find('=');
        // Without "=", the daemon rejects the empty key with the config parser's message.
        map[equals == std::string::npos ? std::string() : label.substr(0, equals)] =
            equals == std::string::npos ? label : label.substr(equals + 1);
      }
      p["labels"] = map;
    }
    for (const ListOption& list : lists) {
      if (list.option != nullptr && list.option->count() > 0) {
        p[list.key] = list.ports ? port_list(list.values) : string_list(list.values);
      }
    }
    return p;
  }
};

// ---- monitor ---------------------------------------------------------------------------------

struct MonitorOptions {
  std::vector<std::string> types;
  std::string workload;
  std::optional<std::int64_t> port;
  std::string ip;
  std::optional<std::int64_t> count;
};

// Set by SIGINT/SIGTERM. The handler also shuts the stream's socket down, which wakes the
// blocked read at once whatever it was doing (shutdown is async-signal-safe).
volatile std::sig_atomic_t g_monitor_stop = 0;
volatile int g_monitor_fd = -1;

extern "C" void on_monitor_signal(int /*signal*/) {
  g_monitor_stop = 1;
  if (g_monitor_fd >= 0) {
    ::shutdown(g_monitor_fd, SHUT_RDWR);
  }
}

void install_monitor_signals() {
  struct sigaction action {};
  action.sa_handler = on_monitor_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a blocked poll returns EINTR
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

// The monitor method's params from the options; nullopt (after a message) for a usage error.
std::optional<json> monitor_params(const MonitorOptions& options) {
  json params = json::object();
  std::vector<std::string> types = split_list(options.types);
  if (!types.empty()) {
    for (const std::string& type : types) {
      if (!meshlane::monitor::type_from_name(type)) {
        std::cerr << "meshlanectl: monitor: --type " << type << " is not an event type (one of "
                  << text(json(meshlane::monitor::type_names())) << ")\n";
        return std::nullopt;
      }
    }
    params["types"] = types;
  }
  if (!options.workload.empty()) {
    params["workload"] = options.workload;
  }
  if (options.port) {
    params["port"] = *options.port;
  }
  if (!options.ip.empty()) {
    params["ip"] = options.ip;
  }
  return params;
}

int monitor(const Globals& globals, const MonitorOptions& options) {
  auto params = monitor_params(options);
  if (!params) {
    return kExitUsage;
  }
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(globals.timeout_seconds * 1000));
  auto client = control::Client::connect(globals.socket, timeout);
  if (!client) {
    std::cerr << "meshlanectl: " << client.error().message() << '\n';
    return kExitConnect;
  }
  const bool as_json = globals.output == "json";
  auto ack = client->call("monitor", *params);
  if (!ack) {
    std::cerr << "meshlanectl: monitor: " << ack.error().message() << '\n';
    return kExitDaemon;
  }
  if (ack->error) {
    if (as_json) {
      std::cout << json{{"error",
                         {{"code", ack->error_code_text}, {"message", ack->error->message}}}}
                       .dump()
                << '\n';
    }
    std::cerr << "meshlanectl: monitor: " << ack->error->message << " (" << ack->error_code_text
              << ")\n";
    return kExitDaemon;
  }
  g_monitor_fd = client->fd();
  install_monitor_signals();
  if (!as_json) {
    std::cerr << "meshlanectl: monitoring "
              << text(ack->result->value("filter", json::object()).value("types", json()))
              << " (Ctrl-C to stop)\n";
  }
  std::int64_t seen = 0;
  while (!options.count || seen < *options.count) {
    auto line = client->read_stream_line(g_monitor_stop);
    if (!line) {
      if (g_monitor_stop != 0) {
        return kExitOk;
      }
      std::cerr << "meshlanectl: monitor: " << line.error().message() << '\n';
      return kExitDaemon;
    }
    json event = json::parse(line.value(), nullptr, false);
    if (event.is_discarded() || !event.is_object()) {
      std::cerr << "meshlanectl: monitor: the daemon sent a line that is not a JSON object\n";
      return kExitDaemon;
    }
    // Each line is flushed at once: the output is usually watched or piped live.
    if (as_json) {
      std::cout << line.value() << std::endl;
    } else {
      std::cout << meshlane::monitor::format_line(event) << std::endl;
    }
    if (event.value("type", std::string()) != "dropped") {
      ++seen;
    }
  }
  return kExitOk;
}

std::string dashed(const char* key) {
  std::string flag = std::string("--") + key;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

// main() without its last-resort exception handler.
int parse_and_run(int argc, char** argv) {
  CLI::App app{
      "meshlanectl: operate a running meshlaned over its control socket\n"
      "exit status: 0 ok, 1 usage error, 2 the daemon refused or failed the request, "
      "3 cannot connect to the daemon"};
  app.set_version_flag("--version", std::string("meshlanectl ") + MESHLANE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command
  Globals globals;
  app.add_option("--socket", globals.socket, "control socket of meshlaned (daemon.socket)")
      ->envname("MESHLANE_SOCKET")
      ->capture_default_str();
  app.add_option("-o,--output", globals.output, "output format: human-readable table or JSON")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", globals.timeout_seconds, "seconds to wait for the daemon")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  int status = kExitOk;
  auto run = [&](const std::string& method, auto make_params, Printer printer) {
    return [&globals, &status, method, make_params, printer] {
      status = call(globals, method, make_params(), printer);
    };
  };
  auto no_params = [] { return json::object(); };

  app.add_subcommand("status", "daemon version, uptime, kernel features, attach points, counts")
      ->callback(run("status", no_params, print_status));
  std::string stats_workload;
  auto* stats =
      app.add_subcommand("stats", "datapath counters (cumulative since the datapath was created)");
  stats->add_option("--workload", stats_workload,
                    "only this workload's counters (since it was applied)");
  stats->callback(run(
      "stats",
      [&] {
        return stats_workload.empty() ? json::object() : json{{"workload", stats_workload}};
      },
      print_stats));

  auto* policy = app.add_subcommand(
      "policy", "L4 authorization policies: apply, get and delete (docs/policy.md)");
  policy->require_subcommand(1);
  std::string policy_file;
  bool policy_replace = false;
  auto* apply_cmd = policy->add_subcommand(
      "apply",
      "add or replace the policies of a JSON file by name; the whole resulting set is switched "
      "in the kernel at once");
  apply_cmd->add_option("-f,--file", policy_file, "policy file (JSON), - for stdin")->required();
  apply_cmd->add_flag("--replace", policy_replace,
                      "the file's policies become the whole set (others are deleted)");
  apply_cmd->callback([&] {
    const std::optional<json> policies = read_policy_file(policy_file);
    if (!policies) {
      status = kExitUsage;
      return;
    }
    status = call(globals, "policy.apply",
                  json{{"policies", *policies}, {"replace", policy_replace}}, print_policy_apply);
  });
  std::string policy_name;
  auto* policy_get = policy->add_subcommand("get", "every policy, or one by name");
  policy_get->add_option("name", policy_name, "policy name");
  policy_get->callback(run(
      "policy.get",
      [&] {
        return policy_name.empty() ? json::object() : json{{"name", policy_name}};
      },
      print_policy_list));
  std::string policy_del_name;
  bool policy_missing_ok = false;
  auto* policy_del = policy->add_subcommand("del", "delete a policy");
  policy_del->add_option("name", policy_del_name, "policy name")->required();
  policy_del->add_flag("--missing-ok", policy_missing_ok, "succeed when there is no such policy");
  policy_del->callback(run(
      "policy.del",
      [&] {
        return json{{"name", policy_del_name}, {"missing_ok", policy_missing_ok}};
      },
      print_policy_apply));

  std::int64_t conns_limit = control::kDefaultConnsLimit;
  auto* conns = app.add_subcommand(
      "conns", "spliced sockets now in the sockhash, with their addresses and workloads");
  conns->add_option("--limit", conns_limit, "show at most this many sockets (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  conns->callback(run(
      "conns",
      [&] {
        return json{{"limit", conns_limit}};
      },
      print_conns));

  MonitorOptions monitor_options;
  auto* monitor_cmd = app.add_subcommand(
      "monitor",
      "live datapath events, one line each, until Ctrl-C (or --count): intercepted, spliced, "
      "denied, map_full, fallback, skipped_blocking, skipped_short. Filters are applied by the "
      "daemon; every "
      "one given must match");
  monitor_cmd
      ->add_option("--type", monitor_options.types,
                   "event types to show, comma-separated, repeatable (default: all)")
      ->type_name("LIST");
  monitor_cmd->add_option("--workload", monitor_options.workload,
                          "only events of this workload, or towards it");
  monitor_cmd
      ->add_option("--port", monitor_options.port,
                   "only events with this port at either end or as original destination")
      ->check(CLI::Range(1, 65535));
  monitor_cmd->add_option("--ip", monitor_options.ip,
                          "only events with this address (or in this prefix) at either end or "
                          "as original destination");
  monitor_cmd->add_option("--count", monitor_options.count, "exit after this many events")
      ->check(CLI::PositiveNumber);
  monitor_cmd->callback([&] { status = monitor(globals, monitor_options); });

  auto* workload = app.add_subcommand("workload", "add, delete, list and show workloads (pods)");
  workload->require_subcommand(1);

  AddOptions add;
  auto* add_cmd = workload->add_subcommand(
      "add",
      "add a workload live, or replace the one of that name (same settings: nothing changes). "
      "Options not given keep the mesh preset's values; a LIST is comma-separated and may be "
      "repeated, \"none\" makes it empty");
  add_cmd->add_option("name", add.name, "workload name, 1..63 of A-Z a-z 0-9 _ . -")->required();
  add_cmd
      ->add_option("--netns", add.netns,
                   "the pod's netns file, or a name under /var/run/netns (ip netns)")
      ->required();
  add_cmd->add_option("--ip", add.ips, "a pod address, IPv4 or IPv6 (repeat for several)")
      ->required();
  add_cmd->add_option("--mesh", add.mesh, "preset: istio (default), linkerd or custom")
      ->check(CLI::IsMember({"istio", "linkerd", "custom"}));
  add_cmd->add_option("--proxy-uid", add.proxy_uid, "uid of the proxy (its connects pass)");
  add_cmd->add_option("--proxy-gid", add.proxy_gid, "gid of the proxy");
  add_cmd->add_option("--outbound-port", add.outbound_port, "the proxy's outbound port");
  add_cmd->add_option("--inbound-port", add.inbound_port, "the proxy's inbound port");
  for (AddOptions::ListOption& list : add.lists) {
    const char* help = list.help != nullptr ? list.help
                       : list.ports         ? "LIST of ports (replaces the preset's)"
                                            : "LIST (replaces the preset's)";
    list.option = add_cmd->add_option(dashed(list.key), list.values, help);
    list.option->type_name("LIST");
  }
  add_cmd->add_flag("--fast-path", add.fast_path,
                    "L4 fast path: same-node connects to other fast-path workloads skip both "
                    "sidecars (no mTLS, no L7 policy, no proxy telemetry; docs/fast-path.md)");
  add_cmd->add_option("--node-proxy", add.node_proxy,
                      "sidecarless: ADDR, ADDR:PORT or [IPv6]:PORT of the node-level proxy");
  add_cmd->add_option("--interface", add.interface, "the pod's interface to off-node traffic");
  add_cmd->add_option("--label", add.labels, "KEY=VALUE label policies select by (repeat)");
  add_cmd->callback(run(
      "workload.add", [&] { return add.params(); }, print_workload_add));

  std::string del_name;
  bool missing_ok = false;
  auto* del_cmd = workload->add_subcommand(
      "del",
      "delete a live workload: new connections are no longer intercepted, established "
      "ones carry on");
  del_cmd->add_option("name", del_name, "workload name")->required();
  del_cmd->add_flag("--missing-ok", missing_ok, "succeed when there is no such workload");
  del_cmd->callback(run(
      "workload.del",
      [&] {
        return json{{"name", del_name}, {"missing_ok", missing_ok}};
      },
      print_workload_del));

  workload->add_subcommand("list", "every workload, from the config file and live")
      ->callback(run("workload.list", no_params, print_workload_list));

  std::string get_name;
  auto* get_cmd = workload->add_subcommand("get", "one workload's effective settings");
  get_cmd->add_option("name", get_name, "workload name")->required();
  get_cmd->callback(run(
      "workload.get",
      [&] {
        return json{{"name", get_name}};
      },
      print_workload));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "meshlanectl: internal error: " << error.what() << '\n';
  } catch (...) {
    std::cerr << "meshlanectl: internal error: unknown exception\n";
  }
  return kExitDaemon;
}
