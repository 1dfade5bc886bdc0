// Closing every connection an Asio server still tracks, shared by the control socket and the
// metrics endpoint (both keep their connections as raw pointer -> weak_ptr).
#pragma once

#include <map>
#include <memory>
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

}  // namespace meshlane
