#include "datapath/sk_lookup_attach.hpp"

#include <bpf/bpf.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "common/netns.hpp"
#include "datapath/pinned_link.hpp"

namespace meshlane {

namespace {

// Whether link_fd is a socket-lookup link on the namespace whose inode is given.
bool is_lookup_link_on(int link_fd, ino_t netns_inode) {
  bpf_link_info info{};
  __u32 length = sizeof(info);
  return bpf_obj_get_info_by_fd(link_fd, &info, &length) == 0 && info.type == BPF_LINK_TYPE_NETNS &&
         info.netns.attach_type == BPF_SK_LOOKUP && info.netns.netns_ino == netns_inode;
}

// The namespace at netns_path, open, and the test that a pinned link is our link on it.
struct LookupTarget {
  UniqueFd netns;
  IsOurLink is_ours;
};

Result<LookupTarget> lookup_target(const std::string& netns_path) {
  auto netns = open_network_namespace_with_id(netns_path);
  if (!netns) {
    return netns.error();
  }
  const ino_t inode = netns->id.inode;
  return LookupTarget{std::move(netns->fd),
                      [inode](int fd) { return is_lookup_link_on(fd, inode); }};
}

}  // namespace

std::string sk_lookup_link_pin(const PinLayout& pins, const std::string& workload) {
  // bpffs refuses some characters a workload name may have (the CNI plugin's names are
  // "namespace.pod"): the pin has the name's first 40 letters, digits and dashes, the rest as
  // dashes, then a hash of the whole name (FNV-1a, stable across builds) to keep it unique.
  std::string readable;
  for (char c : workload.substr(0, 40)) {
    const auto byte = static_cast<unsigned char>(c);
    readable += (std::isalnum(byte) != 0 || c == '-') ? c : '-';
  }
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c : workload) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return pins.link(std::string(kSkLookupLinkPrefix) + readable + "_" + hex);
}

Status attach_sk_lookup(const PinLayout& pins, const std::string& workload,
                        const std::string& netns_path, int prog_fd) {
  auto target = lookup_target(netns_path);
  if (!target) {
    return target.error();
  }
  auto link = PinnedLink::attach(sk_lookup_link_pin(pins, workload), prog_fd, target->netns.get(),
                                 BPF_SK_LOOKUP, target->is_ours);
  if (!link) {
    return make_error(link.error().errnum,
                      "cannot attach the socket-lookup program (inbound steering) to network "
                      "namespace " +
                          netns_path + " of workload " + workload + ": " + link.error().message() +
                          " (Linux 5.9 or later is needed; or set daemon.inbound_steering = "
                          "\"tc\")");
  }
  return {};
}

Result<bool> sk_lookup_attached(const PinLayout& pins, const std::string& workload,
                                const std::string& netns_path) {
  auto target = lookup_target(netns_path);
  if (!target) {
    return target.error();
  }
  return PinnedLink::adopt(sk_lookup_link_pin(pins, workload), target->is_ours).has_value();
}

Status detach_sk_lookup(const PinLayout& pins, const std::string& workload) {
  const std::string pin = sk_lookup_link_pin(pins, workload);
  auto removed = PinnedLink::detach_and_unpin(pin);
  if (!removed) {
    return removed.error();
  }
  if (removed->was_pinned && !removed->detached && removed->detach_errno != 0 &&
      removed->detach_errno != ENOLINK) {
    return make_error(removed->detach_errno, "cannot detach the socket-lookup link " + pin);
  }
  return {};
}

}  // namespace meshlane
