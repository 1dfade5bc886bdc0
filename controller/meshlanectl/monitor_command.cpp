#include "meshlanectl/monitor_command.hpp"

#include <sys/socket.h>

#include <csignal>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "control/client.hpp"
#include "observe/events.hpp"

namespace meshlane::cli {

namespace {

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

}  // namespace

int monitor(const Globals& globals, const MonitorOptions& options) {
  auto params = monitor_params(options);
  if (!params) {
    return kExitUsage;
  }
  Exchange ack = exchange(globals, "monitor", *params);
  if (ack.status != kExitOk) {
    return ack.status;
  }
  const bool as_json = globals.output == "json";
  control::Client& client = *ack.client;
  g_monitor_fd = client.fd();
  install_monitor_signals();
  if (!as_json) {
    std::cerr << "meshlanectl: monitoring "
              << text(ack.result.value("filter", json::object()).value("types", json()))
              << " (Ctrl-C to stop)\n";
  }
  std::int64_t seen = 0;
  while (!options.count || seen < *options.count) {
    auto line = client.read_stream_line(g_monitor_stop);
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

}  // namespace meshlane::cli
