#include "datapath/pinned_link.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "datapath/bpf_map.hpp"

namespace meshlane {

namespace {

bool is_pinned(const std::string& pin) {
  struct stat st {};
  return ::stat(pin.c_str(), &st) == 0;
}

}  // namespace

const char* to_string(AttachOutcome outcome) {
  switch (outcome) {
    case AttachOutcome::kCreated: return "attached";
    case AttachOutcome::kAdoptedAndUpdated: return "adopted pinned link, program updated in place";
    case AttachOutcome::kReplaced: return "replaced a stale pinned link";
  }
  return "?";
}

bool is_link_on_cgroup(int link_fd, std::uint64_t cgroup_id) {
  bpf_link_info info{};
  __u32 length = sizeof(info);
  return bpf_obj_get_info_by_fd(link_fd, &info, &length) == 0 &&
         info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id;
}

Result<PinnedLink> PinnedLink::attach(const std::string& pin, int prog_fd, int target_fd,
                                      bpf_attach_type type, const IsOurLink& is_ours) {
  if (auto adopted = adopt(pin, is_ours)) {
    auto updated = adopted->update(prog_fd);
    if (updated) {
      return std::move(*adopted);
    }
    spdlog::warn("could not update pinned link {} in place ({}); replacing it", pin,
                 std::strerror(updated.error().errnum));
  }
  return create_and_pin(pin, prog_fd, target_fd, type);
}

std::optional<PinnedLink> PinnedLink::adopt(const std::string& pin, const IsOurLink& is_ours) {
  if (!is_pinned(pin)) {
    return std::nullopt;
  }
  auto existing = open_pinned(pin);
  if (!existing || !is_ours(existing->get())) {
    return std::nullopt;  // create_and_pin() replaces it
  }
  return PinnedLink(std::move(existing.value()), pin, AttachOutcome::kAdoptedAndUpdated);
}

Status PinnedLink::update(int prog_fd) {
  if (bpf_link_update(fd_.get(), prog_fd, nullptr) != 0) {
    return make_error(errno, "cannot update the program of pinned link " + pin_);
  }
  outcome_ = AttachOutcome::kAdoptedAndUpdated;
  return {};
}

Result<PinnedLink> PinnedLink::create_and_pin(const std::string& pin, int prog_fd, int target_fd,
                                              bpf_attach_type type) {
  const bool replacing = is_pinned(pin);
  UniqueFd fresh(bpf_link_create(prog_fd, target_fd, type, nullptr));
  if (!fresh) {
    return make_error(errno, "cannot attach program for link " + pin);
  }
  if (replacing) {
    // The new link is attached before the old one goes, so there is no unhooked moment.
    if (auto removed = detach_and_unpin(pin); !removed) {
      return removed.error();
    }
  }
  if (bpf_obj_pin(fresh.get(), pin.c_str()) != 0) {
    return make_error(errno, "cannot pin link at " + pin);
  }
  return PinnedLink(std::move(fresh), pin,
                    replacing ? AttachOutcome::kReplaced : AttachOutcome::kCreated);
}

Result<LinkRemoval> PinnedLink::detach_and_unpin(const std::string& pin) {
  LinkRemoval removal;
  if (!is_pinned(pin)) {
    return removal;
  }
  removal.was_pinned = true;
  if (auto link = open_pinned(pin)) {
    if (bpf_link_detach(link->get()) == 0) {
      removal.detached = true;
    } else {
      removal.detach_errno = errno;
    }
  }
  if (::unlink(pin.c_str()) != 0 && errno != ENOENT) {
    return make_error(errno, "cannot remove pin " + pin);
  }
  return removal;
}

}  // namespace meshlane
