#include "common/netns.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace meshlane {

Result<NetnsEntry> NetnsEntry::enter(const std::string& netns_path) {
  UniqueFd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original) {
    return make_error(errno, "cannot open this thread's network namespace");
  }
  UniqueFd target(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) {
    return make_error(errno, "cannot open network namespace " + netns_path +
                                 " (does the pod still exist? check the workload's netns)");
  }
  if (::setns(target.get(), CLONE_NEWNET) != 0) {
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
