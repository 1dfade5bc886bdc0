// Puts a compiled policy into the kernel: a fresh trie is filled completely, then swapped into
// the single slot of the pinned ml_policy_v1 in one map update, so every decision is made by
// the old policy or by the new one, never by a mix. The old trie is freed by the kernel once
// no program uses it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/error.hpp"
#include "policy/compile.hpp"

namespace meshlane {

struct PolicyInstallReport {
  std::size_t entries = 0;
  std::chrono::microseconds fill_time{0};  // creating and filling the new trie
  bool cleared = false;                    // no policy: the slot was emptied (all allowed)
};

// Installs `compiled` (an empty one clears the slot: everything is allowed).
Result<PolicyInstallReport> install_policy(const std::string& bpffs_dir,
                                           const policy::CompiledPolicy& compiled);

// Entries of the trie now in force, read back from the kernel (for tests and diagnostics);
// 0 when no policy is installed.
Result<std::size_t> installed_policy_entries(const std::string& bpffs_dir);

}  // namespace meshlane
