#include "meshlane/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <set>

#include "meshlane/bpf_map.hpp"
#include "meshlane/kernel_features.hpp"
#include "meshlane/mounts.hpp"
#include "meshlane/shared.h"
#include "sockops.skel.h"

namespace meshlane {

void SockopsSkeletonDeleter::operator()(sockops_bpf* skeleton) const {
  sockops_bpf__destroy(skeleton);
}

const char* to_string(AttachOutcome outcome) {
  switch (outcome) {
    case AttachOutcome::kCreated:
      return "attached";
    case AttachOutcome::kAdoptedAndUpdated:
      return "adopted pinned link, program updated in place";
    case AttachOutcome::kReplaced:
      return "replaced a stale pinned link";
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
  switch (level) {
    case LIBBPF_WARN:
      spdlog::debug("libbpf: {}", text);
      spdlog::warn("libbpf: {}", tail_lines(text, kVerifierTailLines));
      break;
    case LIBBPF_INFO:
      spdlog::debug("libbpf: {}", text);
      break;
    case LIBBPF_DEBUG:
      spdlog::trace("libbpf: {}", text);
      break;
  }
  return length;
}

}  // namespace

Result<Datapath> Datapath::start(const Config& config, const std::string& cgroup_path) {
  libbpf_set_print(libbpf_log);

  if (auto status = require_features(probe_splice_features()); !status) {
    return status.error();
  }
  if (auto status = ensure_bpffs_dir(config.daemon.bpffs_dir); !status) {
    return status.error();
  }
  Datapath datapath;
  datapath.pins_ = PinLayout{config.daemon.bpffs_dir};
  const PinLayout& pins = datapath.pins_;
  if (::mkdir(pins.links_dir().c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(errno, "cannot create " + pins.links_dir());
  }

  datapath.skeleton_.reset(sockops_bpf__open());
  if (!datapath.skeleton_) {
    return make_error(errno, "cannot open the sockops BPF object");
  }
  sockops_bpf* skel = datapath.skeleton_.get();
  skel->rodata->accelerate = config.acceleration.enabled ? 1 : 0;
  skel->rodata->port_include_mode = config.acceleration.include_ports.empty() ? 0 : 1;
  skel->rodata->splice_blocking_sockets = config.acceleration.splice_blocking_sockets ? 1 : 0;
  bpf_map__set_max_entries(skel->maps.ml_sockhash_v1, config.acceleration.sockhash_max_entries);

  datapath.maps_adopted_ = path_exists(pins.map(ML_SOCKHASH_MAP_NAME));
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    if (!is_pinned_map(map)) {
      continue;
    }
    if (int err = bpf_map__set_pin_path(map, pins.map(bpf_map__name(map)).c_str()); err != 0) {
      return make_error(err, std::string("cannot set pin path of map ") + bpf_map__name(map));
    }
  }
  if (int err = sockops_bpf__load(skel); err != 0) {
    return make_error(err,
                      "cannot load the sockops BPF programs (see the libbpf lines above; if a "
                      "pinned map could not be reused, its layout or size changed: run "
                      "'meshlaned --cleanup' to remove the old datapath, or restore the old "
                      "acceleration.sockhash_max_entries)");
  }
  if (auto status = sync_port_rules(skel->maps.ml_ports_v1, config.acceleration); !status) {
    return status.error();
  }

  datapath.cgroup_fd_.reset(::open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!datapath.cgroup_fd_) {
    return make_error(errno, "cannot open cgroup " + cgroup_path);
  }
  const std::uint64_t cgroup_id = cgroup_id_of(cgroup_path);
  const int cgroup_fd = datapath.cgroup_fd_.get();

  int sockops_prog = bpf_program__fd(skel->progs.ml_sockops);
  auto sockops = attach_pinned_link(
      pins.link(kSockopsLinkName), sockops_prog, datapath.sockops_link_,
      [cgroup_id](int link_fd) {
        bpf_link_info info{};
        __u32 length = sizeof(info);
        return bpf_obj_get_info_by_fd(link_fd, &info, &length) == 0 &&
               info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id;
      },
      [&] { return bpf_link_create(sockops_prog, cgroup_fd, BPF_CGROUP_SOCK_OPS, nullptr); });
  if (!sockops) {
    return make_error(sockops.error().errnum,
                      sockops.error().context + " (sock_ops on cgroup " + cgroup_path + ")");
  }
  datapath.sockops_outcome_ = sockops.value();

  int sk_msg_prog = bpf_program__fd(skel->progs.ml_sk_msg);
  int sockhash_fd = bpf_map__fd(skel->maps.ml_sockhash_v1);
  const bool maps_adopted = datapath.maps_adopted_;
  auto sk_msg = attach_pinned_link(
      pins.link(kSkMsgLinkName), sk_msg_prog, datapath.sk_msg_link_,
      // A link pinned next to a sockhash that was just created belongs to a map that is gone.
      [maps_adopted](int) { return maps_adopted; },
      [&] { return bpf_link_create(sk_msg_prog, sockhash_fd, BPF_SK_MSG_VERDICT, nullptr); });
  if (!sk_msg && (sk_msg.error().errnum == EINVAL || sk_msg.error().errnum == EOPNOTSUPP)) {
    // Kernels before 6.10 have no sockmap links: attach to the pinned map, which keeps the
    // program for as long as the map lives.
    if (bpf_prog_attach(sk_msg_prog, sockhash_fd, BPF_SK_MSG_VERDICT, 0) != 0) {
      return make_error(errno, "cannot attach sk_msg to the sockhash");
    }
    datapath.sk_msg_uses_link_ = false;
  } else if (!sk_msg) {
    return sk_msg.error();
  } else {
    datapath.sk_msg_outcome_ = sk_msg.value();
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
  for (std::string_view name : {kSockopsLinkName, kSkMsgLinkName}) {
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
  for (const char* name : kPinnedMapNames) {
    std::string pin = pins.map(name);
    if (!path_exists(pin)) {
      continue;
    }
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
