// Helpers shared by the unit tests: a substring assertion, and parse_config wrappers for the
// config tests (config_test.cpp, workload_config_test.cpp).

#pragma once

#include <gtest/gtest.h>

#include <string>

#include "config/config.hpp"

namespace meshlane::test {

inline constexpr const char* kSource = "meshlane.toml";

// gmock's HasSubstr would need libgmock, which the test target does not link.
inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "\"" << text << "\"\n  does not contain\n\"" << part << "\"";
}

// Parses `text`, which must be a valid config.
inline Config parse_ok(const std::string& text) {
  Result<Config> config = parse_config(text, kSource);
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message());
  return config.ok() ? *config : Config{};
}

// Parses `text`, which must be rejected, and returns the error message.
inline std::string parse_error(const std::string& text) {
  Result<Config> config = parse_config(text, kSource);
  EXPECT_FALSE(config.ok()) << "expected an error for:\n" << text;
  return config.ok() ? "" : config.error().message();
}

}  // namespace meshlane::test
