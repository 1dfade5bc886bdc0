// The listener scan: records the mode of listening sockets of the attached cgroup that were
// opened before the datapath (bpf/sockops/listener_scan.bpf.c), so that the connections they
// accept from now on can be spliced. Runs at start and whenever workloads are added.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>

#include "common/error.hpp"
#include "datapath/bpf_map.hpp"
#include "datapath/skeleton.hpp"
#include "meshlane/shared.h"

struct bpf_link;

namespace meshlane {

// What one scan found. A listener shared by several processes (a forked server) counts once.
struct ListenerScanReport {
  std::size_t listeners = 0;             // listening TCP sockets of the cgroup
  std::size_t recorded = 0;              // recorded by this scan (had no record yet)
  std::size_t recorded_nonblocking = 0;  // of those, read non-blocking: spliceable from now on
  std::size_t recorded_blocking = 0;     // of those, read blocking: never spliced
  std::size_t already_known = 0;         // had a record (from listen() or an earlier scan)
  std::size_t vanished = 0;              // closed (or its process gone) before it could be recorded
  std::size_t registered = 0;            // put in the listener registry (ml_listener_socks_v1)
  std::size_t registry_full = 0;         // left out of it: its port's slots were all taken
  // false with acceleration off: nothing would read a mode, and a record would be cloned into
  // every socket the listener accepts, so the scan only registers listeners (recorded stays 0)
  bool modes_recorded = true;
  bool complete = true;  // false when a limit stopped the scan (ListenerScanLimits)
  std::chrono::microseconds elapsed{0};

  bool operator==(const ListenerScanReport&) const = default;
};

// What recording one listener came to.
enum class RecordOutcome { kRecorded, kAlreadyKnown, kVanished, kRegisteredOnly };

// Where a listener goes in the registry, given the cookies of the sockets in its namespace and
// port's slots (nullopt: a free slot): nowhere when it is there already, else the first free
// slot, or nowhere when none is free.
struct RegistrySlot {
  enum class Kind { kAlreadyThere, kFree, kFull };
  Kind kind = Kind::kFull;
  std::uint16_t slot = 0;
  bool operator==(const RegistrySlot&) const = default;
};
RegistrySlot choose_registry_slot(std::span<const std::optional<std::uint64_t>> occupants,
                                  std::uint64_t cookie);

// Folds the scan program's output records into a report: each listener not seen before (by
// socket inode; a listener's file appears once per process holding it) is handed to `record`.
void add_scan_records(std::span<const ml_scanned_listener> records, std::set<std::uint64_t>& seen,
                      ListenerScanReport& report,
                      const std::function<RecordOutcome(const ml_scanned_listener&)>& record);

// "12 listener(s) of the cgroup: 10 recorded now (8 non-blocking, 2 blocking), 2 already known,
// 0 closed meanwhile, 10 registered, in 3 ms"
std::string describe(const ListenerScanReport& report);

// Bounds on one scan, which runs on the daemon's only I/O thread: a node with 100,000 sockets
// takes well under a second, and whatever a limit leaves out is reported as incomplete.
struct ListenerScanLimits {
  std::size_t max_listeners = 262144;
  std::chrono::milliseconds max_time{5000};
};

class ListenerScanner {
 public:
  // The iterator's link is not pinned: it lives as long as the scanner.
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };

  // Takes a loaded skeleton (its maps are the datapath's pinned ones) and attaches its
  // iterator. `record_modes`: whether splicing reads listener modes (acceleration on).
  static Result<ListenerScanner> attach(ListenerScanSkeleton skeleton, bool record_modes);

  // Walks every open file of every task once; records listeners of the cgroup `cgroup_id`
  // (its cgroup v2 inode number) that have no record. Each is recorded through a duplicate of
  // its file (pidfd_getfd) in ml_listenmode_v1, never replacing a record, and put in the
  // listener registry (ml_listener_socks_v1) unless it is there. Without `record_modes`, only
  // the latter (the fast path still needs to know who listens).
  Result<ListenerScanReport> run(std::uint64_t cgroup_id, const ListenerScanLimits& limits = {});

 private:
  ListenerScanner() = default;
  using ListenerModes = TypedMap<int, ml_listener_state>;
  using ListenerRegistry = TypedMap<ml_listener_key, std::uint64_t>;
  RecordOutcome record(const ml_scanned_listener& listener);
  void register_listener(int socket, const ml_scanned_listener& listener);
  void count_recorded(std::size_t recorded);

  ListenerScanSkeleton skeleton_;
  std::optional<ListenerModes> modes_;
  std::optional<ListenerRegistry> registry_;
  bool record_modes_ = true;
  std::size_t registered_ = 0;     // by the current run
  std::size_t registry_full_ = 0;  // by the current run
  std::optional<TypedMap<std::uint32_t, std::uint64_t>> counters_;
  std::unique_ptr<bpf_link, LinkDeleter> link_;
};

}  // namespace meshlane
