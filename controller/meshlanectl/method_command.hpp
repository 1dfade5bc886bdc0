// meshlanectl's subcommands that call one control method and print its result: each argument
// and option is declared once, with the key of the method's params it fills.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "meshlanectl/cli.hpp"

namespace meshlane::cli {

class MethodCommand {
 public:
  // Adds `parent`'s subcommand `name`. Run, it calls `method` with the params its options make
  // and prints the result with `printer` (as JSON with -o json); `status` gets the exit status.
  MethodCommand(CLI::App& parent, const std::string& name, const std::string& help,
                std::string method, Printer printer, const Globals& globals, int& status);
  MethodCommand(const MethodCommand&) = delete;
  MethodCommand& operator=(const MethodCommand&) = delete;
  MethodCommand(MethodCommand&&) = delete;
  MethodCommand& operator=(MethodCommand&&) = delete;
  ~MethodCommand() = default;

  // A string argument ("name") or option ("--workload"): params[key], left out when empty
  // unless the option is required.
  CLI::Option* text(const std::string& flags, const std::string& key, const std::string& help);
  // A flag: params[key], true or false.
  CLI::Option* flag(const std::string& flags, const std::string& key, const std::string& help);
  // An integer option: params[key], `initial` when not given.
  CLI::Option* integer(const std::string& flags, const std::string& key, std::int64_t initial,
                       const std::string& help);
  // Makes the params from options the caller declared on app() instead; nullopt is a usage
  // error that `make` reported (exit status 1, nothing is sent).
  void params_from(std::function<std::optional<json>()> make) { make_ = std::move(make); }

  [[nodiscard]] CLI::App* app() const { return app_; }

 private:
  [[nodiscard]] std::optional<json> params() const;

  CLI::App* app_;
  std::string method_;
  Printer printer_;
  // One per declared argument or option: puts its value into the params.
  std::vector<std::function<void(json&)>> fill_;
  std::function<std::optional<json>()> make_;
};

}  // namespace meshlane::cli
