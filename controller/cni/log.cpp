#include "cni/log.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

namespace meshlane::cni {

void Log::open_file(const std::string& path) {
  file_.open(path, std::ios::app);
  if (!file_) {
    const int error = errno;
    write("warn", "cannot open log_file " + path + ": " + std::strerror(error) +
                      " (logging to stderr only; check the directory exists and is writable)");
  }
}

void Log::write(std::string_view level, std::string_view message) {
  std::string line = "meshlane-cni[" + std::to_string(::getpid()) + "] " + std::string(level);
  if (!context_.empty()) {
    line += " " + context_;
  }
  line += ": ";
  line += message;
  line += '\n';
  err_ << line << std::flush;
  if (file_.is_open()) {
    // The file is shared by every invocation on the node: a timestamp tells them apart.
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &utc);
    file_ << stamp << line << std::flush;
  }
}

}  // namespace meshlane::cni
