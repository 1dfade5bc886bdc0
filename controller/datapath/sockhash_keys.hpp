// The keys of the pinned sockhash: one per spliced socket (the values, sockets, cannot be read
// from user space).
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "meshlane/shared.h"

namespace meshlane {

// Every key of the sockhash pinned under bpffs_dir (ml_sockhash_v1), walked with
// bpf_map_get_next_key. Keys that vanish during the walk are simply missed.
Result<std::vector<ml_sock_key>> read_sockhash_keys(const std::string& bpffs_dir);

}  // namespace meshlane
