#include "datapath/listener_scan.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace meshlane {
namespace {

ml_scanned_listener listener(std::uint64_t inode, std::uint8_t mode, std::uint32_t pid = 100) {
  ml_scanned_listener record{};
  record.inode = inode;
  record.pid = pid;
  record.fd = 3;
  record.port = 15001;
  record.family = 2;
  record.mode = mode;
  return record;
}

TEST(ListenerScan, CountsEachListenerOnceByOutcomeAndMode) {
  const std::vector<ml_scanned_listener> records = {
      listener(1, ML_SOCKET_MODE_NONBLOCKING),
      listener(1, ML_SOCKET_MODE_NONBLOCKING, 101),  // the same socket in a forked worker
      listener(2, ML_SOCKET_MODE_BLOCKING),
      listener(3, ML_SOCKET_MODE_NONBLOCKING),
      listener(4, ML_SOCKET_MODE_NONBLOCKING),
  };
  const std::map<std::uint64_t, RecordOutcome> outcomes = {
      {1, RecordOutcome::kRecorded},
      {2, RecordOutcome::kRecorded},
      {3, RecordOutcome::kAlreadyKnown},
      {4, RecordOutcome::kVanished},
  };
  std::vector<std::uint64_t> asked;
  std::set<std::uint64_t> seen;
  ListenerScanReport report;
  add_scan_records(records, seen, report, [&](const ml_scanned_listener& record) {
    asked.push_back(record.inode);
    return outcomes.at(record.inode);
  });
  EXPECT_EQ(asked, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(report.listeners, 4U);
  EXPECT_EQ(report.recorded, 2U);
  EXPECT_EQ(report.recorded_nonblocking, 1U);
  EXPECT_EQ(report.recorded_blocking, 1U);
  EXPECT_EQ(report.already_known, 1U);
  EXPECT_EQ(report.vanished, 1U);
}

TEST(ListenerScan, ListenersSeenInAnEarlierBatchAreNotAskedAgain) {
  std::set<std::uint64_t> seen;
  ListenerScanReport report;
  int asked = 0;
  auto record = [&](const ml_scanned_listener&) {
    ++asked;
    return RecordOutcome::kRecorded;
  };
  const std::vector<ml_scanned_listener> first = {listener(7, ML_SOCKET_MODE_NONBLOCKING)};
  const std::vector<ml_scanned_listener> second = {listener(7, ML_SOCKET_MODE_NONBLOCKING, 9),
                                                   listener(8, ML_SOCKET_MODE_BLOCKING)};
  add_scan_records(first, seen, report, record);
  add_scan_records(second, seen, report, record);
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(report.listeners, 2U);
  EXPECT_EQ(report.recorded_nonblocking, 1U);
  EXPECT_EQ(report.recorded_blocking, 1U);
}

TEST(ListenerScan, RegistrySlotIsTheFirstFreeUnlessTheListenerIsThere) {
  using Kind = RegistrySlot::Kind;
  const std::optional<std::uint64_t> free;
  const std::vector<std::optional<std::uint64_t>> some = {11, free, 12, free};
  EXPECT_EQ(choose_registry_slot(some, 99), (RegistrySlot{Kind::kFree, 1}));
  EXPECT_EQ(choose_registry_slot(some, 12), (RegistrySlot{Kind::kAlreadyThere, 2}));
  const std::vector<std::optional<std::uint64_t>> full = {11, 12, 13};
  EXPECT_EQ(choose_registry_slot(full, 99).kind, Kind::kFull);
  EXPECT_EQ(choose_registry_slot(full, 13), (RegistrySlot{Kind::kAlreadyThere, 2}));
  const std::vector<std::optional<std::uint64_t>> empty(4);
  EXPECT_EQ(choose_registry_slot(empty, 5), (RegistrySlot{Kind::kFree, 0}));
}

TEST(ListenerScan, DescribeSaysWhatWasFound) {
  ListenerScanReport report;
  report.listeners = 12;
  report.recorded = 10;
  report.recorded_nonblocking = 8;
  report.recorded_blocking = 2;
  report.already_known = 2;
  report.elapsed = std::chrono::milliseconds(3);
  EXPECT_EQ(describe(report),
            "12 listener(s) of the cgroup: 10 recorded now (8 non-blocking, 2 blocking), 2 "
            "already known, 0 closed meanwhile, 0 registered, in 3 ms");
  report.registered = 10;
  report.registry_full = 1;
  EXPECT_NE(
      describe(report).find("10 registered (1 left out: their port's registry slots were full)"),
      std::string::npos);
  report.complete = false;
  EXPECT_NE(describe(report).find("incomplete"), std::string::npos);
}

TEST(ListenerScan, ListenersOnlyRegisteredAreCountedButNotAsRecorded) {
  const std::vector<ml_scanned_listener> records = {listener(1, ML_SOCKET_MODE_NONBLOCKING),
                                                    listener(2, ML_SOCKET_MODE_BLOCKING)};
  std::set<std::uint64_t> seen;
  ListenerScanReport report;
  add_scan_records(records, seen, report,
                   [](const ml_scanned_listener&) { return RecordOutcome::kRegisteredOnly; });
  ListenerScanReport expected;  // every other count stays 0
  expected.listeners = 2;
  EXPECT_EQ(report, expected);
}

TEST(ListenerScan, DescribeSaysWhenNoModeIsRecorded) {
  ListenerScanReport report;
  report.listeners = 4;
  report.registered = 4;
  report.modes_recorded = false;
  report.elapsed = std::chrono::milliseconds(1);
  EXPECT_EQ(describe(report),
            "4 listener(s) of the cgroup: 0 recorded now (acceleration off: no mode is recorded), "
            "0 already known, 0 closed meanwhile, 4 registered, in 1 ms");
}

}  // namespace
}  // namespace meshlane
