#include "common/netns.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace meshlane {

namespace {

// What every refusal of a path ends with: what the daemon wants instead.
constexpr const char* kWantedNetns =
    " (the workload's netns must be a pod's network namespace file, e.g. /var/run/netns/NAME or "
    "/proc/PID/ns/net)";

// "a FIFO", "a directory", ...: what a file that is not a namespace is, for the error.
std::string kind_of_file(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFIFO: return "a FIFO";
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "not a namespace file";
  }
}

std::string kind_of_namespace(int type) {
  switch (type) {
    case CLONE_NEWNS: return "a mount";
    case CLONE_NEWUTS: return "a uts";
    case CLONE_NEWIPC: return "an ipc";
    case CLONE_NEWPID: return "a pid";
    case CLONE_NEWUSER: return "a user";
    case CLONE_NEWCGROUP: return "a cgroup";
    case 0x00000080: return "a time";  // CLONE_NEWTIME, which older glibc headers lack
    default: return "an unknown (" + std::to_string(type) + ")";
  }
}

Result<NetnsId> id_of_path(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) {
    return make_error(errno, std::string("cannot stat ") + path);
  }
  return NetnsId{st.st_dev, st.st_ino};
}

Result<std::uint64_t> cookie_of_current_netns(const std::string& netns_path) {
  UniqueFd probe(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe) {
    return make_error(errno, "cannot open a socket in " + netns_path);
  }
  std::uint64_t cookie = 0;
  socklen_t length = sizeof(cookie);
  if (::getsockopt(probe.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) != 0) {
    return make_error(errno, "cannot read the netns cookie of " + netns_path +
                                 " (SO_NETNS_COOKIE needs Linux >= 5.14)");
  }
  return cookie;
}

}  // namespace

Result<UniqueFd> open_network_namespace(const std::string& netns_path) {
  if (netns_path.empty() || netns_path.front() != '/') {
    return make_error("netns \"" + netns_path + "\" is not an absolute path" + kWantedNetns);
  }
  // O_PATH opens nothing: no FIFO open that waits for a writer, no device's open() with its side
  // effects, whatever the path names. Only the lookup itself happens here.
  UniqueFd located(::open(netns_path.c_str(), O_PATH | O_CLOEXEC));
  if (!located) {
    return make_error(errno, "cannot open network namespace " + netns_path +
                                 " (does the pod still exist? check the workload's netns)");
  }
  struct stat st {};
  struct statfs fs {};
  if (::fstat(located.get(), &st) != 0 || ::fstatfs(located.get(), &fs) != 0) {
    return make_error(errno, "cannot stat " + netns_path);
  }
  if (fs.f_type != NSFS_MAGIC) {
    return make_error(netns_path + " is " + kind_of_file(st.st_mode) + ", not a network namespace" +
                      kWantedNetns);
  }
  // Now known to be a namespace file, so opening it for real cannot block. Reopened through the
  // O_PATH handle, not the path, so that it is the very file just checked.
  const std::string handle = "/proc/self/fd/" + std::to_string(located.get());
  UniqueFd netns(::open(handle.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!netns) {
    return make_error(errno, "cannot open network namespace " + netns_path);
  }
  const int type = ::ioctl(netns.get(), NS_GET_NSTYPE);
  if (type < 0) {
    return make_error(errno, "cannot tell which kind of namespace " + netns_path +
                                 " is (NS_GET_NSTYPE needs Linux >= 4.11)");
  }
  if (type != CLONE_NEWNET) {
    return make_error(netns_path + " is " + kind_of_namespace(type) +
                      " namespace, not a network namespace" + kWantedNetns);
  }
  return netns;
}

Result<NetnsId> netns_id_of(int netns_fd, const std::string& netns_path) {
  struct stat st {};
  if (::fstat(netns_fd, &st) != 0) {
    return make_error(errno, "cannot stat " + netns_path);
  }
  return NetnsId{st.st_dev, st.st_ino};
}

Result<OpenNetns> open_network_namespace_with_id(const std::string& netns_path) {
  auto netns = open_network_namespace(netns_path);
  if (!netns) {
    return netns.error();
  }
  auto id = netns_id_of(netns->get(), netns_path);
  if (!id) {
    return id.error();
  }
  return OpenNetns{std::move(netns.value()), id.value()};
}

Status check_not_host_netns(const NetnsId& id, const std::string& netns_path) {
  constexpr const char* kAllow =
      ": meshlane would steer the node's own connections and put tc filters on its "
      "interfaces; give the pod's network namespace, or set daemon.allow_host_netns = true if "
      "that is really meant";
  auto own = id_of_path("/proc/self/ns/net");
  if (!own) {
    return make_error(own.error().errnum, own.error().context +
                                              " (needed to refuse the daemon's own network "
                                              "namespace as a workload's)");
  }
  if (id == own.value()) {
    return make_error(netns_path + " is meshlaned's own network namespace" + kAllow);
  }
  auto host = id_of_path("/proc/1/ns/net");
  if (!host) {
    const int err = host.error().errnum;
    if (err == EACCES || err == EPERM) {
      // A daemon without ptrace access to PID 1 (a container whose bounding set lacks
      // CAP_SYS_PTRACE) cannot read its namespace, and cannot open /proc/1/ns/net as a
      // workload's either: the comparison with its own namespace is what remains.
      spdlog::debug("cannot compare {} with PID 1's network namespace: {}", netns_path,
                    host.error().message());
      return {};
    }
    return make_error(err, host.error().context +
                               " (needed to refuse the host's network namespace as a "
                               "workload's)");
  }
  if (id == host.value()) {
    return make_error(netns_path + " is the host's network namespace (that of PID 1)" + kAllow);
  }
  return {};
}

Result<NetnsInfo> inspect_workload_netns(const std::string& netns_path, HostNetns host) {
  auto netns = open_network_namespace_with_id(netns_path);
  if (!netns) {
    return netns.error();
  }
  if (host == HostNetns::kRefuse) {
    if (auto allowed = check_not_host_netns(netns->id, netns_path); !allowed) {
      return allowed.error();
    }
  }
  auto entry = NetnsEntry::enter(netns->fd.get(), netns_path);
  if (!entry) {
    return entry.error();
  }
  auto cookie = cookie_of_current_netns(netns_path);
  if (!cookie) {
    return cookie.error();
  }
  return NetnsInfo{netns->id, cookie.value()};
}

Result<NetnsEntry> NetnsEntry::enter(const std::string& netns_path) {
  auto target = open_network_namespace(netns_path);
  if (!target) {
    return target.error();
  }
  return enter(target->get(), netns_path);
}

Result<NetnsEntry> NetnsEntry::enter(int netns_fd, const std::string& netns_path) {
  UniqueFd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original) {
    return make_error(errno, "cannot open this thread's network namespace");
  }
  if (::setns(netns_fd, CLONE_NEWNET) != 0) {
    return make_error(errno, "cannot enter network namespace " + netns_path);
  }
  return NetnsEntry(std::move(original));
}

NetnsEntry::~NetnsEntry() {
  if (original_ && ::setns(original_.get(), CLONE_NEWNET) != 0) {
    // Staying in a pod's namespace would misdirect everything the daemon does next.
    spdlog::critical("cannot return to the daemon's network namespace: {}", std::strerror(errno));
    std::abort();
  }
}

Result<std::uint64_t> netns_cookie_of(const std::string& netns_path) {
  auto entry = NetnsEntry::enter(netns_path);
  if (!entry) {
    return entry.error();
  }
  return cookie_of_current_netns(netns_path);
}

Result<int> interface_index_in(const std::string& netns_path, const std::string& interface) {
  auto entry = NetnsEntry::enter(netns_path);
  if (!entry) {
    return entry.error();
  }
  unsigned index = ::if_nametoindex(interface.c_str());
  if (index == 0) {
    return make_error(errno, "no interface " + interface + " in " + netns_path +
                                 " (set the workload's interface key)");
  }
  return static_cast<int>(index);
}

}  // namespace meshlane
