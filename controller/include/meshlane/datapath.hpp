// The splicing datapath: loads the sockops object, pins its maps, attaches sock_ops to the
// configured cgroup and sk_msg to the sockhash through pinned links, and adopts what an
// earlier run left pinned instead of loading duplicates.
#pragma once

#include <memory>
#include <string>

#include "meshlane/config.hpp"
#include "meshlane/error.hpp"
#include "meshlane/pin_layout.hpp"
#include "meshlane/unique_fd.hpp"

struct sockops_bpf;

namespace meshlane {

struct SockopsSkeletonDeleter {
  void operator()(sockops_bpf* skeleton) const;
};
using SockopsSkeleton = std::unique_ptr<sockops_bpf, SockopsSkeletonDeleter>;

// How an attachment came to be, for the start-up log.
enum class AttachOutcome { kCreated, kAdoptedAndUpdated, kReplaced };
const char* to_string(AttachOutcome outcome);

class Datapath {
 public:
  // cgroup_path is the resolved cgroup v2 directory to attach to.
  static Result<Datapath> start(const Config& config, const std::string& cgroup_path);

  Datapath(Datapath&&) noexcept = default;
  Datapath& operator=(Datapath&&) noexcept = default;
  ~Datapath() = default;

  [[nodiscard]] const PinLayout& pins() const { return pins_; }
  [[nodiscard]] AttachOutcome sockops_outcome() const { return sockops_outcome_; }
  [[nodiscard]] AttachOutcome sk_msg_outcome() const { return sk_msg_outcome_; }
  [[nodiscard]] bool maps_adopted() const { return maps_adopted_; }
  [[nodiscard]] bool sk_msg_uses_link() const { return sk_msg_uses_link_; }

 private:
  Datapath() = default;

  PinLayout pins_;
  SockopsSkeleton skeleton_;
  UniqueFd cgroup_fd_;
  UniqueFd sockops_link_;
  UniqueFd sk_msg_link_;
  AttachOutcome sockops_outcome_ = AttachOutcome::kCreated;
  AttachOutcome sk_msg_outcome_ = AttachOutcome::kCreated;
  bool maps_adopted_ = false;
  bool sk_msg_uses_link_ = true;
};

struct CleanupReport {
  int links_detached = 0;
  int pins_removed = 0;
};

// Detaches every link pinned under bpffs_dir and removes every pin meshlane makes there, then
// the directory itself. Files meshlane does not own are left in place and reported.
// Idempotent: a missing directory is success.
Result<CleanupReport> remove_datapath(const std::string& bpffs_dir);

}  // namespace meshlane
