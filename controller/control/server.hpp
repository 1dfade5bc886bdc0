// The control socket's transport: a Unix stream socket served with Boost.Asio on the daemon's
// io_context. It frames lines, identifies peers (SO_PEERCRED, SO_PEERGROUPS), enforces the
// frame limit, the idle timeout and the client limit, and hands every complete line to a
// handler that returns the response line, or a stream of lines (monitor). One thread serves
// every client: all I/O is asynchronous, so a slow or stalled client never holds up the others.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "control/protocol.hpp"

namespace boost::asio {
class io_context;
}

namespace meshlane::control {

// Who is on the other end, as the kernel recorded it at connect().
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)
};

struct ServerOptions {
  std::string path;           // daemon.socket
  std::uint32_t mode = 0660;  // daemon.socket_mode
  // Owner group of the socket file (chown). Connecting needs write permission on the file, and
  // a file has one group: a second group that must connect gets it through a POSIX ACL entry
  // (acl_group) with the same permission bits as the file's group. Who may call what is then
  // decided per method from SO_PEERCRED/SO_PEERGROUPS (daemon/control_api.hpp, docs/security.md).
  std::optional<gid_t> group;
  std::optional<gid_t> acl_group;
  std::chrono::milliseconds idle_timeout{60000};
  std::size_t max_clients = 1024;
  std::size_t max_frame_bytes = kMaxFrameBytes;
};

// What a reply can turn its connection into (the monitor method): after the reply line the
// session stops reading requests and writes whatever the source yields, until the client
// closes the connection or shuts down its sending side. Everything runs on the io_context's
// thread.
class StreamSource {
 public:
  StreamSource() = default;
  StreamSource(const StreamSource&) = delete;
  StreamSource& operator=(const StreamSource&) = delete;
  StreamSource(StreamSource&&) = delete;
  StreamSource& operator=(StreamSource&&) = delete;
  virtual ~StreamSource() = default;
  // Called once the reply line is written; the source calls `wake` when it has lines to take.
  virtual void start(std::function<void()> wake) = 0;
  // Appends every line ready (newlines included) to `out`; false when there was none.
  virtual bool take(std::string& out) = 0;
  // The client is gone: nothing more is wanted. Idempotent.
  virtual void stop() = 0;
};

// The answer to one line: the response line (newline included) and whether to close after it,
// or a stream to serve after it.
struct Reply {
  std::string line;
  bool close = false;
  std::shared_ptr<StreamSource> stream;
};

using LineHandler = std::function<Reply(const PeerCredentials& peer, std::string_view line)>;

// "" -> nullopt (root only); a group name or a decimal gid -> the gid. Error when unknown,
// naming `setting` (the config key it came from).
Result<std::optional<gid_t>> resolve_socket_group(const std::string& name_or_gid,
                                                  std::string_view setting = "daemon.socket_group");

// Gives `group` the permission bits `mode` gives the file's group, with a POSIX access ACL
// (the system.posix_acl_access xattr, so no libacl): user::, group::, group:<gid>:, mask::,
// other::. Error (e.g. EOPNOTSUPP on a filesystem without ACLs) changes nothing.
Status grant_group_acl(const std::string& path, gid_t group, std::uint32_t mode);

// What remove_stale_socket() found at a socket path.
enum class SocketFile { kAbsent, kServed, kRemoved };

// A daemon killed with SIGKILL leaves its socket file, and bind() fails on it: a socket file
// that nobody accepts on is removed (kRemoved); one a process accepts on is left (kServed).
// Error when path is not a socket, or cannot be removed.
Result<SocketFile> remove_stale_socket(const std::string& path);

class Server {
 public:
  // Binds and listens at options.path, then accepts on `io`. A stale socket file (nobody
  // accepting) is replaced; a live one, or a file that is not a socket, is an error.
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io, ServerOptions options,
                                               LineHandler handler);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Stops accepting, closes every client and removes the socket file (if it is still ours).
  ~Server();

  [[nodiscard]] std::size_t client_count() const;
  // The most clients served at once (options.max_clients).
  [[nodiscard]] std::size_t max_clients() const;
  [[nodiscard]] const std::string& path() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshlane::control
