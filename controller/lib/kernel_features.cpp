#include "meshlane/kernel_features.hpp"

#include <bpf/libbpf.h>

namespace meshlane {

namespace {

KernelFeature prog_type(bpf_prog_type type, const char* name) {
  return {std::string("program type ") + name, "local TCP splicing",
          libbpf_probe_bpf_prog_type(type, nullptr) == 1};
}

KernelFeature map_type(bpf_map_type type, const char* name) {
  return {std::string("map type ") + name, "local TCP splicing",
          libbpf_probe_bpf_map_type(type, nullptr) == 1};
}

KernelFeature helper(bpf_prog_type type, bpf_func_id id, const char* name) {
  return {std::string("helper ") + name, "local TCP splicing",
          libbpf_probe_bpf_helper(type, id, nullptr) == 1};
}

}  // namespace

std::vector<KernelFeature> probe_splice_features() {
  return {
      prog_type(BPF_PROG_TYPE_SOCK_OPS, "sock_ops"),
      prog_type(BPF_PROG_TYPE_SK_MSG, "sk_msg"),
      map_type(BPF_MAP_TYPE_SOCKHASH, "sockhash"),
      map_type(BPF_MAP_TYPE_SK_STORAGE, "sk_storage"),
      map_type(BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array"),
      helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie,
             "bpf_get_netns_cookie in sock_ops (kernel >= 5.15)"),
      helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get in sock_ops"),
      helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get in sk_msg"),
      helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, "bpf_msg_redirect_hash"),
  };
}

Status require_features(const std::vector<KernelFeature>& features) {
  std::string missing;
  for (const auto& feature : features) {
    if (!feature.present) {
      missing += (missing.empty() ? "" : ", ") + feature.name + " (for " + feature.needed_for + ")";
    }
  }
  if (!missing.empty()) {
    return make_error("the running kernel lacks " + missing +
                      ": meshlane needs Linux >= 5.15 with CONFIG_BPF_SYSCALL, "
                      "CONFIG_BPF_STREAM_PARSER and CONFIG_CGROUP_BPF");
  }
  return {};
}

}  // namespace meshlane
