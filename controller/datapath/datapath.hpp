// The datapath: loads the BPF objects (sockops, cgroup interception, inbound tc), pins their
// maps, attaches the cgroup programs and sk_msg through pinned links, and adopts what an earlier
// run left pinned instead of loading duplicates.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/listener_scan.hpp"
#include "datapath/map_upgrade.hpp"
#include "datapath/object_maps.hpp"
#include "datapath/pin_layout.hpp"
#include "datapath/pinned_link.hpp"
#include "datapath/skeleton.hpp"
#include "datapath/tc_attach.hpp"
#include "datapath/test_hooks.hpp"

namespace meshlane {

struct AttachReport {
  std::string what;  // e.g. "connect4 on /sys/fs/cgroup/unified/x"
  std::string pin;
  AttachOutcome outcome = AttachOutcome::kCreated;
};

class Datapath {
 public:
  // Loads the programs and reconciles the pinned maps (reused, migrated, recreated, or a
  // refusal that changes nothing); attaches nothing yet, so the caller can fill maps the new
  // programs read (workloads) before they run.
  // test_hooks: MESHLANE_TEST_VERIFIER_REJECT and MESHLANE_TEST_MAP_MAX_ENTRIES, as main read
  // them.
  static Result<Datapath> load(const Config& config, const FeatureSupport& support,
                               const TestHooks& test_hooks);
  // Attaches (or updates in place) the cgroup programs and sk_msg on cgroup_path, the resolved
  // cgroup v2 directory, then finishes map migrations and unpins retired map versions.
  Status attach(const std::string& cgroup_path);
  // Probes the kernel, load() and attach().
  static Result<Datapath> start(const Config& config, const std::string& cgroup_path,
                                const TestHooks& test_hooks);

  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;
  Datapath(Datapath&&) noexcept = default;
  Datapath& operator=(Datapath&&) noexcept = default;
  ~Datapath() = default;

  [[nodiscard]] const PinLayout& pins() const { return pins_; }
  [[nodiscard]] bool maps_adopted() const { return maps_adopted_; }
  [[nodiscard]] const std::vector<AttachReport>& attachments() const { return attachments_; }
  [[nodiscard]] TcPrograms tc_programs() const;
  [[nodiscard]] const FeatureSupport& support() const { return support_; }
  // How connections from off the node reach a pod's inbound proxy: "sk_lookup", "tc", or "off"
  // without interception (daemon.inbound_steering, as applied at start).
  [[nodiscard]] const char* inbound_steering() const {
    if (!support_.interception) {
      return "off";
    }
    return steer_by_lookup_ ? "sk_lookup" : "tc";
  }
  [[nodiscard]] const std::vector<PinDecision>& map_plan() const { return map_plan_; }

  // Records the mode of the cgroup's listeners that have none (opened before the datapath was
  // attached); see listener_scan.hpp. Only after attach().
  Result<ListenerScanReport> scan_listeners(const ListenerScanLimits& limits = {});
  // Empty when the listener scan is available, else why not (logged at start).
  [[nodiscard]] const std::string& listener_scan_unavailable() const {
    return listener_scan_unavailable_;
  }

 private:
  Datapath() = default;
  Status open_objects();
  Status load_objects(const Config& config);
  Status attach_cgroup_programs(const std::string& cgroup_path);
  Status attach_sk_msg();
  void load_listener_scanner(const Config& config);

  PinLayout pins_;
  SockopsSkeleton sockops_;
  InterceptSkeleton intercept_;
  InboundTcSkeleton inbound_tc_;
  UniqueFd cgroup_fd_;
  std::vector<PinnedLink> links_;
  std::vector<AttachReport> attachments_;
  bool maps_adopted_ = false;
  FeatureSupport support_;
  TestHooks test_hooks_;
  std::vector<PinDecision> map_plan_;
  RetiredConversion conversion_;
  BuildMapNames build_maps_;  // the ml_* maps of the objects opened, for remove_retired_pins()
  std::optional<ListenerScanner> listener_scanner_;
  std::string listener_scan_unavailable_;
  std::uint64_t cgroup_id_ = 0;
  bool steer_by_lookup_ = false;  // daemon.inbound_steering = "sk_lookup"
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
