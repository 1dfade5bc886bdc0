// meshlanectl: the operator CLI of meshlaned's control socket (docs/cli.md). This file is the
// command line; printers.cpp, monitor_command.cpp and call.cpp do the work.
//
// Exit status: 0 ok, 1 usage error, 2 the daemon answered with an error (or broke off the
// exchange), 3 cannot connect to the daemon.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <deque>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/protocol.hpp"
#include "meshlanectl/cli.hpp"
#include "meshlanectl/method_command.hpp"
#include "meshlanectl/monitor_command.hpp"
#include "meshlanectl/printers.hpp"

namespace {

namespace control = meshlane::control;
using namespace meshlane::cli;  // NOLINT(google-build-using-namespace): the CLI's own names

struct AddOptions {
  std::string name;
  std::string netns;
  std::vector<std::string> ips;
  std::string mesh;
  std::optional<std::int64_t> proxy_uid;
  std::optional<std::int64_t> proxy_gid;
  std::optional<std::int64_t> outbound_port;
  std::optional<std::int64_t> inbound_port;
  std::optional<std::int64_t> dns_proxy_port;
  bool dns_capture = false;
  std::string node_proxy;
  std::string interface;
  std::vector<std::string> labels;  // KEY=VALUE
  bool fast_path = false;
  bool acceleration = true;
  CLI::Option* acceleration_option = nullptr;  // given: --acceleration or --no-acceleration
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
      {"exclude_acceleration_ports",
       true,
       {},
       nullptr,
       "LIST of ports (local or remote) whose connections of this workload are not spliced"},
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
        {"inbound_port", &inbound_port},
        {"dns_proxy_port", &dns_proxy_port}};
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
    if (dns_capture) {
      p["dns_capture"] = true;
    }
    if (acceleration_option != nullptr && acceleration_option->count() > 0) {
      p["acceleration"] = acceleration;
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
  std::deque<MethodCommand> commands;  // CLI11 calls back into them: they must not move
  auto method = [&](CLI::App* parent, const char* name, const char* help, const char* method_name,
                    Printer printer) -> MethodCommand& {
    return commands.emplace_back(*parent, name, help, method_name, printer, globals, status);
  };
  // `<thing> del NAME [--missing-ok]`.
  auto del = [&](CLI::App* parent, const std::string& thing, const char* help,
                 const char* method_name, Printer printer) {
    MethodCommand& command = method(parent, "del", help, method_name, printer);
    command.text("name", "name", thing + " name")->required();
    command.flag("--missing-ok", "missing_ok", "succeed when there is no such " + thing);
  };

  method(&app, "status", "daemon version, uptime, kernel features, attach points, counts", "status",
         print_status);
  method(&app, "stats", "datapath counters (cumulative since the datapath was created)", "stats",
         print_stats)
      .text("--workload", "workload", "only this workload's counters (since it was applied)");

  auto* policy = app.add_subcommand(
      "policy", "L4 authorization policies: apply, get and delete (docs/policy.md)");
  policy->require_subcommand(1);
  std::string policy_file;
  bool policy_replace = false;
  MethodCommand& apply = method(
      policy, "apply",
      "add or replace the policies of a JSON file by name; the whole resulting set is switched "
      "in the kernel at once",
      "policy.apply", print_policy_apply);
  apply.app()->add_option("-f,--file", policy_file, "policy file (JSON), - for stdin")->required();
  apply.app()->add_flag("--replace", policy_replace,
                        "the file's policies become the whole set (others are deleted)");
  apply.params_from([&]() -> std::optional<json> {
    const std::optional<json> policies = read_policy_file(policy_file);
    if (!policies) {
      return std::nullopt;
    }
    return json{{"policies", *policies}, {"replace", policy_replace}};
  });
  method(policy, "get", "every policy, or one by name", "policy.get", print_policy_list)
      .text("name", "name", "policy name");
  del(policy, "policy", "delete a policy", "policy.del", print_policy_apply);

  method(&app, "conns", "spliced sockets now in the sockhash, with their addresses and workloads",
         "conns", print_conns)
      .integer("--limit", "limit", control::kDefaultConnsLimit,
               "show at most this many sockets (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  MethodCommand& explain =
      method(&app, "explain",
             "which rules decided one connection: intercepted or not (and by which rule: an "
             "excluded port or CIDR, the proxy's uid, L4 policy...), spliced or not (and why), "
             "from the daemon's log of recent datapath decisions (daemon.decision_log)",
             "explain", print_explain);
  explain.text("--dst", "dst", "ADDR:PORT the client connected to ([IPv6]:PORT)")->required();
  explain.text("--src", "src", "the client's ADDR:PORT, or ADDR for any of its ports");

  MonitorOptions monitor_options;
  auto* monitor_cmd = app.add_subcommand(
      "monitor",
      "live datapath events, one line each, until Ctrl-C (or --count): intercepted, bypassed, "
      "denied, spliced, skipped, skipped_blocking, skipped_short, map_full, fallback. Filters "
      "are applied by the daemon; every one given must match");
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
  MethodCommand& add_command =
      method(workload, "add",
             "add a workload live, or replace the one of that name (same settings: nothing "
             "changes). Options not given keep the mesh preset's values; a LIST is "
             "comma-separated and may be repeated, \"none\" makes it empty",
             "workload.add", print_workload_add);
  add_command.params_from([&]() -> std::optional<json> { return add.params(); });
  CLI::App* add_cmd = add_command.app();
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
  add_cmd->add_flag("--dns-capture", add.dns_capture,
                    "send the app's DNS (UDP and TCP to port 53) to the mesh's DNS proxy "
                    "(docs/interception.md, \"DNS capture\")");
  add_cmd->add_option("--dns-proxy-port", add.dns_proxy_port,
                      "the DNS proxy's port on loopback (istio preset: 15053)");
  add_cmd->add_flag("--fast-path", add.fast_path,
                    "L4 fast path: same-node connects to other fast-path workloads skip both "
                    "sidecars (no mTLS, no L7 policy, no proxy telemetry; docs/fast-path.md)");
  add.acceleration_option = add_cmd->add_flag(
      "--acceleration,!--no-acceleration", add.acceleration,
      "splice this workload's sockets (the default) or not (the node-wide [acceleration] still "
      "applies)");
  add_cmd->add_option("--node-proxy", add.node_proxy,
                      "sidecarless: ADDR, ADDR:PORT or [IPv6]:PORT of the node-level proxy");
  add_cmd->add_option("--interface", add.interface, "the pod's interface to off-node traffic");
  add_cmd->add_option("--label", add.labels, "KEY=VALUE label policies select by (repeat)");

  del(workload, "workload",
      "delete a live workload: new connections are no longer intercepted, established ones "
      "carry on",
      "workload.del", print_workload_del);
  method(workload, "list", "every workload, from the config file and live", "workload.list",
         print_workload_list);
  method(workload, "get", "one workload's effective settings", "workload.get", print_workload)
      .text("name", "name", "workload name")
      ->required();

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
