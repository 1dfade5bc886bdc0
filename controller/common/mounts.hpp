// Discovery of the cgroup v2 and bpffs mounts from /proc/self/mountinfo; never hard-coded.
#pragma once

#include <string>
#include <string_view>

#include "common/error.hpp"

namespace meshlane {

// Mount point of the first cgroup2 filesystem in mountinfo text (proc(5) format; the
// filesystem type follows the " - " separator). Octal escapes such as \040 are decoded.
// Error when there is none.
Result<std::string> find_cgroup2_mount(std::string_view mountinfo_text);

// Mount point of the first bpf filesystem, or an empty string when bpffs is not mounted.
std::string find_bpffs_mount(std::string_view mountinfo_text);

// Same, reading /proc/self/mountinfo.
Result<std::string> find_cgroup2_mount();

// Makes sure a bpffs is mounted that contains `dir` (e.g. /sys/fs/bpf/meshlane): if no bpffs
// is mounted, mounts one at /sys/fs/bpf; then creates `dir` (mode 0700) if missing.
// Error when `dir` is not on a bpffs.
Status ensure_bpffs_dir(const std::string& dir);

// Resolves DaemonConfig::cgroup against the cgroup v2 mount point, following the rules in
// config.hpp, and checks that the directory exists.
Result<std::string> resolve_cgroup_path(const std::string& cgroup2_mount,
                                        const std::string& configured);

}  // namespace meshlane
