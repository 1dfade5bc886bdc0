#include "datapath/test_hooks.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string_view>

namespace meshlane {

namespace {

bool is_set_to_one(const char* variable) {
  const char* value = std::getenv(variable);
  return value != nullptr && std::string_view(value) == "1";
}

std::vector<std::string> comma_separated(const char* variable) {
  std::vector<std::string> items;
  const char* value = std::getenv(variable);
  if (value == nullptr) {
    return items;
  }
  std::stringstream list(value);
  std::string item;
  while (std::getline(list, item, ',')) {
    if (!item.empty()) {
      items.push_back(item);
    }
  }
  return items;
}

}  // namespace

std::uint32_t TestHooks::max_entries_override(const std::string& map_name) const {
  for (const auto& [name, entries] : map_max_entries) {
    if (name == map_name) {
      return entries;
    }
  }
  return 0;
}

bool test_hooks_compiled_in() {
#if defined(MESHLANE_TEST_HOOKS)
  return true;
#else
  return false;
#endif
}

TestHooks test_hooks_from_environment() {
  TestHooks hooks;
  if (!test_hooks_compiled_in()) {
    // Said once, so that a test run against a release build fails with a reason, not a mystery.
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      if (std::string_view(*entry).starts_with("MESHLANE_TEST_")) {
        const std::string_view variable(*entry);
        spdlog::warn(
            "{} ignored: this meshlaned was built without the test knobs "
            "(-DMESHLANE_TEST_HOOKS=ON)",
            variable.substr(0, variable.find('=')));
      }
    }
    return hooks;
  }
  hooks.verifier_reject = is_set_to_one("MESHLANE_TEST_VERIFIER_REJECT");
  hooks.fast_sweep = is_set_to_one("MESHLANE_TEST_FAST_SWEEP");
  for (const std::string& item : comma_separated("MESHLANE_TEST_MAP_MAX_ENTRIES")) {
    if (const auto eq = item.find('='); eq != std::string::npos) {
      hooks.map_max_entries.emplace_back(
          item.substr(0, eq),
          static_cast<std::uint32_t>(std::strtoul(item.c_str() + eq + 1, nullptr, 10)));
    }
  }
  hooks.missing_features = comma_separated("MESHLANE_TEST_MISSING_FEATURES");
  return hooks;
}

}  // namespace meshlane
