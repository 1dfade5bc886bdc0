#include "datapath/kernel_features.hpp"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <memory>
#include <string>

namespace meshlane {

namespace {

KernelFeature prog_type(bpf_prog_type type, const char* name, const char* needed_for) {
  return {std::string("program type ") + name, needed_for,
          libbpf_probe_bpf_prog_type(type, nullptr) == 1};
}

KernelFeature map_type(bpf_map_type type, const char* name, const char* needed_for) {
  return {std::string("map type ") + name, needed_for,
          libbpf_probe_bpf_map_type(type, nullptr) == 1};
}

KernelFeature helper(bpf_prog_type type, bpf_func_id id, const char* name, const char* needed_for) {
  return {std::string("helper ") + name, needed_for,
          libbpf_probe_bpf_helper(type, id, nullptr) == 1};
}

// The running kernel's BTF, freed with the owner; nullptr when the kernel has none (then every
// optional feature reads as absent, which is what libbpf's weak kfuncs would resolve to).
using BtfOwner = std::unique_ptr<btf, decltype(&btf__free)>;
BtfOwner load_kernel_btf() {
  return {btf__load_vmlinux_btf(), &btf__free};  // libbpf 1.x: NULL on error
}

bool has_kfunc(const btf* kernel, const char* name) {
  return kernel != nullptr && btf__find_by_name_kind(kernel, name, BTF_KIND_FUNC) >= 0;
}

bool has_struct_member(const btf* kernel, const char* struct_name, const char* member_name) {
  if (kernel == nullptr) {
    return false;
  }
  const __s32 id = btf__find_by_name_kind(kernel, struct_name, BTF_KIND_STRUCT);
  if (id < 0) {
    return false;
  }
  const btf_type* type = btf__type_by_id(kernel, static_cast<__u32>(id));
  const btf_member* member = btf_members(type);
  for (__u16 i = 0; i < btf_vlen(type); ++i, ++member) {
    const char* name = btf__name_by_offset(kernel, member->name_off);
    if (name != nullptr && std::string(name) == member_name) {
      return true;
    }
  }
  return false;
}

// MESHLANE_TEST_MISSING_FEATURES (tests only): features to report as absent.
void apply_test_pretence(std::vector<KernelFeature>& features,
                         const std::vector<std::string>& pretend_missing) {
  for (const std::string& token : pretend_missing) {
    for (auto& feature : features) {
      if (feature.name.find(token) != std::string::npos) {
        feature.present = false;
        feature.pretended_absent = true;
      }
    }
  }
}

std::string describe_missing(const std::vector<KernelFeature>& features, const char* area) {
  std::string missing;
  for (const auto& feature : features) {
    if (!feature.present && !feature.optional && (area == nullptr || feature.needed_for == area)) {
      missing +=
          (missing.empty() ? "" : ", ") + feature.name + " (for " + feature.needed_for +
          (feature.pretended_absent ? "; pretended absent by MESHLANE_TEST_MISSING_FEATURES" : "") +
          ")";
    }
  }
  return missing;
}

}  // namespace

std::vector<KernelFeature> probe_splice_features() {
  return {
      // sock_ops and its maps also record each intercepted connection's original destination:
      // without them neither splicing nor interception can run.
      prog_type(BPF_PROG_TYPE_SOCK_OPS, "sock_ops", kForBoth),
      map_type(BPF_MAP_TYPE_SOCKHASH, "sockhash", kForBoth),
      map_type(BPF_MAP_TYPE_SK_STORAGE, "sk_storage", kForBoth),
      map_type(BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array", kForBoth),
      helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie,
             "bpf_get_netns_cookie in sock_ops (kernel >= 5.15)", kForBoth),
      helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get in sock_ops",
             kForBoth),
      prog_type(BPF_PROG_TYPE_SK_MSG, "sk_msg", kForSplicing),
      helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get in sk_msg",
             kForSplicing),
      helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, "bpf_msg_redirect_hash",
             kForSplicing),
  };
}

std::vector<KernelFeature> probe_interception_features() {
  return {
      prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "cgroup_sock_addr (connect4/connect6)",
                kForInterception),
      prog_type(BPF_PROG_TYPE_CGROUP_SOCKOPT, "cgroup_sockopt (getsockopt)", kForInterception),
      prog_type(BPF_PROG_TYPE_SCHED_CLS, "sched_cls (tc)", kForInterception),
      map_type(BPF_MAP_TYPE_LRU_HASH, "lru_hash", kForInterception),
      map_type(BPF_MAP_TYPE_LPM_TRIE, "lpm_trie", kForInterception),
      helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie,
             "bpf_get_netns_cookie in cgroup_sock_addr", kForInterception),
      helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_storage_get,
             "bpf_sk_storage_get in cgroup_sock_addr", kForInterception),
  };
}

std::vector<KernelFeature> probe_optional_features(const TestHooks& hooks) {
  const BtfOwner kernel = load_kernel_btf();
  // The same lookups libbpf makes when it resolves the programs' __weak __ksym externs: a kfunc
  // absent from the BTF is left NULL and the program takes its fallback path.
  KernelFeature reader_limits{
      "kfuncs bpf_cast_to_kern_ctx, bpf_rdonly_cast and sk_psock.msg_tot_len (kernel >= 6.2)",
      kForReaderLimits,
      has_kfunc(kernel.get(), "bpf_cast_to_kern_ctx") &&
          has_kfunc(kernel.get(), "bpf_rdonly_cast") &&
          has_struct_member(kernel.get(), "sk_psock", "msg_tot_len")};
  reader_limits.optional = true;
  reader_limits.when_absent =
      "max_unread_bytes is not enforced (a spliced socket's unread queue is not bounded), a "
      "spinning reader keeps its splice, and so does the other end of a socket that left it";
  KernelFeature map_full_check{"kfunc bpf_map_sum_elem_count (kernel >= 6.6)", kForMapFullCheck,
                               has_kfunc(kernel.get(), "bpf_map_sum_elem_count")};
  map_full_check.optional = true;
  map_full_check.when_absent =
      "connects are intercepted even when ml_origdst_v2 is full; a failed entry is counted in "
      "orig_dst_file_failed and the proxy gets no original destination";
  std::vector<KernelFeature> features = {std::move(reader_limits), std::move(map_full_check)};
  apply_test_pretence(features, hooks.missing_features);
  return features;
}

std::vector<KernelFeature> probe_all_features(const TestHooks& hooks) {
  std::vector<KernelFeature> features = probe_splice_features();
  for (auto& feature : probe_interception_features()) {
    features.push_back(std::move(feature));
  }
  apply_test_pretence(features, hooks.missing_features);
  return features;
}

Status require_features(const std::vector<KernelFeature>& features) {
  const std::string missing = describe_missing(features, nullptr);
  if (!missing.empty()) {
    return make_error("the running kernel lacks " + missing +
                      ": meshlane needs Linux >= 5.15 with CONFIG_BPF_SYSCALL, "
                      "CONFIG_BPF_STREAM_PARSER and CONFIG_CGROUP_BPF (or set "
                      "daemon.on_missing_feature = \"degrade\" to run with what works)");
  }
  return {};
}

Result<FeatureSupport> decide_features(const std::vector<KernelFeature>& features,
                                       const std::string& on_missing_feature) {
  if (on_missing_feature != "degrade") {
    if (auto status = require_features(features); !status) {
      return status.error();
    }
    return FeatureSupport{};
  }
  FeatureSupport support;
  support.splicing = describe_missing(features, kForSplicing).empty();
  support.interception = describe_missing(features, kForInterception).empty();
  if (!describe_missing(features, kForBoth).empty() ||
      (!support.splicing && !support.interception)) {
    return make_error("the running kernel lacks " + describe_missing(features, nullptr) +
                      ": neither splicing nor interception can run, nothing to degrade to");
  }
  return support;
}

}  // namespace meshlane
