#include "meshlane/listener_scan.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "listener_scan.skel.h"
#include "meshlane/unique_fd.hpp"

namespace meshlane {

void ListenerScanner::SkeletonDeleter::operator()(listener_scan_bpf* skeleton) const {
  listener_scan_bpf__destroy(skeleton);
}

void ListenerScanner::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

void add_scan_records(std::span<const ml_scanned_listener> records, std::set<std::uint64_t>& seen,
                      ListenerScanReport& report) {
  for (const ml_scanned_listener& record : records) {
    // The first visit of a listener records it; later visits (other processes holding the same
    // file) see the record the first one made.
    if (!seen.insert(record.inode).second) {
      continue;
    }
    ++report.listeners;
    if (record.recorded == 0) {
      ++report.already_known;
      continue;
    }
    ++report.recorded;
    if (record.mode == ML_SOCKET_MODE_NONBLOCKING) {
      ++report.recorded_nonblocking;
    } else {
      ++report.recorded_blocking;
    }
  }
}

std::string describe(const ListenerScanReport& report) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(report.elapsed).count();
  return std::to_string(report.listeners) + " listener(s) of the cgroup: " +
         std::to_string(report.recorded) + " recorded now (" +
         std::to_string(report.recorded_nonblocking) + " non-blocking, " +
         std::to_string(report.recorded_blocking) + " blocking), " +
         std::to_string(report.already_known) + " already known, in " + std::to_string(ms) +
         " ms" + (report.complete ? "" : " (incomplete: a scan limit was reached)");
}

Result<ListenerScanner> ListenerScanner::attach(Skeleton skeleton) {
  ListenerScanner scanner;
  bpf_link* link = bpf_program__attach_iter(skeleton->progs.ml_scan_listeners, nullptr);
  if (link == nullptr) {
    return make_error(errno, "cannot attach the listener scan iterator (iter/task_file)");
  }
  scanner.link_.reset(link);
  scanner.skeleton_ = std::move(skeleton);
  return scanner;
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
  std::set<std::uint64_t> seen;
  constexpr std::size_t kRecord = sizeof(ml_scanned_listener);
  std::array<char, 64 * 1024> buffer{};
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
    add_scan_records(records, seen, report);
    if (report.listeners >= limits.max_listeners ||
        std::chrono::steady_clock::now() - started >= limits.max_time) {
      report.complete = false;
      break;
    }
  }
  report.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  return report;
}

}  // namespace meshlane
