#include "datapath/listener_scan.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "common/unique_fd.hpp"
#include "datapath/bpf_map.hpp"
#include "listener_scan.skel.h"

namespace meshlane {

void ListenerScanner::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

void add_scan_records(std::span<const ml_scanned_listener> records, std::set<std::uint64_t>& seen,
                      ListenerScanReport& report,
                      const std::function<RecordOutcome(const ml_scanned_listener&)>& record) {
  for (const ml_scanned_listener& listener : records) {
    if (!seen.insert(listener.inode).second) {
      continue;
    }
    ++report.listeners;
    switch (record(listener)) {
      case RecordOutcome::kAlreadyKnown: ++report.already_known; break;
      case RecordOutcome::kVanished: ++report.vanished; break;
      case RecordOutcome::kRegisteredOnly: break;
      case RecordOutcome::kRecorded:
        ++report.recorded;
        if (listener.mode == ML_SOCKET_MODE_NONBLOCKING) {
          ++report.recorded_nonblocking;
        } else {
          ++report.recorded_blocking;
        }
        break;
    }
  }
}

RegistrySlot choose_registry_slot(std::span<const std::optional<std::uint64_t>> occupants,
                                  std::uint64_t cookie) {
  std::optional<std::uint16_t> free;
  for (std::size_t slot = 0; slot < occupants.size(); ++slot) {
    if (occupants[slot] == cookie) {
      return {RegistrySlot::Kind::kAlreadyThere, static_cast<std::uint16_t>(slot)};
    }
    if (!occupants[slot] && !free) {
      free = static_cast<std::uint16_t>(slot);
    }
  }
  if (free) {
    return {RegistrySlot::Kind::kFree, *free};
  }
  return {RegistrySlot::Kind::kFull, 0};
}

std::string describe(const ListenerScanReport& report) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(report.elapsed).count();
  const std::string modes = report.modes_recorded
                                ? std::to_string(report.recorded_nonblocking) + " non-blocking, " +
                                      std::to_string(report.recorded_blocking) + " blocking"
                                : "acceleration off: no mode is recorded";
  return std::to_string(report.listeners) +
         " listener(s) of the cgroup: " + std::to_string(report.recorded) + " recorded now (" +
         modes + "), " + std::to_string(report.already_known) + " already known, " +
         std::to_string(report.vanished) + " closed meanwhile, " +
         std::to_string(report.registered) + " registered" +
         (report.registry_full == 0
              ? ""
              : " (" + std::to_string(report.registry_full) + " left out: their port's " +
                    "registry slots were full)") +
         ", in " + std::to_string(ms) + " ms" +
         (report.complete ? "" : " (incomplete: a scan limit was reached)");
}

Result<ListenerScanner> ListenerScanner::attach(ListenerScanSkeleton skeleton, bool record_modes) {
  ListenerScanner scanner;
  scanner.record_modes_ = record_modes;
  bpf_link* link = bpf_program__attach_iter(skeleton->progs.ml_scan_listeners, nullptr);
  if (link == nullptr) {
    return make_error(errno, "cannot attach the listener scan iterator (iter/task_file)");
  }
  scanner.link_.reset(link);
  auto modes = ListenerModes::adopt(UniqueFd(::dup(bpf_map__fd(skeleton->maps.ml_listenmode_v1))));
  if (!modes) {
    return modes.error();
  }
  auto counters = TypedMap<std::uint32_t, std::uint64_t>::adopt(
      UniqueFd(::dup(bpf_map__fd(skeleton->maps.ml_counters_v1))));
  if (!counters) {
    return counters.error();
  }
  auto registry =
      ListenerRegistry::adopt(UniqueFd(::dup(bpf_map__fd(skeleton->maps.ml_listener_socks_v1))));
  if (!registry) {
    return registry.error();
  }
  scanner.modes_.emplace(std::move(modes.value()));
  scanner.registry_.emplace(std::move(registry.value()));
  scanner.counters_.emplace(std::move(counters.value()));
  scanner.skeleton_ = std::move(skeleton);
  return scanner;
}

RecordOutcome ListenerScanner::record(const ml_scanned_listener& listener) {
  // The listener's file in this process: the same socket, so the storage created on it is the
  // listener's own. Checked by inode: the process may have closed that descriptor number and
  // opened something else since the iterator saw it.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, listener.pid, 0)));
  if (!pidfd) {
    return RecordOutcome::kVanished;
  }
  UniqueFd socket(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), listener.fd, 0)));
  struct stat st {};
  if (!socket || ::fstat(socket.get(), &st) != 0 || !S_ISSOCK(st.st_mode) ||
      st.st_ino != listener.inode) {
    return RecordOutcome::kVanished;
  }
  if (!record_modes_) {
    register_listener(socket.get(), listener);
    return RecordOutcome::kRegisteredOnly;
  }
  const int key = socket.get();
  const ml_listener_state state{listener.mode, ML_LISTENER_FROM_SCAN, 0};
  RecordOutcome outcome = RecordOutcome::kRecorded;
  if (listener.marked_nonblocking != 0) {
    // Marked non-blocking at listen(): its accepted sockets inherit the mark, and a record
    // would only be cloned into each of them for nothing.
    outcome = RecordOutcome::kAlreadyKnown;
  } else if (auto status = modes_->update(key, state, BPF_NOEXIST); !status) {
    // BPF_NOEXIST: a record made at listen() (a blocking listener) or by an earlier scan is
    // never replaced.
    if (status.error().errnum != EEXIST) {
      return RecordOutcome::kVanished;
    }
    outcome = RecordOutcome::kAlreadyKnown;
  }
  // A known listener may still be missing from the registry: one recorded at listen() by an
  // older build, which kept no registry.
  register_listener(socket.get(), listener);
  return outcome;
}

void ListenerScanner::register_listener(int socket, const ml_scanned_listener& listener) {
  std::uint64_t cookie = 0;
  socklen_t size = sizeof(cookie);
  if (::getsockopt(socket, SOL_SOCKET, SO_COOKIE, &cookie, &size) != 0) {
    return;
  }
  ml_listener_key key{listener.netns_cookie, listener.port, 0, 0};
  // Twice at most: sock_ops may take the free slot for a new listener in between.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::array<std::optional<std::uint64_t>, ML_LISTENER_SLOTS> occupants;
    for (std::uint16_t slot = 0; slot < ML_LISTENER_SLOTS; ++slot) {
      key.slot = slot;
      occupants[slot] = registry_->lookup(key);
    }
    const RegistrySlot chosen = choose_registry_slot(occupants, cookie);
    switch (chosen.kind) {
      case RegistrySlot::Kind::kAlreadyThere: return;
      case RegistrySlot::Kind::kFull: ++registry_full_; return;
      case RegistrySlot::Kind::kFree: break;
    }
    key.slot = chosen.slot;
    // The value is the socket's descriptor; the map holds the socket itself.
    const auto status = registry_->update(key, static_cast<std::uint64_t>(socket), BPF_NOEXIST);
    if (status) {
      ++registered_;
      return;
    }
    if (status.error().errnum != EEXIST) {
      spdlog::debug("listener scan: cannot register the listener on port {}: {}", listener.port,
                    status.error().context);
      return;
    }
  }
}

// listeners_scanned is only ever written here (the programs never count it), so adding to one
// CPU's slot races with nothing.
void ListenerScanner::count_recorded(std::size_t recorded) {
  auto per_cpu = counters_->lookup_percpu(ML_CTR_LISTENERS_SCANNED);
  if (!per_cpu || per_cpu->empty()) {
    return;
  }
  std::vector<std::uint64_t> values = std::move(per_cpu.value());
  values.front() += recorded;
  const std::uint32_t key = ML_CTR_LISTENERS_SCANNED;
  if (bpf_map_update_elem(counters_->fd(), &key, values.data(), BPF_ANY) != 0) {
    spdlog::debug("listener scan: cannot count {} recorded listener(s): {}", recorded,
                  std::strerror(errno));
  }
}

Result<ListenerScanReport> ListenerScanner::run(std::uint64_t cgroup_id,
                                                const ListenerScanLimits& limits) {
  const auto started = std::chrono::steady_clock::now();
  skeleton_->bss->target_cgroup_id = cgroup_id;
  UniqueFd iterator(bpf_iter_create(bpf_link__fd(link_.get())));
  if (!iterator) {
    return make_error(errno, "cannot create a listener scan iterator");
  }
  ListenerScanReport report;
  report.modes_recorded = record_modes_;
  registered_ = 0;
  registry_full_ = 0;
  std::set<std::uint64_t> seen;
  constexpr std::size_t kRecord = sizeof(ml_scanned_listener);
  std::array<char, std::size_t{64} * 1024> buffer{};
  std::vector<char> pending;  // a record split between two reads
  std::vector<ml_scanned_listener> records;
  for (;;) {
    const ssize_t got = ::read(iterator.get(), buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        // EAGAIN: the kernel walked a million files without finding a listener; it resumes
        // where it stopped.
        if (std::chrono::steady_clock::now() - started < limits.max_time) {
          continue;
        }
        report.complete = false;
        break;
      }
      return make_error(errno, "cannot read the listener scan iterator");
    }
    if (got == 0) {
      break;
    }
    pending.insert(pending.end(), buffer.data(), buffer.data() + got);
    const std::size_t whole = pending.size() / kRecord;
    records.resize(whole);
    std::memcpy(records.data(), pending.data(), whole * kRecord);
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(whole * kRecord));
    add_scan_records(records, seen, report,
                     [this](const ml_scanned_listener& listener) { return record(listener); });
    if (report.listeners >= limits.max_listeners ||
        std::chrono::steady_clock::now() - started >= limits.max_time) {
      report.complete = false;
      break;
    }
  }
  report.registered = registered_;
  report.registry_full = registry_full_;
  report.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  if (report.recorded > 0) {
    count_recorded(report.recorded);
  }
  return report;
}

}  // namespace meshlane
