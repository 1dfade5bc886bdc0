#include "cni_install/installer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <string>
#include <utility>

#include "common/text_file.hpp"
#include "common/unique_fd.hpp"

namespace meshlane::cni_install {
namespace {

// CNI config files are read by the runtime and by other node agents; nothing in them is secret.
constexpr mode_t kConfMode = 0644;

namespace fs = std::filesystem;

std::string join(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

Result<std::vector<std::string>> list_names(const std::string& dir) {
  std::error_code error;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    std::error_code type_error;
    if (it->is_regular_file(type_error)) {
      names.push_back(it->path().filename().string());
    }
  }
  if (error) {
    return make_error(error.value(), "cannot list the CNI conf dir " + dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return make_error(errno, "cannot remove " + path);
  }
  return {};
}

InstallError failed(Error error) { return InstallError{false, std::move(error)}; }

// Waits until fd is readable or timeout passes; true when it is readable. fd < 0: just sleeps.
bool readable_within(int fd, std::chrono::milliseconds timeout) {
  pollfd entry{fd, POLLIN, 0};
  const int ready = ::poll(&entry, fd >= 0 ? 1 : 0, static_cast<int>(timeout.count()));
  return ready > 0 && (entry.revents & POLLIN) != 0;
}

// An inotify watch on the conf dir for the changes that can add, replace or remove a config.
// Invalid (fd -1) while the directory does not exist; the callers then poll.
UniqueFd watch_conf_dir(const std::string& dir) {
  UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!fd) {
    return fd;
  }
  constexpr std::uint32_t kMask =
      IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF;
  if (::inotify_add_watch(fd.get(), dir.c_str(), kMask) < 0) {
    return {};
  }
  return fd;
}

void drain(int fd) {
  std::array<char, 4096> buffer{};
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
}

// Waits for a change in the conf dir (or `timeout`), watching stop_fd too. Returns true when
// stop_fd became readable.
bool wait_for_change(const std::string& dir, UniqueFd& inotify_fd, int stop_fd,
                     std::chrono::milliseconds timeout) {
  if (!inotify_fd) {
    inotify_fd = watch_conf_dir(dir);  // the directory may exist by now
  }
  std::array<pollfd, 2> fds{pollfd{stop_fd, POLLIN, 0}, pollfd{inotify_fd.get(), POLLIN, 0}};
  // Without a watch (no conf dir yet) poll once a second for it to appear.
  const auto wait = inotify_fd ? timeout : std::min(timeout, std::chrono::milliseconds(1000));
  const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
  if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
    return true;
  }
  if (ready > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    // A primary CNI writes several files or writes in steps: let it finish, then look once.
    if (readable_within(stop_fd, std::chrono::milliseconds(100))) {
      return true;
    }
    drain(inotify_fd.get());
    if ((fds[1].revents & (POLLHUP | POLLERR)) != 0) {
      inotify_fd.reset();
    }
  }
  return false;
}

}  // namespace

std::string backup_name_of_conf(const std::string& conf_name) {
  return "." + conf_name + ".meshlane-orig";
}

Result<bool> copy_executable_atomically(const std::string& source, const std::string& target) {
  auto bytes = read_text_file(source);
  if (!bytes) {
    return make_error(bytes.error().errnum, "cannot read the plugin " + source +
                                                ": build it (ninja meshlane-cni) or pass --plugin");
  }
  if (auto installed = read_text_file_if_present(target);
      installed && installed->has_value() && **installed == *bytes) {
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0 && (st.st_mode & 07777) == 0755) {
      return false;
    }
  }
  // The temp file is in the same directory (rename is atomic only within a filesystem), so a
  // runtime running "meshlane-cni" meanwhile gets the old binary or the new, never half.
  if (Status written = write_file_atomically(target, *bytes, 0755); !written) {
    return make_error(written.error().errnum,
                      written.error().context + " (installing the plugin in the CNI bin dir)");
  }
  return true;
}

Result<InstallReport, InstallError> install_once(const InstallOptions& options) {
  const std::string& conf_dir = options.cni_conf_dir;
  std::error_code exists_error;
  if (!fs::is_directory(conf_dir, exists_error)) {
    return InstallError{true, make_error("no primary CNI config yet: " + conf_dir +
                                         " does not exist (the network plugin creates it)")};
  }
  auto names = list_names(conf_dir);
  if (!names) {
    return failed(names.error());
  }
  const std::optional<std::string> primary = choose_primary(names.value());
  if (!primary) {
    return InstallError{true, make_error("no primary CNI config yet: " + conf_dir +
                                         " holds no .conflist, .conf or .json file; waiting for "
                                         "the network plugin to write one")};
  }
  const std::string primary_path = join(conf_dir, *primary);
  auto text = read_text_file(primary_path);
  if (!text) {
    return failed(text.error());
  }
  // Everything that can be refused is checked before anything is written.
  auto edit = install_entry(primary_path, text.value(), options.settings);
  if (!edit) {
    return failed(edit.error());
  }

  // The primary CNI put its own binary there, so a missing bin dir is a wrong --cni-bin-dir;
  // creating it would install where the runtime never looks.
  if (!fs::is_directory(options.cni_bin_dir, exists_error)) {
    return failed(make_error("the CNI bin dir " + options.cni_bin_dir +
                             " does not exist: pass the runtime's with --cni-bin-dir (containerd: "
                             "bin_dir in /etc/containerd/config.toml, usually /opt/cni/bin)"));
  }
  InstallReport report;
  report.binary = join(options.cni_bin_dir, std::string(kPluginType));
  auto copied = copy_executable_atomically(options.plugin_path, report.binary);
  if (!copied) {
    return failed(copied.error());
  }
  report.binary_changed = copied.value();

  // install_entry names the file by the path it was given; keep the conf dir's name for it.
  const std::string target_name = fs::path(edit->file_name).filename().string();
  report.conflist = join(conf_dir, target_name);
  report.action = edit->action;
  if (edit->action == EditAction::kUnchanged) {
    return report;
  }
  if (Status written = write_file_atomically(report.conflist, edit->text, kConfMode); !written) {
    return failed(written.error());
  }
  if (edit->replaced_file) {
    // The .conf goes last: until it is gone it sorts first and the runtime keeps using it.
    const std::string backup = join(conf_dir, backup_name_of_conf(*primary));
    if (Status saved = write_file_atomically(backup, text.value(), kConfMode); !saved) {
      return failed(saved.error());
    }
    if (Status removed = remove_file(primary_path); !removed) {
      return failed(removed.error());
    }
    report.removed_file = primary_path;
    report.backup_file = backup;
  }
  return report;
}

Result<InstallReport, InstallError> install_when_ready(const InstallOptions& options,
                                                       std::chrono::milliseconds timeout,
                                                       int stop_fd) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  UniqueFd inotify_fd = watch_conf_dir(options.cni_conf_dir);
  for (;;) {
    auto result = install_once(options);
    if (result || !result.error().no_primary_yet) {
      return result;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || wait_for_change(options.cni_conf_dir, inotify_fd, stop_fd, left)) {
      return result;
    }
  }
}

Status watch(const InstallOptions& options, int stop_fd,
             const std::function<void(const InstallReport&)>& on_change) {
  // A rescan now and then as well, in case an event was lost (queue overflow, conf dir
  // replaced by a new directory).
  constexpr std::chrono::milliseconds kRescan(30000);
  UniqueFd inotify_fd = watch_conf_dir(options.cni_conf_dir);
  bool waiting_logged = false;
  for (;;) {
    auto result = install_once(options);
    if (result) {
      waiting_logged = false;
      if (result->changed()) {
        on_change(result.value());
      }
    } else if (result.error().no_primary_yet) {
      if (!waiting_logged) {
        spdlog::info("{}", result.error().error.message());
        waiting_logged = true;
      }
    } else {
      // A primary CNI that writes its file in place may be caught half-way: try again at the
      // next change rather than give up on the node.
      spdlog::warn("install-cni: {}; retrying at the next change of {}",
                   result.error().error.message(), options.cni_conf_dir);
    }
    if (wait_for_change(options.cni_conf_dir, inotify_fd, stop_fd, kRescan)) {
      return {};
    }
  }
}

namespace {

// A converted .conf whose conflist, without our entry, is still what the conversion made: the
// .conf goes back byte for byte and the conflist and backup go away. Otherwise (the primary
// changed the conflist since) the conflist stays without our entry and only the backup goes.
Status restore_converted(const std::string& conf_dir, const std::string& backup_name,
                         UninstallReport& report) {
  const std::string conf_name =
      backup_name.substr(1, backup_name.size() - 1 - std::string(".meshlane-orig").size());
  const std::string backup_path = join(conf_dir, backup_name);
  const std::string conf_path = join(conf_dir, conf_name);
  const std::string list_path = join(conf_dir, conflist_name_of_conf(conf_name));
  auto original = read_text_file(backup_path);
  if (!original) {
    return original.error();
  }
  auto list_text = read_text_file_if_present(list_path);
  if (!list_text) {
    return list_text.error();
  }
  if (list_text->has_value()) {
    auto converted = conflist_of_conf(conf_name, original.value());
    if (converted && converted.value() == **list_text) {
      struct stat st {};
      if (::stat(conf_path.c_str(), &st) != 0) {
        // The .conf first: while both exist it sorts first, and it holds no entry of ours.
        if (Status written = write_file_atomically(conf_path, original.value(), kConfMode);
            !written) {
          return written.error();
        }
        report.restored.push_back(conf_path);
      }
      if (Status removed = remove_file(list_path); !removed) {
        return removed.error();
      }
    }
  }
  return remove_file(backup_path);
}

}  // namespace

Result<UninstallReport> uninstall(const std::string& cni_bin_dir, const std::string& cni_conf_dir) {
  UninstallReport report;
  report.binary = join(cni_bin_dir, std::string(kPluginType));
  std::error_code exists_error;
  if (fs::is_directory(cni_conf_dir, exists_error)) {
    auto names = list_names(cni_conf_dir);
    if (!names) {
      return names.error();
    }
    for (const std::string& name : names.value()) {
      if (!is_cni_config_name(name) || name.front() == '.') {
        continue;
      }
      const std::string path = join(cni_conf_dir, name);
      auto text = read_text_file(path);
      if (!text) {
        return text.error();
      }
      auto edit = remove_entry(path, text.value());
      if (!edit) {
        // Not ours to judge; it cannot hold a working entry of ours either.
        spdlog::warn("uninstall-cni: skipping {}", edit.error().message());
        continue;
      }
      if (!edit->changed) {
        continue;
      }
      if (Status written = write_file_atomically(path, edit->text, kConfMode); !written) {
        return make_error(written.error().errnum,
                          written.error().context +
                              "; the plugin binary was left in place (an entry without its "
                              "binary blocks every pod): fix and run uninstall-cni again");
      }
      report.conflists.push_back(path);
    }
    for (const std::string& name : names.value()) {
      const std::string suffix = ".meshlane-orig";
      if (name.size() > suffix.size() + 1 && name.front() == '.' &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        if (Status restored = restore_converted(cni_conf_dir, name, report); !restored) {
          return restored.error();
        }
      }
    }
  }
  // The binary last: every entry pointing at it is gone now.
  struct stat st {};
  if (::lstat(report.binary.c_str(), &st) == 0) {
    if (Status removed = remove_file(report.binary); !removed) {
      return removed.error();
    }
    report.binary_removed = true;
  }
  return report;
}

nlohmann::ordered_json InstallReport::to_json() const {
  nlohmann::ordered_json json;
  json["binary"] = {{"path", binary}, {"changed", binary_changed}};
  json["conflist"] = {{"path", conflist}, {"action", std::string(cni_install::to_string(action))}};
  json["removed"] = removed_file ? nlohmann::ordered_json(*removed_file) : nullptr;
  json["backup"] = backup_file ? nlohmann::ordered_json(*backup_file) : nullptr;
  json["changed"] = changed();
  return json;
}

nlohmann::ordered_json UninstallReport::to_json() const {
  nlohmann::ordered_json json;
  json["conflists"] = conflists;
  json["restored"] = restored;
  json["binary"] = {{"path", binary}, {"removed", binary_removed}};
  json["changed"] = changed();
  return json;
}

}  // namespace meshlane::cni_install
