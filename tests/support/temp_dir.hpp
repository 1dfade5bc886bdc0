// A scratch directory for one test (or fixture), removed with everything in it at the end.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace meshlane::test {

class TempDir {
 public:
  // A fresh directory <gtest temp dir>/<prefix>-XXXXXX; path() is "" when mkdtemp failed (the
  // test has then failed already).
  explicit TempDir(std::string_view prefix = "meshlane-test") {
    std::string pattern = ::testing::TempDir() + std::string(prefix) + "-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
    EXPECT_FALSE(path_.empty()) << "mkdtemp " << pattern << " failed: " << std::strerror(errno);
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace meshlane::test
