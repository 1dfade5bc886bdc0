#include "datapath/tc_port_filter.hpp"

#include <bpf/bpf.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "common/unique_fd.hpp"
#include "datapath/bpf_map.hpp"

extern "C" {
#include "meshlane/tc_flow_types.h"
#include "meshlane/tc_port_marks.h"
}

namespace meshlane {

namespace {

// ml_tcports_v1 mapped into this process (BPF_F_MMAPABLE): the controller sets marks with the
// same atomic OR as the programs, so neither side can undo a mark the other set meanwhile (a
// map update would write the whole word back).
class MappedPortMarks {
 public:
  // The map at map_fd (not taken over), checked against this build's layout.
  static Result<MappedPortMarks> map(int map_fd) {
    auto info = map_info(map_fd);
    if (!info) {
      return info.error();
    }
    if (info->key_size != sizeof(std::uint32_t) || info->value_size != sizeof(std::uint64_t) ||
        info->max_entries != ML_TC_PORTS_SLOTS) {
      return make_error(EINVAL, "map " + info->name + " does not have the layout of " +
                                    ML_TC_PORTS_MAP_NAME + " in this build");
    }
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t length = (ML_TC_PORTS_SLOTS * sizeof(std::uint64_t) + page - 1) / page * page;
    void* words = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (words == MAP_FAILED) {
      return make_error(errno, "cannot map " + info->name + " into memory");
    }
    return MappedPortMarks(static_cast<std::uint64_t*>(words), length);
  }

  MappedPortMarks(const MappedPortMarks&) = delete;
  MappedPortMarks& operator=(const MappedPortMarks&) = delete;
  MappedPortMarks(MappedPortMarks&& other) noexcept
      : words_(std::exchange(other.words_, nullptr)), length_(other.length_) {}
  MappedPortMarks& operator=(MappedPortMarks&&) = delete;
  ~MappedPortMarks() {
    if (words_ != nullptr) {
      ::munmap(words_, length_);
    }
  }

  void mark(ml_tc_port_set set, std::uint16_t port) {
    slot(ml_tc_port_slot(set, port)).fetch_or(ml_tc_port_bit(port));
  }
  void set_armed(bool armed) { slot(ML_TC_PORTS_ARMED_SLOT).store(armed ? 1 : 0); }
  std::size_t marked(ml_tc_port_set set) {
    std::size_t count = 0;
    for (std::uint32_t word = 0; word < ML_TC_PORT_WORDS; ++word) {
      count += static_cast<std::size_t>(std::popcount(slot(ml_tc_port_slot(set, 0) + word).load()));
    }
    return count;
  }

 private:
  MappedPortMarks(std::uint64_t* words, std::size_t length) : words_(words), length_(length) {}
  std::atomic_ref<std::uint64_t> slot(std::uint32_t index) {
    return std::atomic_ref<std::uint64_t>(words_[index]);
  }

  std::uint64_t* words_ = nullptr;
  std::size_t length_ = 0;
};

// Returns once every BPF program that was running when it was called has finished: the
// programs run inside RCU read-side sections, and MEMBARRIER_CMD_GLOBAL waits for an RCU grace
// period. Kernels that refuse it (nohz_full) get a pause far longer than any program run.
void wait_for_running_programs() {
  if (::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Calls visit(flow) for every flow in the map, by batches of buckets: a flow that stays in
// the map for the whole walk is visited once, however many others come and go meanwhile.
template <typename Visit>
Status for_each_flow(int map_fd, Visit visit) {
  std::size_t chunk = 1024;
  std::vector<ml_tc_flow_key> keys(chunk);
  std::vector<ml_tc_flow> values(chunk);
  std::uint32_t cursor = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    auto count = static_cast<std::uint32_t>(chunk);
    const int err = bpf_map_lookup_batch(map_fd, first ? nullptr : &cursor, &cursor, keys.data(),
                                         values.data(), &count, &opts);
    const int error = errno;
    for (std::uint32_t i = 0; i < count && i < chunk; ++i) {
      visit(values[i]);
    }
    if (err == 0) {
      first = false;
      continue;
    }
    if (error == ENOENT) {
      return {};
    }
    if (error == ENOSPC && chunk < (1U << 20)) {  // one bucket holds more than a batch
      chunk *= 2;
      keys.resize(chunk);
      values.resize(chunk);
      continue;
    }
    return make_error(error, std::string("cannot read the flows of ") + ML_TC_FLOWS_MAP_NAME);
  }
}

}  // namespace

Status disarm_tc_port_filter(int marks_fd) {
  auto marks = MappedPortMarks::map(marks_fd);
  if (!marks) {
    return marks.error();
  }
  marks->set_armed(false);
  return {};
}

Result<TcPortFilterReport> arm_tc_port_filter(int marks_fd, int flows_fd) {
  auto marks = MappedPortMarks::map(marks_fd);
  if (!marks) {
    return marks.error();
  }
  // A program of an older build still running on some CPU could file an unmarked flow after
  // the walk below.
  wait_for_running_programs();
  TcPortFilterReport report;
  auto walked = for_each_flow(flows_fd, [&](const ml_tc_flow& flow) {
    marks->mark(ML_TC_PORTS_APP, flow.orig_port);
    marks->mark(ML_TC_PORTS_INBOUND, flow.inbound_port);
    ++report.flows;
  });
  if (!walked) {
    return walked.error();
  }
  marks->set_armed(true);
  report.app_ports = marks->marked(ML_TC_PORTS_APP);
  report.inbound_ports = marks->marked(ML_TC_PORTS_INBOUND);
  return report;
}

Status disarm_tc_port_filter(const PinLayout& pins) {
  auto marks = open_pinned(pins.map(ML_TC_PORTS_MAP_NAME));
  if (!marks) {
    return marks.error();
  }
  return disarm_tc_port_filter(marks->get());
}

Result<TcPortFilterReport> arm_tc_port_filter(const PinLayout& pins) {
  auto marks = open_pinned(pins.map(ML_TC_PORTS_MAP_NAME));
  if (!marks) {
    return marks.error();
  }
  auto flows = open_pinned(pins.map(ML_TC_FLOWS_MAP_NAME));
  if (!flows) {
    return flows.error();
  }
  return arm_tc_port_filter(marks->get(), flows->get());
}

}  // namespace meshlane
