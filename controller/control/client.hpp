// A blocking client of the control socket (meshlanectl, tests): connect, send request lines,
// read response lines, each step bounded by a timeout.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "control/protocol.hpp"

namespace meshlane::control {

class Client {
 public:
  // Error when nothing accepts at path (missing file, no permission, no daemon).
  static Result<Client> connect(const std::string& path, std::chrono::milliseconds timeout);

  // Sends one request and reads its response. Error only when the exchange itself fails
  // (connection closed, timeout, not a response); a daemon error is a Response with error set.
  Result<Response> call(std::string_view method, const nlohmann::json& params);

  // Raw access, for tests of malformed input.
  Status send_raw(std::string_view bytes);
  // One line without its newline. Error on EOF before a newline, or after the timeout.
  Result<std::string> read_line();
  // The same without a timeout, for streams (monitor): waits until a line comes, the daemon
  // closes, or a signal handler sets `stop` (then the error is ECANCELED).
  Result<std::string> read_stream_line(const volatile std::sig_atomic_t& stop);

  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  Client(UniqueFd fd, std::chrono::milliseconds timeout) : fd_(std::move(fd)), timeout_(timeout) {}
  Result<std::string> next_line(std::optional<std::chrono::steady_clock::time_point> deadline,
                                const volatile std::sig_atomic_t* stop);

  UniqueFd fd_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::int64_t next_id_ = 1;
};

}  // namespace meshlane::control
