// Reading the golden conflists of tests/unit/cni_install/golden/.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace meshlane::cni_install::test {

inline std::string golden_path(const std::string& name) {
  return std::string(MESHLANE_CNI_GOLDEN_DIR) + "/" + name;
}

inline std::string read_golden(const std::string& name) {
  std::ifstream in(golden_path(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing golden file " << golden_path(name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace meshlane::cni_install::test
