#include "common/text_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <utility>

#include "common/unique_fd.hpp"

namespace meshlane {

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return make_error(errno, "cannot read " + path);
  }
  std::string text;
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return make_error(errno, "cannot read " + path);
    }
    if (count == 0) {
      return text;
    }
    text.append(buffer.data(), static_cast<std::size_t>(count));
  }
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

}  // namespace

Status write_file_atomically(const std::string& path, const std::string& content, mode_t mode) {
  const std::filesystem::path target(path);
  const std::string temporary = path + ".tmp";
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) {
    return make_error(errno, "cannot create " + temporary);
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
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return fail(make_error(errno, "cannot rename " + temporary + " to " + path));
  }
  // The rename is durable only once the directory is.
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || ::fsync(dir_fd.get()) != 0) {
    return make_error(errno, "cannot fsync directory " + dir);
  }
  return {};
}

}  // namespace meshlane
