#include "datapath/tc_attach.hpp"

#include <bpf/libbpf.h>
#include <net/if.h>

#include <array>

#include "common/netns.hpp"

namespace meshlane {

namespace {

constexpr std::array<bpf_tc_attach_point, 2> kAttachPoints = {BPF_TC_INGRESS, BPF_TC_EGRESS};

const char* direction(bpf_tc_attach_point point) {
  return point == BPF_TC_INGRESS ? "ingress" : "egress";
}

// A tc failure: "<what> on <interface> in <netns_path>".
Error tc_error(int err, const std::string& what, const std::string& interface,
               const std::string& netns_path) {
  return make_error(err, what + " on " + interface + " in " + netns_path);
}

}  // namespace

Status attach_tc(const std::string& netns_path, const std::string& interface,
                 const TcPrograms& programs) {
  auto entry = NetnsEntry::enter(netns_path);
  if (!entry) {
    return entry.error();
  }
  const int ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (ifindex == 0) {
    return make_error(errno, "no interface " + interface + " in " + netns_path);
  }
  for (bpf_tc_attach_point point : kAttachPoints) {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    int err = bpf_tc_hook_create(&hook);
    if (err != 0 && err != -EEXIST) {
      return tc_error(err, "cannot create the clsact qdisc", interface, netns_path);
    }
    DECLARE_LIBBPF_OPTS(
        bpf_tc_opts, opts,
        .prog_fd = point == BPF_TC_INGRESS ? programs.ingress_fd : programs.egress_fd,
        .flags = BPF_TC_F_REPLACE, .handle = kTcHandle, .priority = kTcPriority);
    err = bpf_tc_attach(&hook, &opts);
    if (err != 0) {
      return tc_error(err, std::string("cannot attach the tc ") + direction(point) + " program",
                      interface, netns_path);
    }
  }
  return {};
}

Result<bool> tc_filters_attached(const std::string& netns_path, const std::string& interface) {
  auto entry = NetnsEntry::enter(netns_path);
  if (!entry) {
    return entry.error();
  }
  const int ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (ifindex == 0) {
    return false;
  }
  for (bpf_tc_attach_point point : kAttachPoints) {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    const int err = bpf_tc_query(&hook, &opts);
    if (err == -ENOENT || err == -EINVAL) {
      return false;  // no such filter, or no clsact qdisc at all
    }
    if (err != 0) {
      return tc_error(err, std::string("cannot query the tc ") + direction(point) + " filter",
                      interface, netns_path);
    }
  }
  return true;
}

Status detach_tc(const std::string& netns_path, const std::string& interface) {
  auto entry = NetnsEntry::enter(netns_path);
  if (!entry) {
    return entry.error().errnum == ENOENT ? Status{} : Status{entry.error()};
  }
  const int ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (ifindex == 0) {
    return {};
  }
  for (bpf_tc_attach_point point : kAttachPoints) {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err != 0 && err != -ENOENT && err != -EINVAL) {
      return tc_error(err, std::string("cannot detach the tc ") + direction(point) + " program",
                      interface, netns_path);
    }
  }
  return {};
}

}  // namespace meshlane
