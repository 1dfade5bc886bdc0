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
    "splicing": true, "interception": true, "inbound_steering": "sk_lookup",
    "policies_enforced": true, "degraded": false, "attachments": [], "cgroup": "/sys/fs/cgroup/x", "bpffs_dir": "/sys/fs/bpf/x",
    "acceleration": {"enabled": true, "sockhash_max_entries": 65536},
    "workloads": {"total": 0, "config": 0, "live": 0}, "listener_scan": {"available": true},
    "socket": "/run/x.sock", "state_dir": "/var/lib/x"
})json");
}

TEST(PrintStatus, ShowsSplicingInterceptionAndOptionalFeatures) {
  const std::string out = printed(print_status, status_result());
  EXPECT_TRUE(has_line(out, R"(kernel +6\.18\.0, 2 of 2 features found, 1 of 2 optional ones on)"))
      << out;
  EXPECT_TRUE(has_line(out, R"(datapath +splicing on, interception on \(inbound steering by )"
                            R"(sk_lookup\))"))
      << out;
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

TEST(PrintStatus, ShowsTheListenerScanAndWhenItRecordsNoMode) {
  json result = status_result();
  result["listener_scan"] = json::parse(R"json({"available": true, "scans": 2,
    "last": {"reason": "start", "listeners": 7, "recorded": 6, "recorded_nonblocking": 5,
             "recorded_blocking": 1, "already_known": 1, "registered": 7, "complete": true,
             "modes_recorded": true}})json");
  std::string out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(listener scan +start: 7 listener\(s\), 6 recorded \(5 )"
                            R"(non-blocking, 1 blocking\), 1 already known, 7 registered; 2 )"
                            R"(scan\(s\))"))
      << out;
  result["listener_scan"]["last"] = json::parse(R"json({"reason": "start", "listeners": 4,
    "recorded": 0, "recorded_nonblocking": 0, "recorded_blocking": 0, "already_known": 0,
    "registered": 4, "complete": true, "modes_recorded": false})json");
  out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(listener scan +start: 4 listener\(s\), 0 recorded )"
                            R"(\(acceleration off: no mode is recorded\), 0 already known, 4 )"
                            R"(registered; 2 scan\(s\))"))
      << out;
}

TEST(PrintStatus, SaysDegradedWhenAPartIsOff) {
  json result = status_result();
  result["splicing"] = false;
  result["degraded"] = true;
  const std::string out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(datapath +splicing off, interception on \(inbound steering by )"
                            R"(sk_lookup\) \(degraded: .*\))"))
      << out;
}

TEST(PrintStatus, SaysNoSteeringWithoutInterception) {
  json result = status_result();
  result["interception"] = false;
  result["inbound_steering"] = "off";
  result["degraded"] = true;
  const std::string out = printed(print_status, result);
  EXPECT_TRUE(has_line(out, R"(datapath +splicing on, interception off \(degraded: .*\))")) << out;
  EXPECT_EQ(out.find("inbound steering"), std::string::npos) << out;
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

json workload_spec() {
  return json::parse(R"json({
    "name": "reviews-v1", "netns": "/var/run/netns/reviews-v1", "ips": ["198.18.0.10"],
    "mesh": "istio", "proxy_uid": 1337, "proxy_gid": 1337, "outbound_port": 15001,
    "inbound_port": 15006, "inbound_passthrough_sources": ["127.0.0.6", "::6"],
    "include_outbound_ports": [], "exclude_outbound_ports": [], "include_inbound_ports": [],
    "exclude_inbound_ports": [15008], "include_outbound_cidrs": [],
    "exclude_outbound_cidrs": [], "exclude_inbound_cidrs": [], "interface": "eth0",
    "labels": {"app": "reviews", "version": "v1"}, "acceleration": true,
    "exclude_acceleration_ports": [6379, 5432], "fast_path": false,
    "fast_path_exclude_ports": []})json");
}

TEST(PrintWorkload, ShowsLabelsAndAccelerationKeys) {
  const json result = {{"name", "reviews-v1"}, {"source", "live"}, {"spec", workload_spec()}};
  const std::string out = printed(print_workload, result);
  EXPECT_TRUE(has_line(out, R"(labels +app=reviews, version=v1)")) << out;
  EXPECT_TRUE(has_line(out, R"(acceleration +yes)")) << out;
  EXPECT_TRUE(has_line(out, R"(exclude_acceleration_ports +6379, 5432)")) << out;
  EXPECT_TRUE(has_line(out, R"(fast_path_exclude_ports +-)")) << out;
}

TEST(PrintWorkload, NoLabelsIsADash) {
  json spec = workload_spec();
  spec["labels"] = json::object();
  spec["acceleration"] = false;
  const std::string out =
      printed(print_workload, {{"name", "reviews-v1"}, {"source", "live"}, {"spec", spec}});
  EXPECT_TRUE(has_line(out, R"(labels +-)")) << out;
  EXPECT_TRUE(has_line(out, R"(acceleration +no)")) << out;
}

TEST(PrintWorkloadList, HasAccelerationAndLabelsColumns) {
  json quiet = workload_spec();
  quiet["name"] = "quiet";
  quiet["netns"] = "/var/run/netns/quiet";
  quiet["labels"] = json::object();
  quiet["acceleration"] = false;
  quiet["exclude_acceleration_ports"] = json::array();
  const json result = {{"total", 2},
                       {"draining", json::array()},
                       {"workloads",
                        {{{"name", "reviews-v1"},
                          {"source", "live"},
                          {"health", {{"state", "applied"}}},
                          {"spec", workload_spec()}},
                         {{"name", "quiet"},
                          {"source", "config"},
                          {"health", {{"state", "applied"}}},
                          {"spec", quiet}}}}};
  const std::string out = printed(print_workload_list, result);
  EXPECT_TRUE(
      has_line(out, R"(NAME +SOURCE +STATE +MESH +FAST PATH +ACCELERATION +NETNS +IPS +LABELS)"))
      << out;
  EXPECT_TRUE(has_line(out,
                       R"(reviews-v1 +live +applied +istio +no +yes, not 6379, 5432 +)"
                       R"(/var/run/netns/reviews-v1 +198\.18\.0\.10 +app=reviews, version=v1)"))
      << out;
  EXPECT_TRUE(has_line(out, R"(quiet +config +applied +istio +no +no +/var/run/netns/quiet +)"
                            R"(198\.18\.0\.10 +-)"))
      << out;
}

}  // namespace
}  // namespace meshlane::cli
