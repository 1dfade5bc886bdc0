#include "common/text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>

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

}  // namespace meshlane
