#include "meshlanectl/cli.hpp"

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

#include "control/client.hpp"
#include "control/protocol.hpp"

namespace meshlane::cli {

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

}  // namespace meshlane::cli
