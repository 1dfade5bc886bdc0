#include "common/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>

#include "common/mounts.hpp"
#include "common/text_file.hpp"

namespace meshlane {

namespace {

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string describe_holder(int fd) {
  if (const auto pid = flock_holder(fd)) {
    return "pid " + std::to_string(*pid);
  }
  // No /proc/locks (or no line for it): the pid the holder wrote into the lock file, if any.
  struct stat st {};
  std::array<char, 24> text{};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    const ssize_t count = ::pread(fd, text.data(), text.size() - 1, 0);
    if (count > 0) {
      std::string pid(text.data(), static_cast<std::size_t>(count));
      pid.erase(pid.find_last_not_of(" \n") + 1);
      return "pid " + pid + ", as written in the file";
    }
  }
  return "a process whose pid /proc/locks does not show";
}

// LOCK_EX|LOCK_NB on fd: ok, or the error for a lock someone else holds.
Status lock_or_name_holder(int fd, const std::string& path, const std::string& what) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    return {};
  }
  if (errno != EWOULDBLOCK) {
    return make_error(errno, "cannot lock " + path);
  }
  // A refusal, not a system failure: the message says it all (no "Resource busy" after it).
  return make_error("another meshlaned (" + describe_holder(fd) + ") holds " + path +
                    " and so runs with this " + what +
                    "; stop it first (two daemons would rewrite each other's "
                    "datapath and state). Nothing was changed");
}

}  // namespace

Status check_private_directory(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return make_error(errno, "cannot check " + what + " " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return make_error(what + " " + path +
                      " is not a directory: make it a directory owned by root, mode 0700 "
                      "or 0755");
  }
  const uid_t euid = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != euid) {
    return make_error(what + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
                      " (mode " + octal(st.st_mode) +
                      "): meshlaned acts as root on the files in it, so only root may "
                      "own it; fix: chown root " +
                      path);
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return make_error(what + " " + path + " is writable by its group or by everyone (owner uid " +
                      std::to_string(st.st_uid) + ", mode " + octal(st.st_mode) +
                      "): anyone who can write there could plant files meshlaned acts "
                      "on as root; fix: chmod go-w " +
                      path);
  }
  return {};
}

std::optional<pid_t> flock_holder(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return std::nullopt;
  }
  auto locks = read_text_file("/proc/locks");
  if (!locks) {
    return std::nullopt;
  }
  // "1: FLOCK  ADVISORY  WRITE 21199 00:27:99826306 0 EOF"; waiters' lines carry "->".
  char wanted[64];
  std::snprintf(wanted, sizeof wanted, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::istringstream lines(locks.value());
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string number, kind, advisory, access, pid, file;
    if (!(fields >> number >> kind >> advisory >> access >> pid >> file) || kind != "FLOCK" ||
        number.find("->") != std::string::npos || file != wanted) {
      continue;
    }
    try {
      return static_cast<pid_t>(std::stol(pid));
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

InstanceLock::~InstanceLock() {
  if (!created_bpffs_dir_.empty()) {
    // Only when empty (rmdir refuses otherwise): a daemon that ran leaves its pins there.
    ::rmdir(created_bpffs_dir_.c_str());
  }
}

Result<InstanceLock> InstanceLock::acquire(const std::string& state_dir,
                                           const std::string& bpffs_dir, bool create_bpffs_dir) {
  std::string path;
  UniqueFd state_lock;
  if (!state_dir.empty()) {
    path = state_dir + "/" + kInstanceLockFile;
    // O_NOFOLLOW: a symlink planted here must not make root create or lock another file;
    // O_NONBLOCK: nor a FIFO hang the start.
    state_lock.reset(
        ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!state_lock) {
      if (errno == ELOOP) {
        return make_error(ELOOP, "refusing the lock file " + path +
                                     ": it is a symbolic link (remove it; meshlaned creates it)");
      }
      return make_error(errno, "cannot open the lock file " + path);
    }
    struct stat st {};
    if (::fstat(state_lock.get(), &st) != 0) {
      return make_error(errno, "cannot stat the lock file " + path);
    }
    if (!S_ISREG(st.st_mode)) {
      return make_error(EINVAL, "the lock file " + path +
                                    " is not a regular file (remove it; meshlaned "
                                    "creates it)");
    }
    if (Status locked = lock_or_name_holder(state_lock.get(), path, "daemon.state_dir"); !locked) {
      return locked.error();
    }
  }
  if (path.empty()) {
    path = bpffs_dir;
  }

  std::string created_bpffs_dir;
  if (create_bpffs_dir) {
    const bool existed = ::access(bpffs_dir.c_str(), F_OK) == 0;
    if (Status status = ensure_bpffs_dir(bpffs_dir); !status) {
      return status.error();
    }
    if (!existed) {
      created_bpffs_dir = bpffs_dir;
    }
  }
  // Removes the directory made above when the lock is not taken after all.
  auto fail = [&created_bpffs_dir](Error error) {
    if (!created_bpffs_dir.empty()) {
      ::rmdir(created_bpffs_dir.c_str());
    }
    return error;
  };
  UniqueFd bpffs_lock(::open(bpffs_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!bpffs_lock && errno != ENOENT) {
    return fail(make_error(errno, "cannot open daemon.bpffs_dir " + bpffs_dir + " to lock it"));
  }
  if (bpffs_lock) {
    if (Status locked = lock_or_name_holder(bpffs_lock.get(), bpffs_dir, "daemon.bpffs_dir");
        !locked) {
      return fail(locked.error());
    }
  }

  // For people and for the error of the next daemon when /proc/locks is not there; the lock
  // itself is the flock, not this pid. The file is not removed at exit: unlinking a lock file
  // lets a third process lock a new file while a second still waits on the old one.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (state_lock &&
      (::fchmod(state_lock.get(), 0600) != 0 || ::ftruncate(state_lock.get(), 0) != 0 ||
       ::pwrite(state_lock.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))) {
    return fail(make_error(errno, "cannot write the pid into the lock file " + path));
  }
  return InstanceLock(std::move(state_lock), std::move(bpffs_lock), path,
                      std::move(created_bpffs_dir));
}

}  // namespace meshlane
