#include "datapath/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include "common/mounts.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/libbpf_log.hpp"
#include "datapath/map_upgrade.hpp"
#include "datapath/object_maps.hpp"
#include "datapath/sk_lookup_attach.hpp"
#include "datapath/tc_port_filter.hpp"
#include "inbound_tc.skel.h"
#include "intercept.skel.h"
#include "listener_scan.skel.h"
#include "meshlane/shared.h"
#include "sockops.skel.h"

namespace meshlane {

namespace {

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status sync_port_rules(bpf_map* map, const AccelerationConfig& acceleration) {
  auto ports = TypedMap<std::uint16_t, std::uint8_t>::adopt(UniqueFd(dup(bpf_map__fd(map))));
  if (!ports) {
    return ports.error();
  }
  std::set<std::uint16_t> wanted;
  for (std::uint16_t port : acceleration.include_ports) {
    wanted.insert(port);
    if (auto status = ports->update(port, ML_PORT_INCLUDE); !status) {
      return status;
    }
  }
  for (std::uint16_t port : acceleration.exclude_ports) {
    wanted.insert(port);
    if (auto status = ports->update(port, ML_PORT_EXCLUDE); !status) {
      return status;
    }
  }
  for (std::uint16_t stale : ports->keys()) {
    if (wanted.count(stale) == 0) {
      if (auto status = ports->erase(stale); !status) {
        return status;
      }
    }
  }
  return {};
}

std::uint64_t cgroup_id_of(const std::string& cgroup_path) {
  struct stat st {};
  // On cgroup v2 the directory's inode number is the cgroup id the kernel reports.
  return ::stat(cgroup_path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Detaches and unpins a link this run does not use (its feature is off in degraded mode).
void remove_unused_link(const std::string& pin) {
  auto removed = PinnedLink::detach_and_unpin(pin);
  if (!removed) {
    spdlog::warn("{}", removed.error().message());
  } else if (removed->was_pinned) {
    spdlog::warn("link {} detached and removed: {}", pin,
                 "its kernel feature is missing (daemon.on_missing_feature = \"degrade\")");
  }
}

Status load_error(int err, const char* object) {
  return make_error(err, std::string("cannot load the ") + object +
                             " BPF programs (see the libbpf lines above; if a pinned map could "
                             "not be reused, its layout or size changed: run 'meshlaned "
                             "--cleanup' to remove the old datapath, or restore the old "
                             "acceleration.sockhash_max_entries or [maps] sizes)");
}

}  // namespace

TcPrograms Datapath::tc_programs() const {
  if (!inbound_tc_) {
    return {};  // interception is off (degraded): no tc programs
  }
  return {bpf_program__fd(inbound_tc_->progs.ml_tc_ingress),
          bpf_program__fd(inbound_tc_->progs.ml_tc_egress),
          bpf_program__fd(inbound_tc_->progs.ml_sk_lookup), steer_by_lookup_};
}

Status Datapath::open_objects() {
  auto sockops = SockopsSkeleton::open();
  if (!sockops) {
    return sockops.error();
  }
  sockops_ = std::move(sockops.value());
  build_maps_.add(BuildMapNames::Object::kSockops, sockops_->obj);
  if (!support_.interception) {
    return {};
  }
  auto intercept = InterceptSkeleton::open();
  if (!intercept) {
    return intercept.error();
  }
  intercept_ = std::move(intercept.value());
  auto inbound_tc = InboundTcSkeleton::open();
  if (!inbound_tc) {
    return inbound_tc.error();
  }
  inbound_tc_ = std::move(inbound_tc.value());
  build_maps_.add(BuildMapNames::Object::kIntercept, intercept_->obj);
  build_maps_.add(BuildMapNames::Object::kInboundTc, inbound_tc_->obj);
  return {};
}

Status Datapath::load_objects(const Config& config) {
  if (auto opened = open_objects(); !opened) {
    return make_error(opened.error().errnum, "cannot open the meshlane BPF objects");
  }
  sockops_->rodata->accelerate = config.acceleration.enabled ? 1 : 0;
  sockops_->rodata->port_include_mode = config.acceleration.include_ports.empty() ? 0 : 1;
  sockops_->rodata->splice_blocking_sockets = config.acceleration.splice_blocking_sockets ? 1 : 0;
  sockops_->rodata->max_unread_bytes = config.acceleration.max_unread_bytes;
  sockops_->rodata->adaptive_splicing = config.acceleration.adaptive_splicing ? 1 : 0;
  sockops_->rodata->leave_spinning_readers = config.acceleration.leave_spinning_readers ? 1 : 0;
  sockops_->rodata->spinning_reader_per_mille = config.acceleration.spinning_reader_per_mille;
  sockops_->rodata->connect_hooks = support_.interception ? 1 : 0;
  steer_by_lookup_ = support_.interception && config.daemon.inbound_steering == "sk_lookup";
  if (steer_by_lookup_ && libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, nullptr) != 1) {
    return make_error(ENOTSUP,
                      "daemon.inbound_steering = \"sk_lookup\" needs socket-lookup programs "
                      "(Linux 5.9 or later), which this kernel does not run: set it to \"tc\"");
  }
  sockops_->rodata->steer_by_lookup = steer_by_lookup_ ? 1 : 0;
  if (support_.interception) {
    inbound_tc_->rodata->steer_new_flows = steer_by_lookup_ ? 0 : 1;
  }
  if (test_hooks_.verifier_reject) {
    spdlog::warn("MESHLANE_TEST_VERIFIER_REJECT=1: ml_sk_msg made invalid on purpose (tests only)");
    sockops_->rodata->test_verifier_reject = 1;
  }

  std::vector<bpf_object*> objects = {sockops_->obj};
  if (support_.interception) {
    objects.push_back(intercept_->obj);
    objects.push_back(inbound_tc_->obj);
    // Loaded only when used: older kernels (before 5.9) have no socket-lookup programs.
    bpf_program__set_autoload(inbound_tc_->progs.ml_sk_lookup, steer_by_lookup_);
  }
  for (bpf_object* object : objects) {
    size_maps(object, config, test_hooks_);
  }
  if (!support_.splicing) {
    // Degraded: no sk_msg; sock_ops still runs (it records original destinations for
    // interception) but puts no socket in the sockhash.
    bpf_program__set_autoload(sockops_->progs.ml_sk_msg, false);
    sockops_->rodata->accelerate = 0;
  }
  if (support_.interception) {
    // What a connect found listening is read only by the splice decision.
    intercept_->rodata->note_listeners = sockops_->rodata->accelerate;
    intercept_->rodata->adaptive_splicing = sockops_->rodata->adaptive_splicing;
  }

  // Every pinned map is checked against this build before anything changes: a refusal leaves
  // the running datapath exactly as it was.
  auto plan = plan_pinned_maps(wanted_maps(objects), pins_);
  if (!plan) {
    return plan.error();
  }
  map_plan_ = std::move(plan.value());
  // A size that differs because the operator changed a setting: say which one, in the line
  // prepare_pins() logs for the migration or recreation.
  for (PinDecision& decision : map_plan_) {
    const char* setting = max_entries_setting(decision.name);
    if (setting != nullptr && test_hooks_.max_entries_override(decision.name) == 0 &&
        decision.why.find("max_entries") != std::string::npos) {
      decision.why += std::string(" (max_entries is ") + setting + ")";
    }
  }
  maps_adopted_ = std::any_of(map_plan_.begin(), map_plan_.end(), [](const PinDecision& d) {
    return d.name == ML_SOCKHASH_MAP_NAME && d.action == PinAction::kReuse;
  });
  if (auto status = prepare_pins(map_plan_); !status) {
    return status;
  }
  for (bpf_object* object : objects) {
    if (auto status = set_pin_paths(object, pins_); !status) {
      return status;
    }
  }
  // sockops first: it defines every shared map, the other two reuse the pins it made.
  if (auto loaded = sockops_.load(); !loaded) {
    return load_error(loaded.error().errnum, "sockops");
  }
  // Until attach() arms it again: tc filters of an older build may still file unmarked flows.
  if (auto status = disarm_tc_port_filter(pins_); !status) {
    return status;
  }
  if (support_.interception) {
    if (auto loaded = intercept_.load(); !loaded) {
      return load_error(loaded.error().errnum, "cgroup interception");
    }
    if (auto loaded = inbound_tc_.load(); !loaded) {
      return load_error(loaded.error().errnum, "inbound tc");
    }
  }
  if (support_.splicing) {
    load_listener_scanner(config);
  }
  if (auto status = migrate_entries(map_plan_, false); !status) {
    return status;
  }
  if (auto status = convert_retired_maps(pins_, conversion_, false); !status) {
    return status;
  }
  return sync_port_rules(sockops_->maps.ml_ports_v1, config.acceleration);
}

// The listener scan is an addition: a kernel that cannot run it (iter/task_file and
// bpf_sock_from_file need Linux 5.11) still gets the datapath; only listeners opened before it
// stay unspliced.
void Datapath::load_listener_scanner(const Config& config) {
  auto skeleton = ListenerScanSkeleton::open();
  Status status;
  if (!skeleton) {
    status = make_error(skeleton.error().errnum, "cannot open the listener scan BPF object");
  } else {
    build_maps_.add(BuildMapNames::Object::kListenerScan, skeleton.value()->obj);
    size_maps(skeleton.value()->obj, config, test_hooks_);
    status = set_pin_paths(skeleton.value()->obj, pins_);
    if (status) {
      if (auto loaded = skeleton->load(); !loaded) {
        status = make_error(loaded.error().errnum,
                            "cannot load the listener scan (BPF iterator over task files)");
      }
    }
  }
  if (status) {
    // A mode is read only by the splice decision.
    auto scanner =
        ListenerScanner::attach(std::move(skeleton.value()), sockops_->rodata->accelerate != 0);
    if (scanner) {
      listener_scanner_.emplace(std::move(scanner.value()));
      return;
    }
    status = scanner.error();
  }
  listener_scan_unavailable_ = status.error().message();
  spdlog::warn(
      "listener scan unavailable: {}; listeners opened before meshlaned attached are not "
      "spliced until they are opened again",
      listener_scan_unavailable_);
}

Result<ListenerScanReport> Datapath::scan_listeners(const ListenerScanLimits& limits) {
  if (!listener_scanner_) {
    return make_error(listener_scan_unavailable_.empty() ? "splicing is off"
                                                         : listener_scan_unavailable_);
  }
  if (cgroup_id_ == 0) {
    return make_error("the listener scan runs only once the datapath is attached");
  }
  return listener_scanner_->run(cgroup_id_, limits);
}

Status Datapath::attach_cgroup_programs(const std::string& cgroup_path) {
  cgroup_fd_.reset(::open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup_fd_) {
    return make_error(errno, "cannot open cgroup " + cgroup_path);
  }
  const std::uint64_t cgroup_id = cgroup_id_of(cgroup_path);
  cgroup_id_ = cgroup_id;
  struct CgroupProgram {
    std::string_view link_name;
    const char* what;
    bpf_program* program;
    bpf_attach_type type;
  };
  const std::array<CgroupProgram, 8> programs = {{
      {kSockopsLinkName, "sock_ops", sockops_->progs.ml_sockops, BPF_CGROUP_SOCK_OPS},
      {kConnect4LinkName, "connect4", intercept_ ? intercept_->progs.ml_connect4 : nullptr,
       BPF_CGROUP_INET4_CONNECT},
      {kConnect6LinkName, "connect6", intercept_ ? intercept_->progs.ml_connect6 : nullptr,
       BPF_CGROUP_INET6_CONNECT},
      {kGetsockoptLinkName, "getsockopt", intercept_ ? intercept_->progs.ml_getsockopt : nullptr,
       BPF_CGROUP_GETSOCKOPT},
      {kSendmsg4LinkName, "sendmsg4", intercept_ ? intercept_->progs.ml_sendmsg4 : nullptr,
       BPF_CGROUP_UDP4_SENDMSG},
      {kSendmsg6LinkName, "sendmsg6", intercept_ ? intercept_->progs.ml_sendmsg6 : nullptr,
       BPF_CGROUP_UDP6_SENDMSG},
      {kRecvmsg4LinkName, "recvmsg4", intercept_ ? intercept_->progs.ml_recvmsg4 : nullptr,
       BPF_CGROUP_UDP4_RECVMSG},
      {kRecvmsg6LinkName, "recvmsg6", intercept_ ? intercept_->progs.ml_recvmsg6 : nullptr,
       BPF_CGROUP_UDP6_RECVMSG},
  }};
  for (const CgroupProgram& entry : programs) {
    const bool wanted = entry.type == BPF_CGROUP_SOCK_OPS || support_.interception;
    if (!wanted) {
      remove_unused_link(pins_.link(entry.link_name));
      continue;
    }
    auto link = PinnedLink::attach(
        pins_.link(entry.link_name), bpf_program__fd(entry.program), cgroup_fd_.get(), entry.type,
        [cgroup_id](int link_fd) { return is_link_on_cgroup(link_fd, cgroup_id); });
    if (!link) {
      return make_error(link.error().errnum, link.error().context + " (" + entry.what +
                                                 " on cgroup " + cgroup_path + ")");
    }
    attachments_.push_back(
        {std::string(entry.what) + " on " + cgroup_path, link->pin(), link->outcome()});
    links_.push_back(std::move(link.value()));
  }
  return {};
}

Status Datapath::attach_sk_msg() {
  const int prog_fd = bpf_program__fd(sockops_->progs.ml_sk_msg);
  const int sockhash_fd = bpf_map__fd(sockops_->maps.ml_sockhash_v1);
  const bool maps_adopted = maps_adopted_;
  auto link =
      PinnedLink::attach(pins_.link(kSkMsgLinkName), prog_fd, sockhash_fd, BPF_SK_MSG_VERDICT,
                         // A link pinned next to a sockhash that was just created belongs
                         // to a map that is gone.
                         [maps_adopted](int) { return maps_adopted; });
  if (link) {
    attachments_.push_back({"sk_msg on the sockhash", link->pin(), link->outcome()});
    links_.push_back(std::move(link.value()));
    return {};
  }
  if (link.error().errnum != EINVAL && link.error().errnum != EOPNOTSUPP) {
    return link.error();
  }
  // Kernels before 6.10 have no sockmap links: attach to the pinned map, which keeps the
  // program for as long as the map lives.
  if (bpf_prog_attach(prog_fd, sockhash_fd, BPF_SK_MSG_VERDICT, 0) != 0) {
    return make_error(errno, "cannot attach sk_msg to the sockhash");
  }
  attachments_.push_back(
      {"sk_msg on the sockhash (kernel has no sockmap links: attached to "
       "the pinned map)",
       pins_.map(ML_SOCKHASH_MAP_NAME), AttachOutcome::kCreated});
  return {};
}

Result<Datapath> Datapath::load(const Config& config, const FeatureSupport& support,
                                const TestHooks& test_hooks) {
  send_libbpf_log_to_spdlog();

  const bool had_bpffs_dir = path_exists(config.daemon.bpffs_dir);
  if (auto status = ensure_bpffs_dir(config.daemon.bpffs_dir); !status) {
    return status.error();
  }
  Datapath datapath;
  datapath.support_ = support;
  datapath.test_hooks_ = test_hooks;
  datapath.pins_ = PinLayout{config.daemon.bpffs_dir};
  const bool had_links_dir = path_exists(datapath.pins_.links_dir());
  if (::mkdir(datapath.pins_.links_dir().c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(errno, "cannot create " + datapath.pins_.links_dir());
  }
  if (auto status = datapath.load_objects(config); !status) {
    // A start that fails leaves no trace (libbpf unpins the maps it pinned): the directories
    // made for this start go too. rmdir refuses a directory with pins in it.
    if (!had_links_dir) {
      ::rmdir(datapath.pins_.links_dir().c_str());
    }
    if (!had_bpffs_dir) {
      ::rmdir(config.daemon.bpffs_dir.c_str());
    }
    return status.error();
  }
  return datapath;
}

Status Datapath::attach(const std::string& cgroup_path) {
  if (support_.splicing) {
    // sk_msg first: a socket that sock_ops adds must find its verdict program in place.
    if (auto status = attach_sk_msg(); !status) {
      return status;
    }
  } else {
    remove_unused_link(pins_.link(kSkMsgLinkName));
  }
  if (auto status = attach_cgroup_programs(cgroup_path); !status) {
    return status;
  }
  // The old programs are gone now: take over what they added to migrated maps meanwhile.
  if (auto status = migrate_entries(map_plan_, true); !status) {
    return status;
  }
  if (auto status = convert_retired_maps(pins_, conversion_, true); !status) {
    return status;
  }
  // The objects loaded named their maps when they were opened; only a degraded run, which left
  // some out, opens those here to read the names of theirs.
  if (auto status = build_maps_.add_unopened(); !status) {
    return status;
  }
  for (const std::string& name : remove_retired_pins(pins_, build_maps_.names())) {
    spdlog::info("map {}: unpinned, this build does not use it (an older layout version)", name);
  }
  // Every live pod's tc filters run this build's programs now (the workloads were applied
  // before), and the flows converted above are in place.
  if (auto armed = arm_tc_port_filter(pins_); armed) {
    spdlog::info(
        "tc port filter armed: {} flow(s) filed, {} app port(s) and {} inbound port(s) "
        "marked",
        armed->flows, armed->app_ports, armed->inbound_ports);
  } else {
    spdlog::warn(
        "tc port filter not armed, every packet through a pod's interface looks its "
        "flow up: {}",
        armed.error().message());
  }
  return {};
}

Result<Datapath> Datapath::start(const Config& config, const std::string& cgroup_path,
                                 const TestHooks& test_hooks) {
  auto support = decide_features(probe_all_features(test_hooks), config.daemon.on_missing_feature);
  if (!support) {
    return support.error();
  }
  auto datapath = load(config, support.value(), test_hooks);
  if (!datapath) {
    return datapath;
  }
  if (auto status = datapath->attach(cgroup_path); !status) {
    return status.error();
  }
  return datapath;
}

Result<CleanupReport> remove_datapath(const std::string& bpffs_dir) {
  namespace fs = std::filesystem;
  PinLayout pins{bpffs_dir};
  CleanupReport report;
  std::error_code ec;
  if (!fs::exists(bpffs_dir, ec)) {
    return report;
  }
  for (std::string_view name : kLinkNames) {
    const std::string pin = pins.link(name);
    auto removed = PinnedLink::detach_and_unpin(pin);
    if (!removed) {
      return removed.error();
    }
    if (!removed->was_pinned) {
      continue;
    }
    if (removed->detached) {
      ++report.links_detached;
    } else if (removed->detach_errno != 0 && removed->detach_errno != ENOLINK) {
      spdlog::warn("cannot detach link {}: {}", pin, std::strerror(removed->detach_errno));
    }
    ++report.pins_removed;
  }
  // The socket-lookup links of the workloads (daemon.inbound_steering = "sk_lookup").
  std::vector<std::string> lookup_pins;
  for (const auto& entry : fs::directory_iterator(pins.links_dir(), ec)) {
    if (entry.path().filename().string().starts_with(kSkLookupLinkPrefix)) {
      lookup_pins.push_back(entry.path().string());
    }
  }
  for (const std::string& pin : lookup_pins) {
    auto removed = PinnedLink::detach_and_unpin(pin);
    if (!removed) {
      return removed.error();
    }
    report.links_detached += removed->detached ? 1 : 0;
    ++report.pins_removed;
  }
  // Every map pin meshlane makes: this build's maps, older layout versions (ml_*_v1 once a
  // build uses ml_*_v2) and a migration's "<pin>_migrating".
  std::vector<std::string> map_pins;
  for (const auto& entry : fs::directory_iterator(bpffs_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ml_") && !entry.is_directory(ec)) {
      map_pins.push_back(entry.path().string());
    }
  }
  for (const std::string& pin : map_pins) {
    if (::unlink(pin.c_str()) != 0) {
      return make_error(errno, "cannot remove pin " + pin);
    }
    ++report.pins_removed;
  }
  for (const std::string& dir : {pins.links_dir(), bpffs_dir}) {
    if (path_exists(dir) && ::rmdir(dir.c_str()) != 0) {
      return make_error(errno, "removed meshlane's pins but cannot remove " + dir +
                                   " (it holds files meshlane did not create)");
    }
  }
  return report;
}

}  // namespace meshlane
