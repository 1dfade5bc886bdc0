// What the two Asio servers (the control socket and the metrics endpoint) share: accepting
// forever, and closing every connection they still track (both keep their connections as raw
// pointer -> weak_ptr) when they shut down.
#pragma once

#include <spdlog/spdlog.h>

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace meshlane {

// Closes every live connection. Copies first: closing may destroy a connection, which then
// erases itself from `live`.
template <typename Connection>
void close_all(const std::map<Connection*, std::weak_ptr<Connection>>& live) {
  std::vector<std::shared_ptr<Connection>> alive;
  for (const auto& [raw, weak] : live) {
    if (auto connection = weak.lock()) {
      alive.push_back(std::move(connection));
    }
  }
  for (auto& connection : alive) {
    connection->close();
  }
}

// Stops accepting and closes every live connection, from a server's destructor: what throws is
// logged as "<what>: <exception>" instead of escaping it.
template <typename Acceptor, typename Connection>
void shut_down(Acceptor& acceptor, boost::asio::steady_timer& retry_timer,
               const std::map<Connection*, std::weak_ptr<Connection>>& live,
               std::string_view what) {
  try {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
    close_all(live);
  } catch (const std::exception& error) {
    spdlog::warn("{}: {}", what, error.what());
  }
}

// How long a server waits after a failed accept (EMFILE and the like) before accepting again.
inline constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// Accepts on `acceptor` until it is closed, handing each connection to `on_accept`. Errors
// such as EMFILE back off for kAcceptRetryDelay on `retry_timer` instead of spinning. Acceptor,
// timer and handler must outlive the pending operations (cancel or close them first); `server`
// names the server in the log and must be a literal.
template <typename Acceptor, typename OnAccept>
void accept_forever(Acceptor& acceptor, boost::asio::steady_timer& retry_timer,
                    std::string_view server, OnAccept on_accept) {
  acceptor.async_accept([&acceptor, &retry_timer, server, on_accept](
                            const boost::system::error_code& error,
                            typename Acceptor::protocol_type::socket socket) mutable {
    if (error == boost::asio::error::operation_aborted) {
      return;  // the server is going away: what the handler refers to may already be gone
    }
    if (error) {
      spdlog::warn("{}: accept failed: {}", server, error.message());
      retry_timer.expires_after(kAcceptRetryDelay);
      retry_timer.async_wait([&acceptor, &retry_timer, server,
                              on_accept](const boost::system::error_code& wait_error) {
        if (!wait_error) {
          accept_forever(acceptor, retry_timer, server, on_accept);
        }
      });
      return;
    }
    on_accept(std::move(socket));
    accept_forever(acceptor, retry_timer, server, on_accept);
  });
}

}  // namespace meshlane
