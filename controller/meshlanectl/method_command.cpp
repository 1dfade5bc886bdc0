#include "meshlanectl/method_command.hpp"

#include <memory>
#include <utility>

namespace meshlane::cli {

MethodCommand::MethodCommand(CLI::App& parent, const std::string& name, const std::string& help,
                             std::string method, Printer printer, const Globals& globals,
                             int& status)
    : app_(parent.add_subcommand(name, help)), method_(std::move(method)), printer_(printer) {
  app_->callback([this, &globals, &status] {
    const std::optional<json> made = params();
    status = made ? call(globals, method_, *made, printer_) : kExitUsage;
  });
}

CLI::Option* MethodCommand::text(const std::string& flags, const std::string& key,
                                 const std::string& help) {
  auto value = std::make_shared<std::string>();
  CLI::Option* option = app_->add_option(flags, *value, help);
  fill_.push_back([key, value, option](json& params) {
    if (!value->empty() || option->get_required()) {
      params[key] = *value;
    }
  });
  return option;
}

CLI::Option* MethodCommand::flag(const std::string& flags, const std::string& key,
                                 const std::string& help) {
  auto value = std::make_shared<bool>(false);
  CLI::Option* option = app_->add_flag(flags, *value, help);
  fill_.push_back([key, value](json& params) { params[key] = *value; });
  return option;
}

CLI::Option* MethodCommand::integer(const std::string& flags, const std::string& key,
                                    std::int64_t initial, const std::string& help) {
  auto value = std::make_shared<std::int64_t>(initial);
  CLI::Option* option = app_->add_option(flags, *value, help);
  fill_.push_back([key, value](json& params) { params[key] = *value; });
  return option;
}

std::optional<json> MethodCommand::params() const {
  if (make_) {
    return make_();
  }
  json params = json::object();
  for (const auto& fill : fill_) {
    fill(params);
  }
  return params;
}

}  // namespace meshlane::cli
