#include "common/text_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/unique_fd.hpp"

namespace meshlane {

namespace {

// Everything left to read on fd; errors say "cannot read <what>".
Result<std::string> read_all(int fd, const std::string& what) {
  std::string text;
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t count = ::read(fd, buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return make_error(errno, "cannot read " + what);
    }
    if (count == 0) {
      return text;
    }
    text.append(buffer.data(), static_cast<std::size_t>(count));
  }
}

}  // namespace

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return make_error(errno, "cannot read " + path);
  }
  return read_all(fd.get(), path);
}

Result<std::optional<std::string>> read_text_file_if_present(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
    return std::optional<std::string>{};
  }
  auto text = read_text_file(path);
  if (!text) {
    return text.error();
  }
  return std::optional<std::string>(std::move(text.value()));
}

Result<std::optional<std::string>> read_state_file(const std::string& path) {
  // O_NONBLOCK: a FIFO planted there must not hang the start; it is refused below.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd && errno == ENOENT) {
    return std::optional<std::string>{};
  }
  if (!fd && errno == ELOOP) {
    return make_error(ELOOP, "refusing to read the state file " + path +
                                 ": it is a symbolic link (meshlaned never follows links in "
                                 "daemon.state_dir; replace it with the file itself or remove it)");
  }
  if (!fd) {
    return make_error(errno, "cannot read the state file " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(errno, "cannot stat the state file " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(
        EINVAL, "refusing to read the state file " + path + ": not a regular file (remove it)");
  }
  auto text = read_all(fd.get(), "the state file " + path);
  if (!text) {
    return text.error();
  }
  return std::optional<std::string>(std::move(text.value()));
}

namespace {

Status write_all(int fd, const std::string& content, const std::string& path) {
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t count = ::write(fd, content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return make_error(errno, "cannot write " + path);
    }
    written += static_cast<std::size_t>(count);
  }
  return {};
}

// 16 hex digits from the kernel's random pool: a temporary name nobody can guess in advance.
std::string random_suffix() {
  std::array<unsigned char, 8> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t count = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      // No getrandom (seccomp?): O_EXCL still makes the file ours, the name is only guessable.
      const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      std::memcpy(bytes.data(), &now, bytes.size());
      break;
    }
    filled += static_cast<std::size_t>(count);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (unsigned char byte : bytes) {
    text += kHex[byte >> 4];
    text += kHex[byte & 0xf];
  }
  return text;
}

}  // namespace

Status write_file_atomically(const std::string& path, const std::string& content, mode_t mode) {
  const std::filesystem::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  // A fixed name (path + ".tmp") could be created beforehand by someone with write access to
  // the directory, as a symlink to a file root would then truncate; a fresh unpredictable name
  // opened with O_EXCL|O_NOFOLLOW is always a new file of ours. EEXIST only on a collision.
  std::string temporary;
  UniqueFd fd;
  for (int attempt = 0; attempt < 16 && !fd; ++attempt) {
    temporary = (dir + "/.") + target.filename().string() + ".tmp." + std::to_string(::getpid()) +
                "." + random_suffix();
    fd.reset(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd && errno != EEXIST) {
      break;
    }
  }
  if (!fd) {
    return make_error(errno, "cannot create a temporary file in " + dir + " to replace " + path);
  }
  auto fail = [&](Error error) {
    ::unlink(temporary.c_str());
    return error;
  };
  if (Status status = write_all(fd.get(), content, temporary); !status) {
    return fail(status.error());
  }
  // open()'s mode is filtered by the umask; the file must have exactly the mode asked for.
  if (::fchmod(fd.get(), mode) != 0) {
    return fail(make_error(errno, "cannot chmod " + temporary));
  }
  if (::fsync(fd.get()) != 0) {
    return fail(make_error(errno, "cannot fsync " + temporary));
  }
  if (::close(fd.release()) != 0) {
    return fail(make_error(errno, "cannot close " + temporary));
  }
  // rename() replaces a symlink at path itself, never the file it points to.
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return fail(make_error(errno, "cannot rename " + temporary + " to " + path));
  }
  // The rename is durable only once the directory is.
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) {
    return make_error(errno, "cannot open directory " + dir + " to fsync it (" + path +
                                 " was replaced but may not survive a crash)");
  }
  if (::fsync(dir_fd.get()) != 0) {
    return make_error(errno, "cannot fsync directory " + dir + " (" + path +
                                 " was replaced but may not survive a crash)");
  }
  return {};
}

}  // namespace meshlane
