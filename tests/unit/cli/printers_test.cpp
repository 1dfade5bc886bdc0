// meshlanectl's tables (-o table), printed from results shaped as the daemon's methods return
// them (controller/daemon/backend.cpp, workloads/registry.cpp's workload_to_json).
#include "meshlanectl/printers.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <regex>
#include <sstream>
#include <string>

namespace meshlane::cli {
namespace {

// What `printer` writes to stdout for `result`.
std::string printed(void (*printer)(const json&), const json& result) {
  std::ostringstream out;
  std::streambuf* const original = std::cout.rdbuf(out.rdbuf());
  printer(result);
  std::cout.rdbuf(original);
  return out.str();
}

// Whether some line of `output` matches `pattern` as a whole.
bool has_line(const std::string& output, const std::string& pattern) {
  const std::regex line(pattern);
  std::istringstream lines(output);
  std::string text;
  while (std::getline(lines, text)) {
    if (std::regex_match(text, line)) {
      return true;
    }
  }
  return false;
}

json status_result() {
  return json::parse(R"json({
    "version": "0.1.0", "protocol": 1, "pid": 42, "uptime_seconds": 3,
    "started_at": "2026-12-06T02:00:00Z", "kernel_release": "6.18.0",
    "kernel_features": [
      {"name": "program type sock_ops", "needed_for": "splicing and interception", "present": true},
      {"name": "program type sk_msg", "needed_for": "local TCP splicing", "present": true}],
    "optional_kernel_features": [
      {"name": "kfunc bpf_map_sum_elem_count (kernel >= 6.6)",
       "needed_for": "the map-full pre-check before interception", "present": false,
       "when_absent": "connects are intercepted even when ml_origdst_v2 is full"},
      {"name": "kfuncs for back-pressure (kernel >= 6.2)",
       "needed_for": "acceleration.max_unread_bytes (back-pressure)", "present": true,
       "when_absent": "max_unread_bytes is not enforced"}],
    "splicing": true, "interception": true, "policies_enforced": true, "degraded": false,
    "attachments": [], "cgroup": "/sys/fs/cgroup/x", "bpffs_dir": "/sys/fs/bpf/x",
    "acceleration": {"enabled": true, "sockhash_max_entries": 65536},
    "workloads": {"total": 0, "config": 0, "live": 0}, "listener_scan": {"available": true},
    "socket": "/run/x.sock", "state_dir": "/var/lib/x"
})json");
}

TEST(PrintStatus, ShowsSplicingInterceptionAndOptionalFeatures) {
  const std::string out = printed(print_status, status_result());
  EXPECT_TRUE(has_line(out, R"(kernel +6\.18\.0, 2 of 2 features found, 1 of 2 optional ones on)"))
      << out;
  EXPECT_TRUE(has_line(out, R"(datapath +splicing on, interception on)")) << out;
  EXPECT_TRUE(has_line(out, R"(OPTIONAL KERNEL FEATURE +ON +FOR +WHEN OFF)")) << out;
  EXPECT_TRUE(has_line(out, R"(kfunc bpf_map_sum_elem_count \(kernel >= 6\.6\) +no +the map-full )"
                            R"(pre-check before interception +connects are intercepted even when )"
                            R"(ml_origdst_v2 is full)"))
      << out;
  EXPECT_TRUE(has_line(out, R"(kfuncs for back-pressure \(kernel >= 6\.2\) +yes +acceleration\.)"
                            R"(max_unread_bytes \(back-pressure\) +-)"))
      << out;
  // An optional feature that is off is no missing feature: nothing says degraded.
  EXPECT_EQ(out.find("degraded"), std::string::npos) << out;
}

TEST(PrintStatus, SaysDegradedWhenAPartIsOff) {
  json result = status_result();
  result["splicing"] = false;
  result["degraded"] = true;
  const std::string out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(datapath +splicing off, interception on \(degraded: .*\))")) << out;
}

TEST(PrintStatus, OmitsWhatAnOlderDaemonDoesNotReport) {
  json result = status_result();
  result.erase("optional_kernel_features");
  result.erase("splicing");
  result.erase("interception");
  const std::string out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(kernel +6\.18\.0, 2 of 2 features found)")) << out;
  EXPECT_EQ(out.find("OPTIONAL KERNEL FEATURE"), std::string::npos) << out;
  EXPECT_EQ(out.find("datapath"), std::string::npos) << out;
}

}  // namespace
}  // namespace meshlane::cli
