#include "control/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>

namespace meshlane::control {

namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until `deadline`. Error on timeout.
Status wait_for(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return make_error(ETIMEDOUT, std::string("no answer from the daemon while ") + what);
    }
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready < 0) {
      return make_error(errno, std::string("poll failed while ") + what);
    }
    if (ready > 0) {
      return {};
    }
  }
}

}  // namespace

Result<Client> Client::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return make_error(ENAMETOOLONG, "cannot connect to " + path + ": not a usable socket path");
  }
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return make_error(errno, "cannot create a Unix socket");
  }
  // A Unix stream connect completes at once or fails (EAGAIN when the backlog is full).
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN && Clock::now() < deadline) {
      ::usleep(10000);
      continue;
    }
    const int error = errno;
    const char* hint = "";
    if (error == ENOENT || error == ECONNREFUSED) {
      hint = " (is meshlaned running? --socket or daemon.socket names the socket)";
    } else if (error == EACCES || error == EPERM) {
      hint =
          " (the socket is open to root and the members of daemon.socket_read_group and "
          "daemon.socket_write_group only)";
    }
    return make_error(error, "cannot connect to " + path + hint);
  }
  return Client(std::move(fd), timeout);
}

Status Client::send_raw(std::string_view bytes) {
  const auto deadline = Clock::now() + timeout_;
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status status = wait_for(fd_.get(), POLLOUT, deadline, "sending"); !status) {
        return status;
      }
      continue;
    }
    if (sent < 0) {
      return make_error(errno, "cannot send to the daemon");
    }
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return {};
}

Result<std::string> Client::read_line() { return next_line(Clock::now() + timeout_, nullptr); }

Result<std::string> Client::read_stream_line(const volatile std::sig_atomic_t& stop) {
  return next_line(std::nullopt, &stop);
}

Result<std::string> Client::next_line(std::optional<Clock::time_point> deadline,
                                      const volatile std::sig_atomic_t* stop) {
  for (;;) {
    if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (deadline) {
      if (Status status = wait_for(fd_.get(), POLLIN, *deadline, "waiting for a response");
          !status) {
        return status.error();
      }
    } else {
      if (stop != nullptr && *stop != 0) {
        return make_error(ECANCELED, "stopped");
      }
      pollfd entry{fd_.get(), POLLIN, 0};
      if (::poll(&entry, 1, -1) < 0) {
        if (errno != EINTR) {
          return make_error(errno, "poll failed while waiting for the stream");
        }
        if (stop != nullptr && *stop != 0) {
          return make_error(ECANCELED, "stopped");
        }
        continue;
      }
    }
    char chunk[65536];
    const ssize_t count = ::recv(fd_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
    if (count < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      continue;
    }
    if (count < 0) {
      return make_error(errno, "cannot read from the daemon");
    }
    if (count == 0) {
      if (stop != nullptr && *stop != 0) {
        return make_error(ECANCELED, "stopped");  // the signal handler shut the socket down
      }
      return make_error(ECONNRESET, "the daemon closed the connection" +
                                        std::string(buffer_.empty() ? "" : " mid-response"));
    }
    buffer_.append(chunk, static_cast<std::size_t>(count));
  }
}

Result<Response> Client::call(std::string_view method, const nlohmann::json& params) {
  const std::int64_t id = next_id_++;
  if (Status status = send_raw(encode_request(id, method, params)); !status) {
    return status.error();
  }
  auto line = read_line();
  if (!line) {
    return line.error();
  }
  auto response = parse_response(line.value());
  if (!response) {
    return response.error();
  }
  // Connection-level errors (id null) answer whatever was sent last.
  if (!response->id.is_null() && response->id != id) {
    return make_error("the daemon answered request " + response->id.dump() + ", expected " +
                      std::to_string(id));
  }
  return response;
}

}  // namespace meshlane::control
