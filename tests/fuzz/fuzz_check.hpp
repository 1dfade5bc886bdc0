// What a fuzz target does when an invariant breaks: say which one, on what input, then abort so
// that libFuzzer (or the corpus replay) reports a crash and keeps the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace meshlane::fuzz {

inline void require(bool holds, std::string_view invariant, std::string_view subject) {
  if (holds) {
    return;
  }
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n  on: %.*s\n",
               static_cast<int>(invariant.size()), invariant.data(),
               static_cast<int>(subject.size() > 2000 ? 2000 : subject.size()), subject.data());
  std::abort();
}

}  // namespace meshlane::fuzz
