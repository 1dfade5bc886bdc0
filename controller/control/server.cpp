#include "control/server.hpp"
#include "common/asio_servers.hpp"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <filesystem>
#include <map>
#include <utility>

#include "common/unique_fd.hpp"

namespace meshlane::control {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

namespace {

// Sessions read into one buffer of the server (see Session::read): an idle client costs no
// buffer, so 1,024 of them cost kilobytes rather than 64 MiB.
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

PeerCredentials peer_credentials(int fd) {
  PeerCredentials peer;
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) {
    peer.pid = credentials.pid;
    peer.uid = credentials.uid;
    peer.gid = credentials.gid;
  }
  // SO_PEERGROUPS (Linux 4.13) says how much room it needs with ERANGE.
  std::vector<gid_t> groups(16);
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
      groups.resize(size / sizeof(gid_t));
      peer.groups = std::move(groups);
      break;
    }
    if (errno != ERANGE) {
      break;
    }
    groups.resize(size / sizeof(gid_t) + 1);
  }
  return peer;
}

// A best-effort, never-blocking last word before closing (too many clients, idle timeout).
void send_now(int fd, const std::string& line) {
  [[maybe_unused]] const ssize_t sent =
      ::send(fd, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

class Session;

// What sessions share with the server; kept alive by every session so that handlers still
// queued in the io_context after the server is gone never touch freed memory.
struct Shared {
  LineHandler handler;
  ServerOptions options;
  std::map<Session*, std::weak_ptr<Session>> sessions;
  // Every session reads into this with a synchronous read_some() and copies the bytes into its
  // framer before its handler returns; one thread runs every handler, so no two reads overlap.
  std::array<char, kReadChunk> read_buffer{};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, std::shared_ptr<Shared> shared, PeerCredentials peer)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        framer_(shared->options.max_frame_bytes),
        shared_(std::move(shared)),
        peer_(std::move(peer)) {}

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (stream_) {
      stream_->stop();
    }
    shared_->sessions.erase(this);
  }

  void start() {
    shared_->sessions.emplace(this, weak_from_this());
    // read_some() after a readiness wait must never block the one thread serving everyone.
    boost::system::error_code error;
    socket_.non_blocking(true, error);
    if (error) {
      spdlog::warn("control: cannot make a client socket non-blocking, dropping it: {}",
                   error.message());
      close();
      return;
    }
    arm_timer();
    process();
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    timer_.cancel();
    if (stream_) {
      stream_->stop();  // the subscription ends with the connection, not with the last handler
    }
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  // Answers the complete lines already buffered, one at a time (a response is written before
  // the next line is read: a client that does not read its responses stops being read).
  void process() {
    while (!closed_) {
      std::string line;
      switch (framer_.next(line)) {
        case LineFramer::Status::kLine:
          if (is_blank(line)) {
            continue;
          }
          respond(shared_->handler(peer_, line));
          return;
        case LineFramer::Status::kTooLarge:
          respond({encode_error(nullptr, {ErrorCode::kFrameTooLarge,
                                          "request line longer than " +
                                              std::to_string(shared_->options.max_frame_bytes) +
                                              " bytes; closing the connection"}),
                   true});
          return;
        case LineFramer::Status::kNeedMore:
          if (eof_) {
            // A last request sent without its newline before the client shut down writing.
            std::string rest = framer_.take_rest();
            if (is_blank(rest)) {
              close();
              return;
            }
            Reply reply = shared_->handler(peer_, rest);
            reply.close = true;
            respond(std::move(reply));
            return;
          }
          read();
          return;
      }
    }
  }

  // Waits until the socket is readable, then reads what is there without blocking into the
  // server's shared buffer (an async_read_some would need a buffer per waiting session).
  void read() {
    socket_.async_wait(Socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& error) {
                         self->on_readable(error);
                       });
  }

  void on_readable(const boost::system::error_code& wait_error) {
    if (closed_) {
      return;
    }
    if (wait_error) {
      close();
      return;
    }
    boost::system::error_code error;
    const std::size_t count = socket_.read_some(asio::buffer(shared_->read_buffer), error);
    if (error == asio::error::would_block || error == asio::error::try_again) {
      read();  // a spurious wake-up
      return;
    }
    if (error == asio::error::eof) {
      eof_ = true;
      process();
      return;
    }
    if (error) {
      close();
      return;
    }
    framer_.append(std::string_view(shared_->read_buffer.data(), count));
    process();
  }

  void respond(Reply reply) {
    out_ = std::move(reply.line);
    writing_ = true;
    arm_timer();  // a client that does not read its response is idle too
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), close_after = reply.close, stream = std::move(reply.stream)](
            const boost::system::error_code& error, std::size_t) mutable {
          self->writing_ = false;
          if (self->closed_ || error || close_after) {
            if (stream) {
              stream->stop();
            }
            self->close();
            return;
          }
          if (stream) {
            self->start_streaming(std::move(stream));
            return;
          }
          self->arm_timer();
          self->process();
        });
  }

  // From here on the connection only carries the stream: requests are no longer read (bytes
  // the client sends are discarded), the idle timeout no longer applies (a stream may be quiet
  // for hours), and the client leaving (EOF or an error) ends it.
  void start_streaming(std::shared_ptr<StreamSource> stream) {
    stream_ = std::move(stream);
    timer_.cancel();
    std::weak_ptr<Session> weak = weak_from_this();
    stream_->start([weak] {
      if (auto self = weak.lock()) {
        self->schedule_pump();
      }
    });
    read_until_gone();
    pump();
  }

  void read_until_gone() {
    socket_.async_read_some(
        asio::buffer(discard_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
          if (self->closed_) {
            return;
          }
          if (error) {
            self->close();
            return;
          }
          self->read_until_gone();
        });
  }

  // Coalesces wake-ups: every event queued before the posted pump runs goes out in one write.
  void schedule_pump() {
    if (pump_posted_ || closed_) {
      return;
    }
    pump_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->pump_posted_ = false;
      self->pump();
    });
  }

  // One write at a time; what arrives meanwhile waits in the source's bounded queue.
  void pump() {
    if (closed_ || writing_ || !stream_) {
      return;
    }
    out_.clear();
    if (!stream_->take(out_)) {
      return;
    }
    writing_ = true;
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
          self->writing_ = false;
          if (self->closed_) {
            return;
          }
          if (error) {
            self->close();
            return;
          }
          self->pump();
        });
  }

  // Restarted after every response: a client has idle_timeout to send its next complete
  // request (or to read a response), however slowly it trickles bytes in.
  void arm_timer() {
    timer_.expires_after(shared_->options.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
      if (error || self->closed_) {
        return;
      }
      if (!self->writing_) {
        send_now(
            self->socket_.native_handle(),
            encode_error(nullptr, {ErrorCode::kIdleTimeout,
                                   "no complete request for " +
                                       std::to_string(self->shared_->options.idle_timeout.count()) +
                                       " ms; closing the connection"}));
      }
      self->close();
    });
  }

  Socket socket_;
  asio::steady_timer timer_;
  LineFramer framer_;
  std::shared_ptr<Shared> shared_;
  PeerCredentials peer_;
  std::string out_;
  std::shared_ptr<StreamSource> stream_;
  // What a streaming client still sends is read into this and dropped (see start_streaming).
  std::array<char, 256> discard_{};  // set once the connection streams
  bool closed_ = false;
  bool eof_ = false;
  bool writing_ = false;
  bool pump_posted_ = false;
};

// Prepares options.path for bind(): creates its directory (created_dir then says so), removes
// a stale socket.
Status prepare_socket_path(const std::string& path, bool& created_dir) {
  namespace fs = std::filesystem;
  const fs::path socket_path(path);
  const fs::path dir = socket_path.parent_path();
  struct stat st {};
  created_dir = false;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || ::mkdir(dir.c_str(), 0755) != 0) {
      return make_error(errno, "cannot create the directory of daemon.socket " + dir.string() +
                                   " (its parent must exist)");
    }
    created_dir = true;
  }
  auto found = remove_stale_socket(path);
  if (!found) {
    return found.error();
  }
  if (*found == SocketFile::kServed) {
    return make_error(EADDRINUSE, "another process (a running meshlaned?) serves " + path);
  }
  if (*found == SocketFile::kRemoved) {
    spdlog::info("control: removed stale socket {}", path);
  }
  return {};
}

}  // namespace

Result<SocketFile> remove_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return SocketFile::kAbsent;
  }
  if (!S_ISSOCK(st.st_mode)) {
    return make_error(EEXIST, path +
                                  " exists and is not a socket; remove it or change "
                                  "daemon.socket");
  }
  // A socket file: in use if someone accepts on it.
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  if (probe &&
      ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    return SocketFile::kServed;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return make_error(errno, "cannot remove the stale socket " + path);
  }
  return SocketFile::kRemoved;
}

struct Server::Impl {
  Impl(asio::io_context& io, std::shared_ptr<Shared> shared_state)
      : acceptor(io), retry_timer(io), shared(std::move(shared_state)) {}

  void accept_next() {
    accept_forever(acceptor, retry_timer, "control",
                   [this](Socket socket) { on_accept(std::move(socket)); });
  }

  void on_accept(Socket socket) {
    const int fd = socket.native_handle();
    if (shared->sessions.size() >= shared->options.max_clients) {
      send_now(fd, encode_error(nullptr, {ErrorCode::kTooManyClients,
                                          "the daemon already serves " +
                                              std::to_string(shared->options.max_clients) +
                                              " clients; try again later"}));
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    PeerCredentials peer = peer_credentials(fd);
    spdlog::debug("control: client connected (pid {}, uid {}, gid {})", peer.pid, peer.uid,
                  peer.gid);
    std::make_shared<Session>(std::move(socket), shared, std::move(peer))->start();
  }

  asio::local::stream_protocol::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::shared_ptr<Shared> shared;
  std::string path;
  ino_t inode = 0;
  dev_t device = 0;
  bool created_dir = false;
};

Result<std::optional<gid_t>> resolve_socket_group(const std::string& name_or_gid,
                                                  std::string_view setting) {
  if (name_or_gid.empty()) {
    return std::optional<gid_t>();
  }
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  int error = ::getgrnam_r(name_or_gid.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (error == 0 && found != nullptr) {
    return std::optional<gid_t>(found->gr_gid);
  }
  if (name_or_gid.find_first_not_of("0123456789") == std::string::npos &&
      name_or_gid.size() <= 10) {
    const unsigned long gid = std::stoul(name_or_gid);
    if (gid < static_cast<unsigned long>(static_cast<gid_t>(-1))) {
      return std::optional<gid_t>(static_cast<gid_t>(gid));
    }
  }
  return make_error(error, std::string(setting) + ": no group named \"" + name_or_gid +
                               "\" (check /etc/group, or give a numeric gid)");
}

Status grant_group_acl(const std::string& path, gid_t group, std::uint32_t mode) {
  // The kernel's xattr form of an ACL (include/uapi/linux/posix_acl_xattr.h, little endian):
  // a version, then entries sorted by tag (and id), each {tag, perm, id}.
  constexpr std::uint32_t kAclVersion = 2;
  constexpr std::uint16_t kUserObj = 0x01;
  constexpr std::uint16_t kGroupObj = 0x04;
  constexpr std::uint16_t kGroup = 0x08;
  constexpr std::uint16_t kMask = 0x10;
  constexpr std::uint16_t kOther = 0x20;
  constexpr std::uint32_t kUndefinedId = static_cast<std::uint32_t>(-1);
  struct Entry {
    std::uint16_t tag;
    std::uint16_t perm;
    std::uint32_t id;
  };
  const auto owner = static_cast<std::uint16_t>((mode >> 6) & 7);
  const auto grouped = static_cast<std::uint16_t>((mode >> 3) & 7);
  const auto others = static_cast<std::uint16_t>(mode & 7);
  // The mask is the file's group bits: the named group gets exactly what the owner group gets.
  const std::array<Entry, 5> entries = {{{kUserObj, owner, kUndefinedId},
                                         {kGroupObj, grouped, kUndefinedId},
                                         {kGroup, grouped, static_cast<std::uint32_t>(group)},
                                         {kMask, grouped, kUndefinedId},
                                         {kOther, others, kUndefinedId}}};
  std::vector<std::uint8_t> value;
  auto put = [&value](std::uint64_t number, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      value.push_back(static_cast<std::uint8_t>(number >> (8 * i)));
    }
  };
  put(kAclVersion, 4);
  for (const Entry& entry : entries) {
    put(entry.tag, 2);
    put(entry.perm, 2);
    put(entry.id, 4);
  }
  if (::setxattr(path.c_str(), "system.posix_acl_access", value.data(), value.size(), 0) != 0) {
    return make_error(errno, "cannot give gid " + std::to_string(group) + " access to " + path +
                                 " with a POSIX ACL");
  }
  return {};
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, ServerOptions options,
                                              LineHandler handler) {
  auto shared = std::make_shared<Shared>();
  shared->handler = std::move(handler);
  shared->options = std::move(options);
  const ServerOptions& opts = shared->options;
  bool created_dir = false;
  if (Status status = prepare_socket_path(opts.path, created_dir); !status) {
    return status.error();
  }
  auto impl = std::make_unique<Impl>(io, shared);
  impl->path = opts.path;
  impl->created_dir = created_dir;
  boost::system::error_code error;
  impl->acceptor.open(asio::local::stream_protocol(), error);
  if (!error) {
    // Bound with no access for anyone but root, opened up only once mode and group are set.
    const mode_t previous_umask = ::umask(0177);
    impl->acceptor.bind(asio::local::stream_protocol::endpoint(opts.path), error);
    ::umask(previous_umask);
  }
  if (error) {
    if (created_dir) {
      ::rmdir(std::filesystem::path(opts.path).parent_path().c_str());
    }
    return make_error(error.value(), "cannot bind the control socket " + opts.path);
  }
  auto cleanup_on_error = [&](Error failure) {
    ::unlink(opts.path.c_str());
    if (created_dir) {
      ::rmdir(std::filesystem::path(opts.path).parent_path().c_str());
    }
    return failure;
  };
  if (opts.group && ::chown(opts.path.c_str(), static_cast<uid_t>(-1), *opts.group) != 0) {
    return cleanup_on_error(make_error(errno, "cannot give the control socket " + opts.path +
                                                  " to gid " + std::to_string(*opts.group)));
  }
  if (::chmod(opts.path.c_str(), static_cast<mode_t>(opts.mode)) != 0) {
    return cleanup_on_error(make_error(errno, "cannot chmod the control socket " + opts.path));
  }
  if (opts.acl_group && opts.acl_group != opts.group) {
    // Without ACLs the second group's members cannot connect unless they are in the file's
    // group too: that fails closed (nobody gains access), so the daemon still starts, and says
    // what the operator has to do.
    if (Status granted = grant_group_acl(opts.path, *opts.acl_group, opts.mode); !granted) {
      spdlog::warn(
          "control: {}; members of gid {} can connect only if they are also in gid {} (put the "
          "socket on a filesystem with POSIX ACLs, e.g. tmpfs or ext4)",
          granted.error().message(), *opts.acl_group,
          opts.group ? std::to_string(*opts.group) : std::string("root"));
    }
  }
  struct stat st {};
  if (::lstat(opts.path.c_str(), &st) == 0) {
    impl->inode = st.st_ino;
    impl->device = st.st_dev;
  }
  impl->acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return cleanup_on_error(
        make_error(error.value(), "cannot listen on the control socket " + opts.path));
  }
  impl->accept_next();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::~Server() {
  if (!impl_) {
    return;
  }
  shut_down(impl_->acceptor, impl_->retry_timer, impl_->shared->sessions,
            "control: closing the control socket");
  struct stat st {};
  if (::lstat(impl_->path.c_str(), &st) == 0 && st.st_ino == impl_->inode &&
      st.st_dev == impl_->device) {
    ::unlink(impl_->path.c_str());
  }
  if (impl_->created_dir) {
    // Only when empty: anything else there is not ours.
    ::rmdir(std::filesystem::path(impl_->path).parent_path().c_str());
  }
}

std::size_t Server::client_count() const { return impl_->shared->sessions.size(); }

std::size_t Server::max_clients() const { return impl_->shared->options.max_clients; }

const std::string& Server::path() const { return impl_->path; }

}  // namespace meshlane::control
