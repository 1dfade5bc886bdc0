// The metrics endpoint's transport: a TCP listener served with Boost.Asio on the daemon's
// io_context (the control socket's), answering each connection's one HTTP request with
// metrics::handle_request_head and closing it. Bounded: the request head's size, the time a
// client has for its request and for reading the answer, and the number of connections at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/error.hpp"
#include "config/config.hpp"
#include "observe/metrics.hpp"

namespace boost::asio {
class io_context;
}

namespace meshlane::metrics {

struct ServerOptions {
  ListenAddress listen;  // port 0: any free port (tests)
  std::chrono::milliseconds idle_timeout{10000};
  // Scrapers are few; past this many connections at once, new ones get 503 and are closed.
  std::size_t max_connections = 16;
  std::size_t max_request_head_bytes = kMaxRequestHeadBytes;
};

class Server {
 public:
  // Binds and listens on options.listen, then accepts on `io`.
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io, ServerOptions options,
                                               RenderFn render);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Stops accepting and closes every connection.
  ~Server();

  // The port bound (the chosen one when options.listen.port was 0).
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::size_t connection_count() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlane::metrics
