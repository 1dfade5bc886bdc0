#include "meshlanectl/cli.hpp"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "control/client.hpp"

namespace meshlane::cli {

// ---- Calling the daemon ------------------------------------------------------------------------

Exchange exchange(const Globals& globals, const std::string& method, const json& params) {
  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(globals.timeout_seconds * 1000));
  auto client = control::Client::connect(globals.socket, timeout);
  if (!client) {
    std::cerr << "meshlanectl: " << client.error().message() << '\n';
    return {kExitConnect};
  }
  auto response = client->call(method, params);
  if (!response) {
    std::cerr << "meshlanectl: " << method << ": " << response.error().message() << '\n';
    return {kExitDaemon};
  }
  if (response->error) {
    if (globals.output == "json") {
      std::cout << json{{"error",
                         {{"code", response->error_code_text},
                          {"message", response->error->message}}}}
                       .dump()
                << '\n';
    }
    std::cerr << "meshlanectl: " << method << ": " << response->error->message << " ("
              << response->error_code_text << ")\n";
    return {kExitDaemon};
  }
  return {kExitOk, std::move(client.value()), std::move(*response->result)};
}

int call(const Globals& globals, const std::string& method, const json& params, Printer printer) {
  Exchange done = exchange(globals, method, params);
  if (done.status != kExitOk) {
    return done.status;
  }
  if (globals.output == "json") {
    std::cout << done.result.dump() << '\n';
  } else {
    printer(done.result);
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
