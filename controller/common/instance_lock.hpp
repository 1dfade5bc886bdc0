// One meshlaned per state directory and bpffs directory, and directories only root can write.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace meshlane {

// The file in daemon.state_dir whose flock marks the running daemon; it holds the holder's pid.
inline constexpr const char* kInstanceLockFile = "meshlaned.lock";

// A directory whose files root reads and acts on (daemon.state_dir, the control socket's
// directory) must not let anyone else plant or replace files there: owned by root (or by this
// process's euid) and not group- or world-writable. Only path itself is checked, not its parents
// (/tmp/x is fine when x is 0700 root): whoever could replace a parent is root or owns it
// already; for the same reason a symlink to a directory is followed (it sits in a parent) and
// the directory it leads to is checked. The error names the path, its owner and mode and the
// fix; what says which setting it is.
Status check_private_directory(const std::string& path, const std::string& what);

// The pid holding an flock on the file open as fd, found in /proc/locks; nullopt if none.
std::optional<pid_t> flock_holder(int fd);

// Held for the daemon's life (and by --cleanup while it runs), released when destroyed (the
// kernel drops an flock when its file is closed, so a SIGKILLed holder releases it too).
//
// Two keys, because two daemons collide on either: the same state_dir (workloads.json,
// policies.json and the tc record would be rewritten by both) or the same bpffs_dir (both would
// fill the same maps and update the same links). <state_dir>/meshlaned.lock is created
// (0600, O_NOFOLLOW) and flock'ed; bpffs cannot hold a regular file, so the bpffs directory
// itself is flock'ed.
class InstanceLock {
 public:
  // LOCK_EX|LOCK_NB on both; the state_dir must exist (and have been checked), or be "" to lock
  // only the bpffs directory (--cleanup on a machine without a state_dir). With
  // create_bpffs_dir, a missing bpffs directory is created first (ensure_bpffs_dir: bpffs
  // mounted if needed, mode 0700), so that the first start on a clean machine holds it too; the
  // lock removes it again when destroyed if it is still empty (a start that failed leaves no
  // directory). Without, a missing one is not locked (--cleanup: nothing to remove there).
  // Fails, holding nothing, when another process holds either: the error names the file and
  // the holder's pid.
  static Result<InstanceLock> acquire(const std::string& state_dir, const std::string& bpffs_dir,
                                      bool create_bpffs_dir);

  InstanceLock(InstanceLock&& other) noexcept
      : state_lock_(std::move(other.state_lock_)),
        bpffs_lock_(std::move(other.bpffs_lock_)),
        path_(std::move(other.path_)),
        created_bpffs_dir_(std::exchange(other.created_bpffs_dir_, {})) {}
  InstanceLock& operator=(InstanceLock&&) = delete;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

  // The lock file (the bpffs directory when there is no state_dir lock).
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  InstanceLock(UniqueFd state_lock, UniqueFd bpffs_lock, std::string path,
               std::string created_bpffs_dir)
      : state_lock_(std::move(state_lock)),
        bpffs_lock_(std::move(bpffs_lock)),
        path_(std::move(path)),
        created_bpffs_dir_(std::move(created_bpffs_dir)) {}

  UniqueFd state_lock_;
  UniqueFd bpffs_lock_;
  std::string path_;
  std::string created_bpffs_dir_;  // "" unless acquire() created it
};

}  // namespace meshlane
