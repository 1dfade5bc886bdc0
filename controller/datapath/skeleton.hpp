// One move-only owner for the generated BPF skeletons (bpftool's <name>.skel.h with
// <name>__open, __load and __destroy), in the spirit of Katran's BpfSkeleton.h.
#pragma once

#include <cerrno>
#include <memory>

#include "common/error.hpp"

// The generated skeletons (bpf/*.bpf.c -> <name>.skel.h).
struct sockops_bpf;
struct intercept_bpf;
struct inbound_tc_bpf;
struct listener_scan_bpf;

namespace meshlane {

// <name>__open, __load and __destroy of skeleton T. The generated functions are static inline
// in a header that also embeds the whole BPF object, so they are wrapped once in skeleton.cpp
// instead of being named (and the object embedded) wherever a skeleton is owned.
template <typename T>
struct SkeletonFunctions;

#define MESHLANE_SKELETON_FUNCTIONS(skeleton_type) \
  template <>                                      \
  struct SkeletonFunctions<skeleton_type> {        \
    static skeleton_type* open();                  \
    static int load(skeleton_type* skeleton);      \
    static void destroy(skeleton_type* skeleton);  \
  }
MESHLANE_SKELETON_FUNCTIONS(sockops_bpf);
MESHLANE_SKELETON_FUNCTIONS(intercept_bpf);
MESHLANE_SKELETON_FUNCTIONS(inbound_tc_bpf);
MESHLANE_SKELETON_FUNCTIONS(listener_scan_bpf);
#undef MESHLANE_SKELETON_FUNCTIONS

template <typename T>
class Skeleton {
 public:
  // Empty: an object this run does not use (a degraded start leaves interception unopened).
  Skeleton() = default;

  // Opens the embedded object: parses it, nothing reaches the kernel yet.
  static Result<Skeleton> open() {
    T* skeleton = SkeletonFunctions<T>::open();
    if (skeleton == nullptr) {
      return make_error(errno, "cannot open the BPF object");
    }
    return Skeleton(skeleton);
  }

  // Loads the programs and creates (or reuses, by pin path) the maps. The error carries
  // libbpf's error number; the verifier's reasons went to the libbpf log.
  Status load() {
    if (int err = SkeletonFunctions<T>::load(skeleton_.get()); err != 0) {
      return make_error(err, "cannot load the BPF object");
    }
    return {};
  }

  [[nodiscard]] T* get() const { return skeleton_.get(); }
  T* operator->() const { return skeleton_.get(); }
  explicit operator bool() const { return skeleton_ != nullptr; }

 private:
  struct Destroy {
    void operator()(T* skeleton) const { SkeletonFunctions<T>::destroy(skeleton); }
  };
  explicit Skeleton(T* skeleton) : skeleton_(skeleton) {}

  std::unique_ptr<T, Destroy> skeleton_;
};

using SockopsSkeleton = Skeleton<sockops_bpf>;
using InterceptSkeleton = Skeleton<intercept_bpf>;
using InboundTcSkeleton = Skeleton<inbound_tc_bpf>;
using ListenerScanSkeleton = Skeleton<listener_scan_bpf>;

}  // namespace meshlane
