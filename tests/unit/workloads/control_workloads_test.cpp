// Workloads over the control socket: JSON <-> WorkloadConfig with the config parser's checks,
// the state file, and the registry's add/del/reload/start rules (with a fake apply and save).

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/text_file.hpp"
#include "config/config.hpp"
#include "workloads/registry.hpp"

#include "file_size_limit.hpp"
#include "temp_dir.hpp"
#include "test_support.hpp"

namespace meshlane::workloads {
namespace {

using control::ErrorCode;
using test::contains;
using test::TempDir;

WorkloadConfig from_json(const nlohmann::json& object) {
  auto workload = parse_workload_json(object, "", "params");
  EXPECT_TRUE(workload.ok()) << (workload.ok() ? "" : workload.error().message());
  return workload.ok() ? *workload : WorkloadConfig{};
}

std::string json_error(const nlohmann::json& object) {
  auto workload = parse_workload_json(object, "", "params");
  EXPECT_FALSE(workload.ok()) << "accepted " << object.dump();
  return workload.ok() ? "" : workload.error().message();
}

nlohmann::json minimal(const std::string& name = "a") {
  return {{"name", name}, {"netns", "/var/run/netns/" + name}, {"ips", {"198.18.0.10"}}};
}

// ---- JSON form -------------------------------------------------------------------------------

// The JSON form (workload add, the state file) shares the TOML readers: root is refused there too.
TEST(WorkloadJson, ProxyIdZeroIsRefused) {
  nlohmann::json uid0 = minimal();
  uid0["proxy_uid"] = 0;
  EXPECT_TRUE(contains(json_error(uid0), "params.proxy_uid: 0 (root) cannot be the proxy's id"));
  nlohmann::json gid0 = minimal();
  gid0["proxy_gid"] = 0;
  EXPECT_TRUE(contains(json_error(gid0), "params.proxy_gid: 0 (root) cannot be the proxy's id"));
}

TEST(WorkloadJson, MinimalObjectGetsThePreset) {
  const WorkloadConfig workload = from_json(minimal());
  EXPECT_EQ(workload.name, "a");
  EXPECT_EQ(workload.netns, "/var/run/netns/a");
  EXPECT_EQ(workload.mesh, MeshKind::kIstio);
  EXPECT_EQ(workload.outbound_port, 15001);
  EXPECT_EQ(workload.exclude_inbound_ports,
            (std::vector<std::uint16_t>{15008, 15020, 15021, 15090}));
  EXPECT_EQ(workload.inbound_passthrough_sources.size(), 2u);
}

TEST(WorkloadJson, OverridesReplaceThePresetLikeToml) {
  nlohmann::json object = minimal();
  object["mesh"] = "linkerd";
  object["exclude_inbound_ports"] = nlohmann::json::array();
  object["outbound_port"] = 4000;
  object["node_proxy"] = "[fd00::1]:15001";
  const WorkloadConfig workload = from_json(object);
  EXPECT_EQ(workload.mesh, MeshKind::kLinkerd);
  EXPECT_TRUE(workload.exclude_inbound_ports.empty());
  EXPECT_EQ(workload.outbound_port, 4000);
  EXPECT_EQ(workload.inbound_port, 4143);
  ASSERT_TRUE(workload.node_proxy_address.has_value());
  EXPECT_EQ(workload.node_proxy_port, 15001);
}

TEST(WorkloadJson, EveryKeyRoundTrips) {
  const nlohmann::json full = {
      {"name", "reviews-v1"},
      {"netns", "/proc/1/ns/net"},
      {"ips", {"198.18.0.10", "fd00::10"}},
      {"mesh", "custom"},
      {"proxy_uid", 1000},
      {"proxy_gid", 1001},
      {"outbound_port", 7001},
      {"inbound_port", 7006},
      {"inbound_passthrough_sources", {"127.0.0.6"}},
      {"include_outbound_ports", {80, 443}},
      {"exclude_outbound_ports", {3306}},
      {"include_inbound_ports", {8080}},
      {"exclude_inbound_ports", {9901}},
      {"include_outbound_cidrs", {"198.18.0.0/15", "fd00::/8"}},
      {"exclude_outbound_cidrs", {"198.18.0.50/32"}},
      {"exclude_inbound_cidrs", {"fd00:1::/64"}},
      {"node_proxy", "198.18.0.1:15001"},
      {"interface", "veth0"},
      {"labels", {{"app", "reviews"}, {"example.com/tier", "back-end_1"}}},
      {"acceleration", false},
      {"exclude_acceleration_ports", {6379}},
      {"fast_path", true},
      {"fast_path_exclude_ports", {9443, 8443}},
      {"dns_capture", true},
      {"dns_proxy_port", 5353},
  };
  const WorkloadConfig workload = from_json(full);
  EXPECT_EQ(workload_to_json(workload), full);
  EXPECT_EQ(from_json(workload_to_json(workload)), workload);
}

TEST(WorkloadJson, PresetValuesAreShownInFull) {
  const nlohmann::json shown = workload_to_json(from_json(minimal()));
  EXPECT_EQ(shown["mesh"], "istio");
  EXPECT_EQ(shown["proxy_uid"], 1337);
  EXPECT_EQ(shown["inbound_passthrough_sources"], nlohmann::json({"127.0.0.6", "::6"}));
  EXPECT_EQ(shown["interface"], "eth0");
  EXPECT_FALSE(shown.contains("node_proxy"));
  EXPECT_EQ(from_json(shown), from_json(minimal()));
}

TEST(WorkloadJson, DnsCaptureIsShownAndAMeshWithoutDnsProxyRoundTrips) {
  const nlohmann::json shown = workload_to_json(from_json(minimal()));
  EXPECT_EQ(shown["dns_capture"], false);
  EXPECT_EQ(shown["dns_proxy_port"], 15053);
  nlohmann::json linkerd = minimal();
  linkerd["mesh"] = "linkerd";
  const WorkloadConfig workload = from_json(linkerd);
  EXPECT_EQ(workload.dns_proxy_port, 0);
  // No port key for "none": the state file and workload.get must read back as they were.
  EXPECT_FALSE(workload_to_json(workload).contains("dns_proxy_port"));
  EXPECT_EQ(from_json(workload_to_json(workload)), workload);
}

TEST(WorkloadJson, FastPathIsOffByDefaultAndPartOfTheComparison) {
  const WorkloadConfig plain = from_json(minimal());
  EXPECT_FALSE(plain.fast_path);
  EXPECT_TRUE(plain.fast_path_exclude_ports.empty());
  const nlohmann::json shown = workload_to_json(plain);
  EXPECT_EQ(shown["fast_path"], false);
  EXPECT_EQ(shown["fast_path_exclude_ports"], nlohmann::json::array());

  nlohmann::json object = minimal();
  object["fast_path"] = true;
  const WorkloadConfig fast = from_json(object);
  EXPECT_TRUE(fast.fast_path);
  EXPECT_NE(fast, plain);
  object["fast_path_exclude_ports"] = {5432};
  const WorkloadConfig excluded = from_json(object);
  EXPECT_EQ(excluded.fast_path_exclude_ports, std::vector<std::uint16_t>{5432});
  EXPECT_NE(excluded, fast);
  EXPECT_EQ(from_json(workload_to_json(excluded)), excluded);
}

TEST(WorkloadJson, FastPathKeysAreValidatedLikeTheConfigFile) {
  nlohmann::json object = minimal();
  object["fast_path"] = "yes";
  EXPECT_TRUE(contains(json_error(object), "params.fast_path: expected a boolean"));
  object = minimal();
  object["fast_path_exclude_ports"] = {80, 0};
  EXPECT_EQ(json_error(object),
            "params.fast_path_exclude_ports[1]: 0 is out of range (allowed 1..65535)");
  object["fast_path_exclude_ports"] = {80, 80};
  EXPECT_TRUE(contains(json_error(object), "params.fast_path_exclude_ports[1]: duplicate port 80"));
  object["fast_path_exclude_ports"] = 80;
  EXPECT_TRUE(contains(json_error(object),
                       "params.fast_path_exclude_ports: expected an array of port numbers"));
}

TEST(WorkloadJson, NodeProxyWithoutPortRoundTrips) {
  nlohmann::json object = minimal();
  object["node_proxy"] = "fd00::1";
  const nlohmann::json shown = workload_to_json(from_json(object));
  EXPECT_EQ(shown["node_proxy"], "fd00::1");
  object["node_proxy"] = "198.18.0.1";
  EXPECT_EQ(workload_to_json(from_json(object))["node_proxy"], "198.18.0.1");
}

TEST(WorkloadJson, ErrorsUseTheConfigParsersMessagesWithJsonPaths) {
  nlohmann::json object = minimal();
  object["ips"] = {"198.18.0.10", "nope"};
  EXPECT_EQ(json_error(object), "params.ips[1]: \"nope\" is not an IPv4 or IPv6 address");
  object = minimal();
  object["outbound_port"] = 70000;
  EXPECT_EQ(json_error(object), "params.outbound_port: 70000 is out of range (allowed 1..65535)");
  object = minimal();
  object["outbound_port"] = 15001.0;
  EXPECT_EQ(json_error(object), "params.outbound_port: expected an integer 1..65535, got float");
  object = minimal();
  object["colour"] = "blue";
  EXPECT_TRUE(contains(json_error(object), "params.colour: unknown key (known keys: name, netns"));
  object = minimal();
  object["mesh"] = "consul";
  EXPECT_EQ(json_error(object),
            "params.mesh: unknown mesh \"consul\" (allowed: istio, linkerd, custom)");
  object = minimal();
  object["exclude_outbound_cidrs"] = {"10.0.0.1/8"};
  EXPECT_TRUE(contains(json_error(object),
                       "params.exclude_outbound_cidrs[0]: \"10.0.0.1/8\" has "
                       "host bits set"));
}

TEST(WorkloadJson, RequiredKeysAreNamed) {
  EXPECT_EQ(json_error({{"name", "a"}, {"ips", {"198.18.0.1"}}}), "params.netns: required");
  nlohmann::json custom = minimal();
  custom["mesh"] = "custom";
  EXPECT_EQ(json_error(custom), "params.proxy_uid: required when mesh = \"custom\"");
  EXPECT_EQ(json_error(nlohmann::json::object()), "params.name: required");
}

TEST(WorkloadJson, JsonOnlyShapesAreRejected) {
  nlohmann::json object = minimal();
  object["interface"] = nullptr;
  EXPECT_EQ(json_error(object),
            "params.interface: null is not allowed (leave the key out to keep its default)");
  object = minimal();
  object["proxy_uid"] = 18446744073709551615ull;
  EXPECT_EQ(json_error(object), "params.proxy_uid: 18446744073709551615 is out of range");
  object = minimal();
  object["ips"] = {{{"a", {{"b", {{"c", {{"d", {{"e", {{"f", {{"g", {{"h", 1}}}}}}}}}}}}}}}}};
  EXPECT_TRUE(contains(json_error(object), "nested too deeply"));
  EXPECT_EQ(json_error(nlohmann::json::array()), "params: expected a JSON object, got array");
  object = minimal();
  object["ips"] = {{{"x", 1}}};
  EXPECT_TRUE(contains(json_error(object), "params.ips[0]: expected an address string"));
}

TEST(WorkloadJson, SourceNamePrefixesErrors) {
  auto workload =
      parse_workload_json({{"name", "a"}}, "/var/lib/meshlane/workloads.json", "workloads[2]");
  ASSERT_FALSE(workload.ok());
  EXPECT_EQ(workload.error().message(),
            "/var/lib/meshlane/workloads.json: workloads[2].netns: required");
}

// ---- State file ------------------------------------------------------------------------------

TEST(WorkloadState, MissingFileMeansNoLiveWorkloads) {
  TempDir dir;
  auto loaded = load_live_workloads(dir.path() + "/never-created");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_TRUE(loaded->empty());
}

TEST(WorkloadState, SaveCreatesTheDirectoryAndLoadReadsItBack) {
  TempDir dir;
  const std::string state_dir = dir.path() + "/var/lib/meshlane";
  const std::vector<WorkloadConfig> saved = {from_json(minimal("a")), from_json(minimal("b"))};
  ASSERT_TRUE(save_live_workloads(state_dir, saved).ok());
  struct stat st {};
  ASSERT_EQ(::stat(state_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(workload_state_path(state_dir).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = load_live_workloads(state_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0], saved[0]);
  EXPECT_EQ((*loaded)[1], saved[1]);
  // No temporary file is left next to it.
  EXPECT_FALSE(std::filesystem::exists(workload_state_path(state_dir) + ".tmp"));
}

TEST(WorkloadState, SaveReplacesTheWholeFile) {
  TempDir dir;
  ASSERT_TRUE(
      save_live_workloads(dir.path(), {from_json(minimal("a")), from_json(minimal("b"))}).ok());
  ASSERT_TRUE(save_live_workloads(dir.path(), {}).ok());
  auto loaded = load_live_workloads(dir.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

TEST(WorkloadState, AtomicWriteLeavesTheOldFileWhenItCannotWrite) {
  TempDir dir;
  const std::string path = dir.path() + "/file";
  ASSERT_TRUE(write_file_atomically(path, "old\n").ok());
  {
    // Writes past 2 bytes fail: the temporary file is made but cannot be filled, so the write
    // fails before touching `path` (the temporary name is unpredictable, nothing can take it).
    test::FileSizeLimit limit(2);
    EXPECT_FALSE(write_file_atomically(path, "new\n").ok());
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1)
      << "the temporary file was left behind";
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "old\n");
}

TEST(WorkloadState, CorruptFilesAreErrorsNamingTheFile) {
  TempDir dir;
  const std::string path = workload_state_path(dir.path());
  auto load_error = [&](const std::string& text) {
    std::ofstream(path) << text;
    auto loaded = load_live_workloads(dir.path());
    EXPECT_FALSE(loaded.ok()) << text;
    return loaded.ok() ? std::string() : loaded.error().message();
  };
  EXPECT_TRUE(contains(load_error("{"), path + ": not a JSON object (fix or remove the file"));
  EXPECT_TRUE(contains(load_error(R"({"v":2,"workloads":[]})"), "\"v\" is not 1"));
  EXPECT_TRUE(contains(load_error(R"({"v":1})"), "\"workloads\" is not an array"));
  EXPECT_TRUE(contains(load_error(R"({"v":1,"workloads":[{"name":"a"}]})"),
                       path + ": workloads[0].netns: required"));
  const std::string twice =
      "{\"v\":1,\"workloads\":[" + minimal().dump() + "," + minimal().dump() + "]}";
  EXPECT_TRUE(contains(load_error(twice), "workloads[1]: duplicate name \"a\""));
}

// ---- Registry --------------------------------------------------------------------------------

// Records what was applied and saved; can be told to fail.
struct Fakes {
  std::vector<std::vector<std::string>> applied;  // names, per apply call
  std::vector<std::vector<std::string>> saved;
  bool fail_apply = false;
  bool fail_save = false;
  std::string fail_apply_of;  // fail any apply that includes this workload
  // What each netns path names (two paths to one namespace share an id); others: unknown.
  std::map<std::string, NetnsId> namespaces;

  static std::vector<std::string> names(const std::vector<WorkloadConfig>& workloads) {
    std::vector<std::string> result;
    for (const auto& workload : workloads) {
      result.push_back(workload.name);
    }
    return result;
  }

  WorkloadRegistry registry() {
    return WorkloadRegistry(
        [this](const std::vector<WorkloadConfig>& desired) -> Status {
          auto list = names(desired);
          if (fail_apply || (!fail_apply_of.empty() &&
                             std::find(list.begin(), list.end(), fail_apply_of) != list.end())) {
            return make_error("apply refused");
          }
          applied.push_back(list);
          return {};
        },
        [this](const std::vector<WorkloadConfig>& live) -> Status {
          if (fail_save) {
            return make_error(EROFS, "cannot save");
          }
          saved.push_back(names(live));
          return {};
        },
        [this](const std::string& netns_path) -> std::optional<NetnsId> {
          auto found = namespaces.find(netns_path);
          return found == namespaces.end() ? std::nullopt : std::optional<NetnsId>(found->second);
        });
  }
};

Status always_ok(const WorkloadConfig&) { return {}; }

using Names = std::vector<std::string>;

TEST(WorkloadRegistry, AddAppliesConfigPlusLiveAndSaves) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({from_json(minimal("conf"))}, {}, always_ok).ok());
  EXPECT_EQ(fakes.applied.back(), Names({"conf"}));
  EXPECT_TRUE(fakes.saved.empty());  // nothing dropped: the state file is left alone

  auto outcome = registry.add(from_json(minimal("b")));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome.value(), AddOutcome::kAdded);
  EXPECT_EQ(fakes.applied.back(), Names({"conf", "b"}));
  EXPECT_EQ(fakes.saved.back(), Names({"b"}));
  EXPECT_EQ(registry.live_count(), 1u);
  EXPECT_EQ(registry.find("b").source, WorkloadSource::kLive);
  EXPECT_EQ(registry.find("conf").source, WorkloadSource::kConfig);
  EXPECT_EQ(registry.find("zzz").workload, nullptr);
}

TEST(WorkloadRegistry, AddIsIdempotentAndReplacesOnChange) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({}, {}, always_ok).ok());
  ASSERT_EQ(registry.add(from_json(minimal("a"))).value(), AddOutcome::kAdded);
  const std::size_t applies = fakes.applied.size();
  EXPECT_EQ(registry.add(from_json(minimal("a"))).value(), AddOutcome::kUnchanged);
  EXPECT_EQ(fakes.applied.size(), applies);  // nothing re-applied
  nlohmann::json changed = minimal("a");
  changed["exclude_outbound_ports"] = {5432};
  EXPECT_EQ(registry.add(from_json(changed)).value(), AddOutcome::kReplaced);
  EXPECT_EQ(registry.find("a").workload->exclude_outbound_ports,
            (std::vector<std::uint16_t>{5432}));
  EXPECT_EQ(registry.live_count(), 1u);
}

TEST(WorkloadRegistry, ConfigWorkloadsCannotBeChangedLive) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({from_json(minimal("conf"))}, {}, always_ok).ok());
  auto add = registry.add(from_json(minimal("conf")));
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code, ErrorCode::kConflict);
  auto del = registry.remove("conf", false);
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code, ErrorCode::kConflict);
}

TEST(WorkloadRegistry, SameNetnsAsAnotherWorkloadIsAConflict) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({from_json(minimal("conf"))}, {}, always_ok).ok());
  nlohmann::json object = minimal("b");
  object["netns"] = "/var/run/netns/conf";
  auto add = registry.add(from_json(object));
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(contains(add.error().message, "already the namespace of workload conf"));
}

TEST(WorkloadRegistry, AnotherPathToAWorkloadsNamespaceIsAConflict) {
  Fakes fakes;
  // /proc/4242/ns/net of a process in conf's pod, and a bind mount of it: one namespace.
  fakes.namespaces = {{"/var/run/netns/conf", NetnsId{4, 4026532712}},
                      {"/proc/4242/ns/net", NetnsId{4, 4026532712}},
                      {"/run/pods/b-alias", NetnsId{4, 4026532712}},
                      {"/var/run/netns/c", NetnsId{4, 4026532999}}};
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({from_json(minimal("conf"))}, {}, always_ok).ok());
  for (const char* alias : {"/proc/4242/ns/net", "/run/pods/b-alias"}) {
    nlohmann::json object = minimal("b");
    object["netns"] = alias;
    auto add = registry.add(from_json(object));
    ASSERT_FALSE(add.ok()) << alias;
    EXPECT_EQ(add.error().code, ErrorCode::kConflict) << alias;
    EXPECT_EQ(add.error().message, "netns " + std::string(alias) +
                                       " is already the namespace of workload conf (its netns "
                                       "/var/run/netns/conf is the same network namespace)");
  }
  EXPECT_EQ(registry.live_count(), 0u);
  EXPECT_TRUE(fakes.saved.empty());
  // A live workload's namespace counts as well, and another namespace is no conflict.
  ASSERT_TRUE(registry.add(from_json(minimal("c"))).ok());
  nlohmann::json twin = minimal("d");
  twin["netns"] = "/var/run/netns/c";
  EXPECT_EQ(registry.add(from_json(twin)).error().code, ErrorCode::kConflict);
  // Re-adding a workload under its own name is no conflict with itself.
  nlohmann::json moved = minimal("c");
  moved["exclude_outbound_ports"] = {5432};
  EXPECT_EQ(registry.add(from_json(moved)).value(), AddOutcome::kReplaced);
}

TEST(WorkloadRegistry, FailedApplyChangesNothing) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({}, {}, always_ok).ok());
  fakes.fail_apply = true;
  auto add = registry.add(from_json(minimal("a")));
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code, ErrorCode::kApplyFailed);
  EXPECT_EQ(add.error().message, "apply refused");
  EXPECT_EQ(registry.live_count(), 0u);
  EXPECT_TRUE(fakes.saved.empty());
}

TEST(WorkloadRegistry, FailedSaveUndoesTheApply) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry.start({}, {}, always_ok).ok());
  fakes.fail_save = true;
  auto add = registry.add(from_json(minimal("a")));
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code, ErrorCode::kApplyFailed);
  EXPECT_TRUE(contains(add.error().message, "the change was undone"));
  EXPECT_EQ(registry.live_count(), 0u);
  ASSERT_GE(fakes.applied.size(), 2u);
  EXPECT_EQ(fakes.applied.back(), Names{});  // the previous state, re-applied
}

TEST(WorkloadRegistry, DeleteRemovesAndSaves) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(
      registry.start({}, {from_json(minimal("a")), from_json(minimal("b"))}, always_ok).ok());
  auto del = registry.remove("a", false);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del.value(), DeleteOutcome::kDeleted);
  EXPECT_EQ(fakes.applied.back(), Names({"b"}));
  EXPECT_EQ(fakes.saved.back(), Names({"b"}));
  auto again = registry.remove("a", false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  auto tolerant = registry.remove("a", true);
  ASSERT_TRUE(tolerant.ok());
  EXPECT_EQ(tolerant.value(), DeleteOutcome::kAbsent);
}

TEST(WorkloadRegistry, ListHasConfigInFileOrderThenLiveByName) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(registry
                  .start({from_json(minimal("z")), from_json(minimal("y"))},
                         {from_json(minimal("c")), from_json(minimal("b"))}, always_ok)
                  .ok());
  Names names;
  for (const auto& entry : registry.list()) {
    names.push_back(entry.workload->name + ":" + to_string(entry.source));
  }
  EXPECT_EQ(names, Names({"z:config", "y:config", "b:live", "c:live"}));
  EXPECT_EQ(Fakes::names(registry.combined()), Names({"z", "y", "b", "c"}));
}

TEST(WorkloadRegistry, StartDropsLiveWorkloadsThatCannotBeApplied) {
  Fakes fakes;
  auto registry = fakes.registry();
  auto gone = [](const WorkloadConfig& w) -> Status {
    return w.name == "gone" ? Status(make_error(ENOENT, "no netns")) : Status();
  };
  ASSERT_TRUE(
      registry
          .start({from_json(minimal("conf"))},
                 {from_json(minimal("conf")), from_json(minimal("gone")), from_json(minimal("ok"))},
                 gone)
          .ok());
  EXPECT_EQ(fakes.applied.back(), Names({"conf", "ok"}));
  EXPECT_EQ(fakes.saved.back(), Names({"ok"}));  // rewritten without the dropped ones
  EXPECT_EQ(registry.find("conf").source, WorkloadSource::kConfig);
}

TEST(WorkloadRegistry, StartFallsBackToTheConfigAlone) {
  Fakes fakes;
  auto registry = fakes.registry();
  fakes.fail_apply_of = "clash";
  ASSERT_TRUE(
      registry.start({from_json(minimal("conf"))}, {from_json(minimal("clash"))}, always_ok).ok());
  EXPECT_EQ(fakes.applied.back(), Names({"conf"}));
  EXPECT_EQ(registry.live_count(), 0u);
  EXPECT_EQ(fakes.saved.back(), Names{});
  // The config's own failure is the daemon's failure.
  Fakes broken;
  auto failing = broken.registry();
  broken.fail_apply = true;
  EXPECT_FALSE(failing.start({from_json(minimal("conf"))}, {}, always_ok).ok());
}

TEST(WorkloadRegistry, ReloadKeepsLiveWorkloadsAndRejectsNameClashes) {
  Fakes fakes;
  auto registry = fakes.registry();
  ASSERT_TRUE(
      registry.start({from_json(minimal("old"))}, {from_json(minimal("live"))}, always_ok).ok());
  ASSERT_TRUE(registry.reload({from_json(minimal("new"))}).ok());
  EXPECT_EQ(fakes.applied.back(), Names({"new", "live"}));
  Status clash = registry.reload({from_json(minimal("live"))});
  ASSERT_FALSE(clash.ok());
  EXPECT_TRUE(contains(clash.error().message(), "meshlanectl workload del live"));
  fakes.fail_apply = true;
  EXPECT_FALSE(registry.reload({from_json(minimal("other"))}).ok());
  EXPECT_EQ(registry.find("new").source, WorkloadSource::kConfig);  // unchanged
  EXPECT_EQ(registry.find("other").workload, nullptr);
}

}  // namespace
}  // namespace meshlane::workloads
