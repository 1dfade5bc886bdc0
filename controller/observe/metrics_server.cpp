#include "observe/metrics_server.hpp"
#include "common/asio_servers.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace meshlane::metrics {

namespace asio = boost::asio;
using Tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kReadChunk = 1024;

// A best-effort, never-blocking answer before closing (too many connections, timeout).
void send_now(int fd, const HttpResponse& response) {
  const std::string bytes = response.serialize();
  [[maybe_unused]] const ssize_t sent =
      ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

HttpResponse plain(int status, std::string reason, std::string body) {
  return {status, std::move(reason), "text/plain; charset=utf-8", std::move(body) + "\n"};
}

asio::ip::address to_asio(const IpAddress& address) {
  if (address.is_ipv4) {
    return asio::ip::address_v4(asio::ip::address_v4::bytes_type{
        address.bytes[12], address.bytes[13], address.bytes[14], address.bytes[15]});
  }
  asio::ip::address_v6::bytes_type bytes{};
  std::copy(address.bytes.begin(), address.bytes.end(), bytes.begin());
  return asio::ip::address_v6(bytes);
}

class Connection;

// What connections share with the server; kept alive by every connection so that handlers
// still queued after the server is gone never touch freed memory.
struct Shared {
  RenderFn render;
  ServerOptions options;
  std::map<Connection*, std::weak_ptr<Connection>> connections;
};

// One HTTP exchange: read the request head, answer, close.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Tcp::socket socket, std::shared_ptr<Shared> shared)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), shared_(std::move(shared)) {}

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { shared_->connections.erase(this); }

  void start() {
    shared_->connections.emplace(this, weak_from_this());
    // One clock for the whole exchange: a client that trickles its request or never reads the
    // answer is dropped all the same.
    timer_.expires_after(shared_->options.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
      if (error || self->closed_) {
        return;
      }
      if (!self->responding_) {
        send_now(self->socket_.native_handle(),
                 plain(408, "Request Timeout", "no complete request in time"));
      }
      self->close();
    });
    read();
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(Tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(chunk_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t count) {
          self->on_read(error, count);
        });
  }

  void on_read(const boost::system::error_code& error, std::size_t count) {
    if (closed_) {
      return;
    }
    if (error) {
      close();  // gone before a complete request: nobody to answer
      return;
    }
    received_.append(chunk_.data(), count);
    const std::size_t end = request_head_end(received_);
    const std::size_t limit = shared_->options.max_request_head_bytes;
    if (end == std::string::npos) {
      if (received_.size() > limit) {
        respond(plain(431, "Request Header Fields Too Large",
                      "request head longer than " + std::to_string(limit) + " bytes"));
        return;
      }
      read();
      return;
    }
    if (end > limit) {
      respond(plain(431, "Request Header Fields Too Large",
                    "request head longer than " + std::to_string(limit) + " bytes"));
      return;
    }
    const HttpResponse response =
        handle_request_head(std::string_view(received_).substr(0, end), shared_->render);
    if (response.status != 200) {
      spdlog::debug("metrics: {} {} for {}", response.status, response.reason,
                    received_.substr(0, std::min<std::size_t>(received_.find('\n'), 200)));
    }
    respond(response);
  }

  void respond(const HttpResponse& response) {
    responding_ = true;
    out_ = response.serialize();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const boost::system::error_code&, std::size_t) {
                        self->close();
                      });
  }

  Tcp::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<Shared> shared_;
  std::array<char, kReadChunk> chunk_{};
  std::string received_;
  std::string out_;
  bool closed_ = false;
  bool responding_ = false;
};

}  // namespace

struct Server::Impl {
  Impl(asio::io_context& io, std::shared_ptr<Shared> shared_state)
      : acceptor(io), retry_timer(io), shared(std::move(shared_state)) {}

  void accept_next() {
    accept_forever(acceptor, retry_timer, "metrics",
                   [this](Tcp::socket socket) { on_accept(std::move(socket)); });
  }

  void on_accept(Tcp::socket socket) {
    if (shared->connections.size() >= shared->options.max_connections) {
      send_now(socket.native_handle(),
               plain(503, "Service Unavailable",
                     "too many connections (" + std::to_string(shared->options.max_connections) +
                         "); try again later"));
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    std::make_shared<Connection>(std::move(socket), shared)->start();
  }

  Tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::shared_ptr<Shared> shared;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, ServerOptions options,
                                              RenderFn render) {
  auto shared = std::make_shared<Shared>();
  shared->render = std::move(render);
  shared->options = options;
  auto impl = std::make_unique<Impl>(io, shared);
  const Tcp::endpoint endpoint(to_asio(shared->options.listen.address),
                               shared->options.listen.port);
  const std::string where = to_string(shared->options.listen);
  boost::system::error_code error;
  impl->acceptor.open(endpoint.protocol(), error);
  if (error) {
    return make_error(error.value(), "cannot open a TCP socket for the metrics endpoint " + where);
  }
  impl->acceptor.set_option(Tcp::acceptor::reuse_address(true), error);
  impl->acceptor.bind(endpoint, error);
  if (error) {
    return make_error(error.value(), "cannot bind the metrics endpoint to " + where +
                                         " (is another process using the port? change "
                                         "metrics.listen)");
  }
  impl->acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return make_error(error.value(), "cannot listen on the metrics endpoint " + where);
  }
  impl->accept_next();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::~Server() {
  if (!impl_) {
    return;
  }
  shut_down(impl_->acceptor, impl_->retry_timer, impl_->shared->connections,
            "metrics: closing the endpoint");
}

std::uint16_t Server::port() const {
  boost::system::error_code error;
  const Tcp::endpoint endpoint = impl_->acceptor.local_endpoint(error);
  return error ? 0 : endpoint.port();
}

std::size_t Server::connection_count() const { return impl_->shared->connections.size(); }

}  // namespace meshlane::metrics
