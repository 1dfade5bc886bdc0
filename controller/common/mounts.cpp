// Finds the cgroup v2 and bpffs mounts from mountinfo instead of assuming /sys/fs/cgroup and
// /sys/fs/bpf: hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified, and containers move
// things around.

#include "common/mounts.hpp"
#include "common/text_file.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace meshlane {
namespace {

constexpr const char* kMountinfoPath = "/proc/self/mountinfo";
constexpr const char* kDefaultBpffsMountPoint = "/sys/fs/bpf";

struct MountEntry {
  std::string mount_point;
  std::string fstype;
};

bool is_octal_digit(char c) { return c >= '0' && c <= '7'; }

// The kernel escapes space, tab, newline and backslash in mountinfo as \ooo.
std::string decode_octal_escapes(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && is_octal_digit(text[i + 1]) &&
        is_octal_digit(text[i + 2]) && is_octal_digit(text[i + 3])) {
      decoded += static_cast<char>(((text[i + 1] - '0') << 6) | ((text[i + 2] - '0') << 3) |
                                   (text[i + 3] - '0'));
      i += 3;
    } else {
      decoded += text[i];
    }
  }
  return decoded;
}

std::vector<std::string_view> split_on_spaces(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < line.size()) {
    const std::size_t end = std::min(line.find(' ', start), line.size());
    if (end > start) {
      fields.push_back(line.substr(start, end - start));
    }
    start = end + 1;
  }
  return fields;
}

// proc(5): "id parent major:minor root mount_point options [optional...] - fstype source
// super_options". Malformed lines yield nothing rather than an error: one odd line must
// not hide the mounts we are looking for.
std::optional<MountEntry> parse_mountinfo_line(std::string_view line) {
  constexpr std::size_t kMountPointField = 4;
  constexpr std::size_t kFirstOptionalField = 6;
  const std::vector<std::string_view> fields = split_on_spaces(line);
  if (fields.size() <= kFirstOptionalField) {
    return std::nullopt;
  }
  for (std::size_t i = kFirstOptionalField; i + 1 < fields.size(); ++i) {
    if (fields[i] == "-") {
      return MountEntry{decode_octal_escapes(fields[kMountPointField]),
                        decode_octal_escapes(fields[i + 1])};
    }
  }
  return std::nullopt;
}

std::optional<std::string> find_first_mount_of_type(std::string_view mountinfo_text,
                                                    std::string_view fstype) {
  std::size_t start = 0;
  while (start < mountinfo_text.size()) {
    const std::size_t end = std::min(mountinfo_text.find('\n', start), mountinfo_text.size());
    const std::optional<MountEntry> entry =
        parse_mountinfo_line(mountinfo_text.substr(start, end - start));
    if (entry && entry->fstype == fstype) {
      return entry->mount_point;
    }
    start = end + 1;
  }
  return std::nullopt;
}

Result<std::string> read_mountinfo() { return read_text_file(kMountinfoPath); }

// Filesystem magic of the filesystem holding `path`, or the errno of statfs().
Result<long> filesystem_magic(const std::string& path) {  // NOLINT(google-runtime-int)
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) {
    return make_error(errno, "cannot statfs " + path);
  }
  return static_cast<long>(info.f_type);  // NOLINT(google-runtime-int)
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

bool has_dot_dot_component(std::string_view path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    if (path.substr(start, end - start) == "..") {
      return true;
    }
    start = end + 1;
  }
  return false;
}

Status mount_default_bpffs() {
  const std::string mount_point = kDefaultBpffsMountPoint;
  std::error_code mkdir_error;
  std::filesystem::create_directories(mount_point, mkdir_error);
  if (mkdir_error) {
    return make_error(mkdir_error.value(),
                      "no bpffs is mounted and cannot create " + mount_point + " to mount one");
  }
  // mode=0700: pinned maps expose the datapath's state, so only root may browse them.
  if (::mount("bpffs", mount_point.c_str(), "bpf", 0, "mode=0700") != 0) {
    return make_error(errno, "no bpffs is mounted and mounting one at " + mount_point +
                                 " failed (meshlaned needs CAP_SYS_ADMIN)");
  }
  return {};
}

Status require_directory(const std::string& path, const std::string& what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return make_error(errno, "cannot stat " + what + " " + path);
  }
  if (!S_ISDIR(info.st_mode)) {
    return make_error(ENOTDIR, what + " " + path + " is not a directory");
  }
  return {};
}

std::string bpffs_hint(const std::string& bpffs_mount) {
  return "set daemon.bpffs_dir to a directory below a bpffs mount (bpffs is mounted at " +
         bpffs_mount + ")";
}

// The pin directory must be on bpffs itself, not merely below a bpffs mount point.
Status check_on_bpffs(const std::string& path, const std::string& dir,
                      const std::string& bpffs_mount) {
  const Result<long> magic = filesystem_magic(path);  // NOLINT(google-runtime-int)
  if (!magic) {
    return make_error(magic.error().errnum, magic.error().context + " (checking daemon.bpffs_dir " +
                                                dir + "); " + bpffs_hint(bpffs_mount));
  }
  if (*magic != static_cast<long>(BPF_FS_MAGIC)) {  // NOLINT(google-runtime-int)
    return make_error(path + " is not on a bpf filesystem, so daemon.bpffs_dir " + dir +
                      " cannot hold pins; " + bpffs_hint(bpffs_mount));
  }
  return {};
}

}  // namespace

Result<std::string> find_cgroup2_mount(std::string_view mountinfo_text) {
  std::optional<std::string> mount_point = find_first_mount_of_type(mountinfo_text, "cgroup2");
  if (!mount_point) {
    return make_error(
        "no cgroup2 filesystem is mounted; meshlaned needs the cgroup v2 "
        "(unified) hierarchy, e.g. mount -t cgroup2 none /sys/fs/cgroup/unified");
  }
  return std::move(*mount_point);
}

std::string find_bpffs_mount(std::string_view mountinfo_text) {
  return find_first_mount_of_type(mountinfo_text, "bpf").value_or("");
}

Result<std::string> find_cgroup2_mount() {
  Result<std::string> mountinfo = read_mountinfo();
  if (!mountinfo) {
    return mountinfo.error();
  }
  return find_cgroup2_mount(*mountinfo);
}

Status ensure_bpffs_dir(const std::string& dir) {
  if (dir.empty() || dir.front() != '/') {
    return make_error("daemon.bpffs_dir \"" + dir + "\" must be an absolute path on bpffs");
  }
  const std::string pin_dir = strip_trailing_slashes(dir);

  Result<std::string> mountinfo = read_mountinfo();
  if (!mountinfo) {
    return mountinfo.error();
  }
  std::string bpffs_mount = find_bpffs_mount(*mountinfo);
  if (bpffs_mount.empty()) {
    if (Status mounted = mount_default_bpffs(); !mounted) {
      return mounted;
    }
    bpffs_mount = kDefaultBpffsMountPoint;
  }

  // Check the parent before mkdir so a misconfigured path never leaves a stray directory
  // on some other filesystem.
  if (::access(pin_dir.c_str(), F_OK) != 0) {
    if (Status status = check_on_bpffs(parent_directory(pin_dir), pin_dir, bpffs_mount); !status) {
      return status;
    }
    if (::mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error(errno, "cannot create daemon.bpffs_dir " + pin_dir);
    }
  }
  if (Status status = require_directory(pin_dir, "daemon.bpffs_dir"); !status) {
    return status;
  }
  return check_on_bpffs(pin_dir, pin_dir, bpffs_mount);
}

Result<std::string> resolve_cgroup_path(const std::string& cgroup2_mount,
                                        const std::string& configured) {
  if (cgroup2_mount.empty()) {
    return make_error("no cgroup2 mount point to resolve daemon.cgroup \"" + configured +
                      "\" against");
  }
  // ".." could climb out of the cgroup hierarchy; nobody needs it in a cgroup path.
  if (has_dot_dot_component(configured)) {
    return make_error("daemon.cgroup \"" + configured + R"(" must not contain "..")");
  }
  const std::string mount = strip_trailing_slashes(cgroup2_mount);
  const std::string wanted = strip_trailing_slashes(configured);

  std::string path;
  if (wanted.empty() || wanted == "/" || wanted == mount) {
    path = mount;
  } else if (wanted.starts_with(mount + "/")) {
    path = wanted;
  } else {
    const std::size_t first_name = wanted.find_first_not_of('/');
    path = (mount == "/" ? "" : mount) + "/" + wanted.substr(first_name);
  }

  if (Status status = require_directory(path, "cgroup"); !status) {
    const std::string advice =
        " (daemon.cgroup = \"" + configured + "\"): create the cgroup or fix daemon.cgroup";
    return make_error(status.error().errnum, status.error().context + advice);
  }
  const Result<long> magic = filesystem_magic(path);  // NOLINT(google-runtime-int)
  if (!magic) {
    return magic.error();
  }
  if (*magic != static_cast<long>(CGROUP2_SUPER_MAGIC)) {  // NOLINT(google-runtime-int)
    return make_error("cgroup " + path + " (daemon.cgroup = \"" + configured +
                      "\") is not on a cgroup2 filesystem; set daemon.cgroup to a path below "
                      "the cgroup2 mount " +
                      mount);
  }
  return path;
}

}  // namespace meshlane
