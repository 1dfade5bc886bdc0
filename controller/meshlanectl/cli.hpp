// What meshlanectl's commands share: exit statuses, global options, calling the daemon, and the
// list and text helpers of the option parsers and printers.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "control/client.hpp"

namespace meshlane::cli {

using nlohmann::json;

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitDaemon = 2;
inline constexpr int kExitConnect = 3;

struct Globals {
  std::string socket = kDefaultControlSocket;
  std::string output = "table";
  double timeout_seconds = 30;
};

// Prints a method's result for people (-o table).
using Printer = void (*)(const json&);

// One request to the daemon. On failure `status` is the exit status and why was printed: cannot
// connect (3), no answer or an error answer (2; with -o json the error also goes to stdout).
struct Exchange {
  int status = kExitOk;
  std::optional<control::Client> client;  // still connected, for a stream that follows
  json result;
};
Exchange exchange(const Globals& globals, const std::string& method, const json& params);

// Calls `method` and prints its result (as JSON with -o json); returns the exit status.
int call(const Globals& globals, const std::string& method, const json& params, Printer printer);

// "a,b,c" -> ["a","b","c"]; "none" or "" -> [] (replaces the preset's list with nothing).
std::vector<std::string> split_list(const std::vector<std::string>& values);

// split_list as JSON: integers as integers, anything else as a string (for the daemon to reject
// with the same message the config file would get).
json port_list(const std::vector<std::string>& values);
// split_list as a JSON array of strings.
json string_list(const std::vector<std::string>& values);

// A JSON value as a table cell: strings bare, booleans yes/no, arrays joined with ", ", null
// and empty arrays as "-".
std::string text(const json& value);

}  // namespace meshlane::cli
