#include "datapath/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string_view>

#include "common/mounts.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/kernel_features.hpp"
#include "datapath/map_upgrade.hpp"
#include "inbound_tc.skel.h"
#include "intercept.skel.h"
#include "listener_scan.skel.h"
#include "meshlane/shared.h"
#include "sockops.skel.h"

namespace meshlane {

void SkeletonDeleter::operator()(sockops_bpf* skeleton) const { sockops_bpf__destroy(skeleton); }
void SkeletonDeleter::operator()(intercept_bpf* skeleton) const {
  intercept_bpf__destroy(skeleton);
}
void SkeletonDeleter::operator()(inbound_tc_bpf* skeleton) const {
  inbound_tc_bpf__destroy(skeleton);
}

const char* to_string(AttachOutcome outcome) {
  switch (outcome) {
    case AttachOutcome::kCreated: return "attached";
    case AttachOutcome::kAdoptedAndUpdated: return "adopted pinned link, program updated in place";
    case AttachOutcome::kReplaced: return "replaced a stale pinned link";
  }
  return "?";
}

namespace {

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// meshlane's own maps are named ml_*; libbpf's internal ones (.rodata, .bss) are not pinned.
bool is_pinned_map(const bpf_map* map) {
  return std::string_view(bpf_map__name(map)).starts_with("ml_");
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

// Attaches `prog_fd` through the link pinned at `pin`, or a new link pinned there.
// `still_valid` decides whether an existing pinned link may be updated in place.
template <typename Validity, typename Create>
Result<AttachOutcome> attach_pinned_link(const std::string& pin, int prog_fd, UniqueFd& link_out,
                                         Validity still_valid, Create create) {
  bool replaced = false;
  if (path_exists(pin)) {
    auto existing = open_pinned(pin);
    if (existing && still_valid(existing->get())) {
      if (bpf_link_update(existing->get(), prog_fd, nullptr) == 0) {
        link_out = std::move(existing.value());
        return AttachOutcome::kAdoptedAndUpdated;
      }
      spdlog::warn("could not update pinned link {} in place ({}); replacing it", pin,
                   std::strerror(errno));
    }
    replaced = true;
  }
  UniqueFd fresh(create());
  if (!fresh) {
    return make_error(errno, "cannot attach program for link " + pin);
  }
  if (replaced) {
    // The new link is attached before the old one goes, so there is no unhooked moment.
    if (auto old = open_pinned(pin)) {
      bpf_link_detach(old->get());
    }
    ::unlink(pin.c_str());
  }
  if (bpf_obj_pin(fresh.get(), pin.c_str()) != 0) {
    return make_error(errno, "cannot pin link at " + pin);
  }
  link_out = std::move(fresh);
  return replaced ? AttachOutcome::kReplaced : AttachOutcome::kCreated;
}

// libbpf hands over a verifier rejection as one long message; its end says why. Warnings keep
// the last lines, the full text goes to debug.
constexpr std::size_t kVerifierTailLines = 25;

std::string tail_lines(const std::string& text, std::size_t count) {
  std::size_t position = text.size();
  for (std::size_t seen = 0; position > 0 && seen <= count;) {
    position = text.rfind('\n', position - 1);
    if (position == std::string::npos) {
      return text;
    }
    ++seen;
  }
  return "[... " + std::to_string(position) + " bytes of verifier log, see log_level = \"debug\"]" +
         text.substr(position);
}

int libbpf_log(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG && !spdlog::should_log(spdlog::level::trace)) {
    return 0;
  }
  va_list measure;
  va_copy(measure, args);
  int length = std::vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (length <= 0) {
    return length;
  }
  std::string text(static_cast<std::size_t>(length) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(length));
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  // libbpf starts its own messages with "libbpf: "; ours says that already.
  if (constexpr std::string_view kPrefix = "libbpf: "; text.starts_with(kPrefix)) {
    text.erase(0, kPrefix.size());
  }
  switch (level) {
    case LIBBPF_WARN:
      if (text.find("Exclusivity flag on") != std::string::npos) {
        // A clsact qdisc that already exists: expected when re-attaching tc filters.
        spdlog::debug("libbpf: {}", text);
        break;
      }
      if (std::string tail = tail_lines(text, kVerifierTailLines); tail != text) {
        spdlog::debug("libbpf: {}", text);  // the whole verifier log, once
        spdlog::warn("libbpf: {}", tail);
      } else {
        spdlog::warn("libbpf: {}", text);
      }
      break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", text); break;
    case LIBBPF_DEBUG: spdlog::trace("libbpf: {}", text); break;
  }
  return length;
}

// Sizes the ml_* maps of an object: the sockhash from the config, any map from the tests' knob.
void size_maps(bpf_object* object, const AccelerationConfig& acceleration) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!is_pinned_map(map)) {
      continue;
    }
    const std::string name = bpf_map__name(map);
    if (name == ML_SOCKHASH_MAP_NAME) {
      bpf_map__set_max_entries(map, acceleration.sockhash_max_entries);
    }
    if (std::uint32_t entries = test_max_entries_override(name); entries != 0) {
      spdlog::warn("map {}: max_entries {} from MESHLANE_TEST_MAP_MAX_ENTRIES (tests only)", name,
                   entries);
      bpf_map__set_max_entries(map, entries);
    }
  }
}

// The definitions of the ml_* maps the objects will create (each name once).
std::vector<MapSpec> wanted_maps(const std::vector<bpf_object*>& objects) {
  std::vector<MapSpec> specs;
  std::set<std::string> seen;
  for (bpf_object* object : objects) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object) {
      if (!is_pinned_map(map) || !bpf_map__autocreate(map) ||
          !seen.insert(bpf_map__name(map)).second) {
        continue;
      }
      specs.push_back({bpf_map__name(map), static_cast<std::uint32_t>(bpf_map__type(map)),
                       bpf_map__key_size(map), bpf_map__value_size(map), bpf_map__max_entries(map),
                       bpf_map__map_flags(map)});
    }
  }
  return specs;
}

// Points every ml_* map of an object at its pin, so the first object to load creates and pins
// the shared maps and the others reuse them.
Status set_pin_paths(bpf_object* object, const PinLayout& pins) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!is_pinned_map(map)) {
      continue;
    }
    if (int err = bpf_map__set_pin_path(map, pins.map(bpf_map__name(map)).c_str()); err != 0) {
      return make_error(err, std::string("cannot set pin path of map ") + bpf_map__name(map));
    }
  }
  return {};
}

// Detaches and unpins a link this run does not use (its feature is off in degraded mode).
void remove_link(const std::string& pin, const char* why) {
  if (!path_exists(pin)) {
    return;
  }
  if (auto link = open_pinned(pin)) {
    bpf_link_detach(link->get());
  }
  ::unlink(pin.c_str());
  spdlog::warn("link {} detached and removed: {}", pin, why);
}

Status load_error(int err, const char* object) {
  return make_error(err, std::string("cannot load the ") + object +
                             " BPF programs (see the libbpf lines above; if a pinned map could "
                             "not be reused, its layout or size changed: run 'meshlaned "
                             "--cleanup' to remove the old datapath, or restore the old "
                             "acceleration.sockhash_max_entries)");
}

bool is_link_on_cgroup(int link_fd, std::uint64_t cgroup_id) {
  bpf_link_info info{};
  __u32 length = sizeof(info);
  return bpf_obj_get_info_by_fd(link_fd, &info, &length) == 0 &&
         info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id;
}

}  // namespace

TcPrograms Datapath::tc_programs() const {
  if (!inbound_tc_) {
    return {};  // interception is off (degraded): no tc programs
  }
  return {bpf_program__fd(inbound_tc_->progs.ml_tc_ingress),
          bpf_program__fd(inbound_tc_->progs.ml_tc_egress)};
}

Status Datapath::load_objects(const Config& config) {
  sockops_.reset(sockops_bpf__open());
  if (support_.interception) {
    intercept_.reset(intercept_bpf__open());
    inbound_tc_.reset(inbound_tc_bpf__open());
  }
  if (!sockops_ || (support_.interception && (!intercept_ || !inbound_tc_))) {
    return make_error(errno, "cannot open the meshlane BPF objects");
  }
  sockops_->rodata->accelerate = config.acceleration.enabled ? 1 : 0;
  sockops_->rodata->port_include_mode = config.acceleration.include_ports.empty() ? 0 : 1;
  sockops_->rodata->splice_blocking_sockets = config.acceleration.splice_blocking_sockets ? 1 : 0;
  sockops_->rodata->max_unread_bytes = config.acceleration.max_unread_bytes;
  sockops_->rodata->adaptive_splicing = config.acceleration.adaptive_splicing ? 1 : 0;
  sockops_->rodata->connect_hooks = support_.interception ? 1 : 0;
  if (const char* reject = std::getenv("MESHLANE_TEST_VERIFIER_REJECT");
      reject != nullptr && std::string_view(reject) == "1") {
    spdlog::warn("MESHLANE_TEST_VERIFIER_REJECT=1: ml_sk_msg made invalid on purpose (tests only)");
    sockops_->rodata->test_verifier_reject = 1;
  }

  std::vector<bpf_object*> objects = {sockops_->obj};
  if (support_.interception) {
    objects.push_back(intercept_->obj);
    objects.push_back(inbound_tc_->obj);
  }
  for (bpf_object* object : objects) {
    size_maps(object, config.acceleration);
  }
  if (!support_.splicing) {
    // Degraded: no sk_msg; sock_ops still runs (it records original destinations for
    // interception) but puts no socket in the sockhash.
    bpf_program__set_autoload(sockops_->progs.ml_sk_msg, false);
    sockops_->rodata->accelerate = 0;
  }

  // Every pinned map is checked against this build before anything changes: a refusal leaves
  // the running datapath exactly as it was.
  auto plan = plan_pinned_maps(wanted_maps(objects), pins_);
  if (!plan) {
    return plan.error();
  }
  map_plan_ = std::move(plan.value());
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
  if (int err = sockops_bpf__load(sockops_.get()); err != 0) {
    return load_error(err, "sockops");
  }
  if (support_.interception) {
    if (int err = intercept_bpf__load(intercept_.get()); err != 0) {
      return load_error(err, "cgroup interception");
    }
    if (int err = inbound_tc_bpf__load(inbound_tc_.get()); err != 0) {
      return load_error(err, "inbound tc");
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
  ListenerScanner::Skeleton skeleton(listener_scan_bpf__open());
  Status status;
  if (!skeleton) {
    status = make_error(errno, "cannot open the listener scan BPF object");
  } else {
    size_maps(skeleton->obj, config.acceleration);
    status = set_pin_paths(skeleton->obj, pins_);
    if (status) {
      if (int err = listener_scan_bpf__load(skeleton.get()); err != 0) {
        status = make_error(err, "cannot load the listener scan (BPF iterator over task files)");
      }
    }
  }
  if (status) {
    auto scanner = ListenerScanner::attach(std::move(skeleton));
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
  const std::array<CgroupProgram, 4> programs = {{
      {kSockopsLinkName, "sock_ops", sockops_->progs.ml_sockops, BPF_CGROUP_SOCK_OPS},
      {kConnect4LinkName, "connect4", intercept_ ? intercept_->progs.ml_connect4 : nullptr,
       BPF_CGROUP_INET4_CONNECT},
      {kConnect6LinkName, "connect6", intercept_ ? intercept_->progs.ml_connect6 : nullptr,
       BPF_CGROUP_INET6_CONNECT},
      {kGetsockoptLinkName, "getsockopt", intercept_ ? intercept_->progs.ml_getsockopt : nullptr,
       BPF_CGROUP_GETSOCKOPT},
  }};
  for (const CgroupProgram& entry : programs) {
    const bool wanted = entry.type == BPF_CGROUP_SOCK_OPS || support_.interception;
    if (!wanted) {
      remove_link(pins_.link(entry.link_name),
                  "its kernel feature is missing (daemon.on_missing_feature = \"degrade\")");
      continue;
    }
    const int prog_fd = bpf_program__fd(entry.program);
    const int cgroup_fd = cgroup_fd_.get();
    const std::string pin = pins_.link(entry.link_name);
    UniqueFd link;
    auto outcome = attach_pinned_link(
        pin, prog_fd, link, [cgroup_id](int fd) { return is_link_on_cgroup(fd, cgroup_id); },
        [&] { return bpf_link_create(prog_fd, cgroup_fd, entry.type, nullptr); });
    if (!outcome) {
      return make_error(outcome.error().errnum, outcome.error().context + " (" + entry.what +
                                                    " on cgroup " + cgroup_path + ")");
    }
    links_.push_back(std::move(link));
    attachments_.push_back({std::string(entry.what) + " on " + cgroup_path, pin, outcome.value()});
  }
  return {};
}

Status Datapath::attach_sk_msg() {
  const int prog_fd = bpf_program__fd(sockops_->progs.ml_sk_msg);
  const int sockhash_fd = bpf_map__fd(sockops_->maps.ml_sockhash_v1);
  const bool maps_adopted = maps_adopted_;
  const std::string pin = pins_.link(kSkMsgLinkName);
  UniqueFd link;
  auto outcome = attach_pinned_link(
      pin, prog_fd, link,
      // A link pinned next to a sockhash that was just created belongs to a map that is gone.
      [maps_adopted](int) { return maps_adopted; },
      [&] { return bpf_link_create(prog_fd, sockhash_fd, BPF_SK_MSG_VERDICT, nullptr); });
  if (outcome) {
    links_.push_back(std::move(link));
    attachments_.push_back({"sk_msg on the sockhash", pin, outcome.value()});
    return {};
  }
  if (outcome.error().errnum != EINVAL && outcome.error().errnum != EOPNOTSUPP) {
    return outcome.error();
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

Result<Datapath> Datapath::load(const Config& config, const FeatureSupport& support) {
  libbpf_set_print(libbpf_log);

  const bool had_bpffs_dir = path_exists(config.daemon.bpffs_dir);
  if (auto status = ensure_bpffs_dir(config.daemon.bpffs_dir); !status) {
    return status.error();
  }
  Datapath datapath;
  datapath.support_ = support;
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
    remove_link(pins_.link(kSkMsgLinkName),
                "its kernel feature is missing (daemon.on_missing_feature = \"degrade\")");
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
  for (const std::string& name : remove_retired_pins(pins_)) {
    spdlog::info("map {}: unpinned, this build does not use it (an older layout version)", name);
  }
  return {};
}

Result<Datapath> Datapath::start(const Config& config, const std::string& cgroup_path) {
  auto support = decide_features(probe_all_features(), config.daemon.on_missing_feature);
  if (!support) {
    return support.error();
  }
  auto datapath = load(config, support.value());
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
    std::string pin = pins.link(name);
    if (!path_exists(pin)) {
      continue;
    }
    if (auto link = open_pinned(pin)) {
      // Detach explicitly: a running daemon may still hold the link open.
      if (bpf_link_detach(link->get()) == 0) {
        ++report.links_detached;
      } else if (errno != ENOLINK) {
        spdlog::warn("cannot detach link {}: {}", pin, std::strerror(errno));
      }
    }
    if (::unlink(pin.c_str()) != 0) {
      return make_error(errno, "cannot remove pin " + pin);
    }
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
