// Small file and encoding helpers the unit tests share.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

namespace meshlane::test {

// A file's whole contents; a file that cannot be opened fails the test.
inline std::string read_text(const std::string& path) {
  std::ifstream file(path);
  EXPECT_TRUE(file.good()) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// Standard base64 with padding, as Go's encoding/json writes a []byte (libcni's cached config).
inline std::string base64(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16U) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8U) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) {
      out.push_back(alphabet[(v >> static_cast<unsigned>(shift)) & 63U]);
    }
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16U;
    if (i + 1 < bytes.size()) {
      v |= static_cast<unsigned char>(bytes[i + 1]) << 8U;
    }
    out.push_back(alphabet[(v >> 18U) & 63U]);
    out.push_back(alphabet[(v >> 12U) & 63U]);
    out.push_back(i + 1 < bytes.size() ? alphabet[(v >> 6U) & 63U] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace meshlane::test
