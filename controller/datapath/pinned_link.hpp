// A BPF link pinned in bpffs: the pin is the attachment, so a restarted meshlaned adopts the
// link an earlier run pinned and swaps its program in place (no moment without the hook)
// instead of attaching a second copy.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace meshlane {

// How an attachment came to be, for the start-up log and `status`.
enum class AttachOutcome { kCreated, kAdoptedAndUpdated, kReplaced };
const char* to_string(AttachOutcome outcome);

// What removing a pinned link came to.
struct LinkRemoval {
  bool was_pinned = false;  // false: nothing at the pin, nothing done
  bool detached = false;    // bpf_link_detach() succeeded
  int detach_errno = 0;     // why it did not (ENOLINK: detached already); 0 if never tried
};

// Whether a pinned link is the one this run would make (the right target), given its fd.
using IsOurLink = std::function<bool(int link_fd)>;

// Whether link_fd is a cgroup link on the cgroup whose id (cgroup v2 inode number) is given.
bool is_link_on_cgroup(int link_fd, std::uint64_t cgroup_id);

// Owns one link fd and knows its pin; move-only. Dropping it closes the fd only: the pin
// keeps the link (and so the program) attached, which is what lets the daemon restart.
class PinnedLink {
 public:
  // Adopts the link pinned at `pin` and updates it to prog_fd when `is_ours` accepts it;
  // otherwise creates a link of prog_fd on target_fd and pins it there, replacing whatever
  // was pinned (the new link is attached before the old one is detached).
  static Result<PinnedLink> attach(const std::string& pin, int prog_fd, int target_fd,
                                   bpf_attach_type type, const IsOurLink& is_ours);

  // The link pinned at `pin`, when there is one that can be opened and `is_ours` accepts.
  static std::optional<PinnedLink> adopt(const std::string& pin, const IsOurLink& is_ours);
  // Swaps the link's program for prog_fd in place; on success the outcome is "adopted and
  // updated".
  Status update(int prog_fd);
  // Creates a link of prog_fd on target_fd and pins it at `pin`, after detaching and
  // unpinning a link pinned there (outcome "replaced"; "created" when there was none).
  static Result<PinnedLink> create_and_pin(const std::string& pin, int prog_fd, int target_fd,
                                           bpf_attach_type type);
  // Detaches the link pinned at `pin` (a running daemon may still hold it open, so closing is
  // not enough) and removes the pin. A pin that cannot be opened as a link is removed too.
  static Result<LinkRemoval> detach_and_unpin(const std::string& pin);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& pin() const { return pin_; }
  [[nodiscard]] AttachOutcome outcome() const { return outcome_; }

  PinnedLink(const PinnedLink&) = delete;
  PinnedLink& operator=(const PinnedLink&) = delete;
  PinnedLink(PinnedLink&&) noexcept = default;
  PinnedLink& operator=(PinnedLink&&) noexcept = default;
  ~PinnedLink() = default;

 private:
  PinnedLink(UniqueFd fd, std::string pin, AttachOutcome outcome)
      : fd_(std::move(fd)), pin_(std::move(pin)), outcome_(outcome) {}

  UniqueFd fd_;
  std::string pin_;
  AttachOutcome outcome_ = AttachOutcome::kCreated;
};

}  // namespace meshlane
