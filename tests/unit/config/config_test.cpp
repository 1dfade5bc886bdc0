#include "config/config.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace meshlane {
namespace {

using test::contains;
using test::kSource;
using test::parse_error;
using test::parse_ok;

void expect_default(const Config& config) {
  const Config defaults;
  EXPECT_EQ(config.daemon.bpffs_dir, defaults.daemon.bpffs_dir);
  EXPECT_EQ(config.daemon.cgroup, defaults.daemon.cgroup);
  EXPECT_EQ(config.daemon.log_level, defaults.daemon.log_level);
  EXPECT_EQ(config.daemon.socket, defaults.daemon.socket);
  EXPECT_EQ(config.daemon.socket_mode, defaults.daemon.socket_mode);
  EXPECT_EQ(config.daemon.socket_group, defaults.daemon.socket_group);
  EXPECT_EQ(config.daemon.socket_read_group, defaults.daemon.socket_read_group);
  EXPECT_EQ(config.daemon.socket_write_group, defaults.daemon.socket_write_group);
  EXPECT_EQ(config.daemon.state_dir, defaults.daemon.state_dir);
  EXPECT_EQ(config.acceleration.enabled, defaults.acceleration.enabled);
  EXPECT_EQ(config.acceleration.sockhash_max_entries, defaults.acceleration.sockhash_max_entries);
  EXPECT_EQ(config.acceleration.include_ports, defaults.acceleration.include_ports);
  EXPECT_EQ(config.acceleration.exclude_ports, defaults.acceleration.exclude_ports);
  EXPECT_EQ(config.maps, defaults.maps);
  EXPECT_EQ(config.metrics.listen, "");
  EXPECT_FALSE(config.metrics.listen_address.has_value());
  EXPECT_FALSE(config.metrics.allow_non_loopback);
  EXPECT_TRUE(config.workloads.empty());
}

TEST(ParseConfig, EmptyTextGivesDefaults) {
  const Config config = parse_ok("");
  expect_default(config);
  EXPECT_EQ(config.daemon.bpffs_dir, "/sys/fs/bpf/meshlane");
  EXPECT_EQ(config.daemon.cgroup, "");
  EXPECT_EQ(config.daemon.log_level, "info");
  EXPECT_TRUE(config.acceleration.enabled);
  EXPECT_EQ(config.acceleration.sockhash_max_entries, 65536u);
}

TEST(ParseConfig, ControlSocketDefaults) {
  const Config config = parse_ok("");
  EXPECT_EQ(config.daemon.socket, "/run/meshlane/meshlane.sock");
  EXPECT_EQ(config.daemon.socket_mode, 0660u);
  EXPECT_EQ(config.daemon.socket_group, "");
  EXPECT_EQ(config.daemon.state_dir, "/var/lib/meshlane");
}

TEST(ParseConfig, ControlSocketKeysAreParsed) {
  const Config config = parse_ok(R"(
[daemon]
socket = "/tmp/ml/ctl.sock"
socket_mode = "0600"
socket_group = "meshlane-ops"
state_dir = "/tmp/ml/state"
)");
  EXPECT_EQ(config.daemon.socket, "/tmp/ml/ctl.sock");
  EXPECT_EQ(config.daemon.socket_mode, 0600u);
  EXPECT_EQ(config.daemon.socket_group, "meshlane-ops");
  EXPECT_EQ(config.daemon.state_dir, "/tmp/ml/state");
}

TEST(ParseConfig, SocketModeAsOctalStringOrInteger) {
  EXPECT_EQ(parse_ok("[daemon]\nsocket_mode = 0o640\n").daemon.socket_mode, 0640u);
  EXPECT_EQ(parse_ok("[daemon]\nsocket_mode = \"666\"\n").daemon.socket_mode, 0666u);
  EXPECT_EQ(parse_ok("[daemon]\nsocket_mode = \"0\"\n").daemon.socket_mode, 0u);
  EXPECT_EQ(parse_ok("[daemon]\nsocket_mode = 0o777\n").daemon.socket_mode, 0777u);
}

TEST(ParseConfig, BadSocketModeIsRejected) {
  // 660 written in decimal is 0o1224: beyond the permission bits.
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = 660\n"),
                       "meshlane.toml:2:15: daemon.socket_mode: 660 is not a file mode (allowed: "
                       "permission bits 0..0777"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = \"0689\"\n"),
                       "daemon.socket_mode: \"0689\" is not a file mode"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = \"4755\"\n"), "is not a file mode"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = \"\"\n"), "is not a file mode"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = -1\n"), "is not a file mode"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_mode = true\n"),
                       "daemon.socket_mode: expected a file mode, e.g. \"0660\" or 0o660, got "
                       "boolean"));
}

TEST(ParseConfig, BadSocketPathIsRejected) {
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket = \"run/ml.sock\"\n"),
                       "daemon.socket: \"run/ml.sock\" is not an absolute path"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket = \"\"\n"), "is not an absolute path"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket = \"/run/meshlane/\"\n"),
                       "cannot name a Unix socket"));
  const std::string long_path = "/" + std::string(107, 'a');
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket = \"" + long_path + "\"\n"),
                       "cannot name a Unix socket (at most 107 bytes"));
  EXPECT_EQ(parse_ok("[daemon]\nsocket = \"" + long_path.substr(0, 107) + "\"\n").daemon.socket,
            long_path.substr(0, 107));
}

TEST(ParseConfig, BadSocketGroupIsRejected) {
  EXPECT_EQ(parse_ok("[daemon]\nsocket_group = \"1234\"\n").daemon.socket_group, "1234");
  EXPECT_EQ(parse_ok("[daemon]\nsocket_group = \"\"\n").daemon.socket_group, "");
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_group = \"ops team\"\n"),
                       "daemon.socket_group: \"ops team\" is not a group name or gid"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_group = \"-x\"\n"), "is not a group name"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_group = \"" + std::string(33, 'g') + "\"\n"),
                       "is not a group name"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_group = 100\n"),
                       "daemon.socket_group: expected a string, got integer"));
}

TEST(ParseConfig, SocketReadAndWriteGroups) {
  const Config defaults;
  EXPECT_EQ(defaults.daemon.socket_read_group, "");
  EXPECT_EQ(defaults.daemon.socket_write_group, "");
  const Config both =
      parse_ok("[daemon]\nsocket_read_group = \"ml-read\"\nsocket_write_group = \"1234\"\n");
  EXPECT_EQ(both.daemon.socket_read_group, "ml-read");
  EXPECT_EQ(both.daemon.socket_write_group, "1234");
  EXPECT_EQ(both.daemon.socket_group, "");
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_read_group = \"ops team\"\n"),
                       "daemon.socket_read_group: \"ops team\" is not a group name or gid"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_write_group = 7\n"),
                       "daemon.socket_write_group: expected a string, got integer"));
}

// The old key still works, as the write group (it granted every method), whatever the order.
TEST(ParseConfig, SocketGroupIsTheDeprecatedNameOfTheWriteGroup) {
  const Config old = parse_ok("[daemon]\nsocket_group = \"meshlane-ops\"\n");
  EXPECT_EQ(old.daemon.socket_write_group, "meshlane-ops");
  EXPECT_EQ(old.daemon.socket_read_group, "");
  EXPECT_EQ(old.daemon.socket_group, "meshlane-ops");
  const Config with_readers =
      parse_ok("[daemon]\nsocket_group = \"ops\"\nsocket_read_group = \"viewers\"\n");
  EXPECT_EQ(with_readers.daemon.socket_write_group, "ops");
  EXPECT_EQ(with_readers.daemon.socket_read_group, "viewers");
  EXPECT_EQ(parse_ok("[daemon]\nsocket_group = \"\"\n").daemon.socket_write_group, "");
  // Both names at once: which one was meant is unclear, so neither is guessed.
  EXPECT_EQ(parse_error("[daemon]\nsocket_write_group = \"a\"\nsocket_group = \"b\"\n"),
            "meshlane.toml:3:16: daemon.socket_group: the old name of daemon.socket_write_group, "
            "which is set too: keep only socket_write_group (and socket_read_group for "
            "read-only callers)");
  EXPECT_TRUE(contains(parse_error("[daemon]\nsocket_group = \"b\"\nsocket_write_group = \"a\"\n"),
                       "daemon.socket_group: the old name"));
}

TEST(ParseConfig, RelativeStateDirIsRejected) {
  EXPECT_TRUE(contains(parse_error("[daemon]\nstate_dir = \"var/lib/meshlane\"\n"),
                       "meshlane.toml:2:13: daemon.state_dir: \"var/lib/meshlane\" is not an "
                       "absolute path (e.g. \"/var/lib/meshlane\")"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nstate_dir = \"\"\n"), "is not an absolute path"));
}

TEST(ParseConfig, EmptyTablesGiveDefaults) {
  expect_default(parse_ok("[daemon]\n[acceleration]\n"));
}

TEST(ParseConfig, EveryKeyIsParsed) {
  const Config config = parse_ok(R"(
[daemon]
bpffs_dir = "/sys/fs/bpf/test"
cgroup = "meshlane-test"
log_level = "debug"

[acceleration]
enabled = false
splice_blocking_sockets = true
sockhash_max_entries = 1024
include_ports = [8080, 9090]
exclude_ports = [22]
max_unread_bytes = 65536
adaptive_splicing = false
leave_spinning_readers = false
spinning_reader_per_mille = 5
)");
  EXPECT_EQ(config.daemon.bpffs_dir, "/sys/fs/bpf/test");
  EXPECT_EQ(config.daemon.cgroup, "meshlane-test");
  EXPECT_EQ(config.daemon.log_level, "debug");
  EXPECT_FALSE(config.acceleration.enabled);
  EXPECT_TRUE(config.acceleration.splice_blocking_sockets);
  EXPECT_EQ(config.acceleration.sockhash_max_entries, 1024u);
  EXPECT_EQ(config.acceleration.include_ports, (std::vector<std::uint16_t>{8080, 9090}));
  EXPECT_EQ(config.acceleration.exclude_ports, (std::vector<std::uint16_t>{22}));
  EXPECT_EQ(config.acceleration.max_unread_bytes, 65536u);
  EXPECT_FALSE(config.acceleration.adaptive_splicing);
  EXPECT_FALSE(config.acceleration.leave_spinning_readers);
  EXPECT_EQ(config.acceleration.spinning_reader_per_mille, 5u);
}

TEST(ParseConfig, MissingKeysKeepDefaults) {
  const Config config = parse_ok("[acceleration]\nexclude_ports = [22]\n");
  EXPECT_EQ(config.daemon.bpffs_dir, "/sys/fs/bpf/meshlane");
  EXPECT_TRUE(config.acceleration.enabled);
  EXPECT_TRUE(config.acceleration.adaptive_splicing);
  EXPECT_TRUE(config.acceleration.leave_spinning_readers);
  EXPECT_EQ(config.acceleration.spinning_reader_per_mille, 90u);
  EXPECT_EQ(config.acceleration.exclude_ports, (std::vector<std::uint16_t>{22}));
}

TEST(ParseConfig, DottedKeysAndInlineTablesAreEquivalent) {
  const Config dotted = parse_ok("daemon.log_level = \"warn\"\n");
  EXPECT_EQ(dotted.daemon.log_level, "warn");
  const Config inline_table = parse_ok("acceleration = { enabled = false }\n");
  EXPECT_FALSE(inline_table.acceleration.enabled);
}

TEST(ParseConfig, RangeLimitsAreAccepted) {
  const Config config =
      parse_ok("[acceleration]\nsockhash_max_entries = 16777216\ninclude_ports = [1, 65535]\n");
  EXPECT_EQ(config.acceleration.sockhash_max_entries, 16777216u);
  EXPECT_EQ(config.acceleration.include_ports, (std::vector<std::uint16_t>{1, 65535}));
  EXPECT_EQ(
      parse_ok("[acceleration]\nsockhash_max_entries = 1\n").acceleration.sockhash_max_entries, 1u);
}

TEST(ParseConfig, EveryLogLevelIsAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    EXPECT_EQ(parse_ok(std::string("[daemon]\nlog_level = \"") + level + "\"\n").daemon.log_level,
              level);
  }
}

// Found by fuzz_config: toml++ 3.3 runs into __builtin_unreachable() when it asks whether some
// non-ASCII characters are whitespace (upstream #190, #295), so it is only ever given ASCII.
TEST(ParseConfig, NonAsciiOutsideStringsIsASyntaxError) {
  EXPECT_EQ(parse_error("\xc3\xac"),
            "meshlane.toml:1:1: TOML syntax error: a non-ASCII character outside a quoted string "
            "or a comment (keys and non-string values are ASCII)");
  EXPECT_TRUE(contains(parse_error("[daemon]\ncaf\xc3\xa9 = 1\n"),
                       "meshlane.toml:2:4: TOML syntax error: a non-ASCII character outside"));
  EXPECT_TRUE(contains(parse_error("[daemon]\nlog_level = \"info\" \xc3\xa9\n"),
                       "meshlane.toml:2:20: TOML syntax error: a non-ASCII character outside"));
  EXPECT_TRUE(contains(parse_error("[daemon]\ncgroup = '\xc3\xa9'\n"),
                       "meshlane.toml:2:11: TOML syntax error: a non-ASCII character in a "
                       "single-quoted string (not supported: use a double-quoted string)"));
  EXPECT_TRUE(contains(parse_error("# \xc3\xa9\xff\n"),
                       "meshlane.toml:1:4: TOML syntax error: the file is not valid UTF-8"));
  EXPECT_TRUE(contains(parse_error("# \xed\xa0\x80\n"), "not valid UTF-8"));  // a surrogate
  EXPECT_TRUE(contains(parse_error("# \xc0\xaf\n"), "not valid UTF-8"));      // overlong
  for (const char* backslash_before_non_ascii : {"[daemon]\ncgroup = \"a\\\xef\xbb\xaf\"\n",
                                                 "[daemon]\ncgroup = \"\"\"a\\\xc3\xa9\"\"\"\n"}) {
    EXPECT_TRUE(contains(parse_error(backslash_before_non_ascii),
                         "TOML syntax error: a backslash before a non-ASCII character"));
  }
  // toml++ reads ahead through what looks like a string on its error paths: still no UB, an
  // ordinary error (this input is in the fuzz corpus).
  EXPECT_TRUE(contains(parse_error("m =-\"x\xef\xb9\xbf"
                                   "3_mT\"\n"),
                       "TOML syntax error"));
}

TEST(ParseConfig, NonAsciiInDoubleQuotedStringsAndCommentsIsKept) {
  const Config config = parse_ok(
      "\xEF\xBB\xBF# caf\xc3\xa9 \xd0\xb6 \xf0\x9f\x98\x80\n[daemon] # \xc2\xa7\n"
      "cgroup = \"caf\xc3\xa9 \xd0\xb6 \\\" \xf0\x9f\x98\x80\"\n"
      "bpffs_dir = \"\"\"/sys/fs/bpf/\\\n    \xc2\xa7\"\"\"\n"
      "log_level = \"\"\"\\\n  debug\"\"\"\n"
      "state_dir = '''/var/lib/x\n'''\n"
      "socket = \"\"\"/run/\"\xc3\xa9\"\"\"\"\n");
  EXPECT_EQ(config.daemon.cgroup, "caf\xc3\xa9 \xd0\xb6 \" \xf0\x9f\x98\x80");
  EXPECT_EQ(config.daemon.bpffs_dir, "/sys/fs/bpf/\xc2\xa7");
  EXPECT_EQ(config.daemon.log_level, "debug");
  EXPECT_EQ(config.daemon.state_dir, "/var/lib/x\n");
  EXPECT_EQ(config.daemon.socket, "/run/\"\xc3\xa9\"");
}

TEST(ParseConfig, UnknownTableIsRejected) {
  const std::string message = parse_error("[daemon]\n\n[servers]\nport = 1\n");
  EXPECT_TRUE(contains(message, "meshlane.toml:3:"));
  EXPECT_TRUE(contains(message,
                       "servers: unknown table (known tables: daemon, acceleration, maps, metrics, "
                       "kubernetes, workload)"));
}

TEST(ParseConfig, KubernetesTable) {
  const Config defaults = parse_ok("");
  EXPECT_EQ(defaults.kubernetes.cni_cache_dir, "");
  EXPECT_EQ(defaults.kubernetes.cni_conf_dir, "/etc/cni/net.d");
  const Config set =
      parse_ok("[kubernetes]\ncni_cache_dir = \"/var/lib/cni\"\ncni_conf_dir = \"/host/net.d\"\n");
  EXPECT_EQ(set.kubernetes.cni_cache_dir, "/var/lib/cni");
  EXPECT_EQ(set.kubernetes.cni_conf_dir, "/host/net.d");
  EXPECT_EQ(parse_ok("[kubernetes]\ncni_cache_dir = \"\"\n").kubernetes.cni_cache_dir, "");
  EXPECT_TRUE(contains(parse_error("[kubernetes]\ncni_cache_dir = \"var/lib/cni\"\n"),
                       "kubernetes.cni_cache_dir: \"var/lib/cni\" is not an absolute path"));
  EXPECT_TRUE(
      contains(parse_error("[kubernetes]\ncni_conf_dir = \"\"\n"), "kubernetes.cni_conf_dir"));
  EXPECT_TRUE(contains(parse_error("[kubernetes]\ncache = 1\n"), "kubernetes.cache: unknown key"));
}

TEST(ParseConfig, UnknownTopLevelKeyIsRejected) {
  EXPECT_TRUE(contains(parse_error("log_level = \"info\"\n"),
                       "meshlane.toml:1:1: log_level: unknown table"));
}

TEST(ParseConfig, UnknownKeyNamesFileLineColumnAndKey) {
  const std::string message = parse_error("[daemon]\nlog_level = \"info\"\ncolour = \"blue\"\n");
  EXPECT_EQ(message,
            "meshlane.toml:3:1: daemon.colour: unknown key (known keys: bpffs_dir, cgroup, "
            "log_level, on_missing_feature, socket, socket_mode, socket_read_group, "
            "socket_write_group, socket_group, state_dir, allow_host_netns, decision_log, "
            "inbound_steering)");
}

TEST(ParseConfig, DecisionLog) {
  EXPECT_EQ(parse_ok("").daemon.decision_log, 0u);
  EXPECT_EQ(parse_ok("[daemon]\ndecision_log = 4096\n").daemon.decision_log, 4096u);
  EXPECT_TRUE(contains(parse_error("[daemon]\ndecision_log = -1\n"),
                       "meshlane.toml:2:16: daemon.decision_log:"));
  EXPECT_TRUE(contains(parse_error("[daemon]\ndecision_log = 1000001\n"), "daemon.decision_log:"));
}

TEST(ParseConfig, InboundSteering) {
  EXPECT_EQ(parse_ok("").daemon.inbound_steering, "sk_lookup");
  EXPECT_EQ(parse_ok("[daemon]\ninbound_steering = \"tc\"\n").daemon.inbound_steering, "tc");
  EXPECT_EQ(parse_ok("[daemon]\ninbound_steering = \"sk_lookup\"\n").daemon.inbound_steering,
            "sk_lookup");
  const std::string message = parse_error("[daemon]\ninbound_steering = \"iptables\"\n");
  EXPECT_TRUE(contains(message, "meshlane.toml:2:20: daemon.inbound_steering:")) << message;
  EXPECT_TRUE(contains(message, "sk_lookup")) << message;
}

TEST(ParseConfig, AllowHostNetns) {
  EXPECT_FALSE(parse_ok("").daemon.allow_host_netns);
  EXPECT_TRUE(parse_ok("[daemon]\nallow_host_netns = true\n").daemon.allow_host_netns);
  EXPECT_FALSE(parse_ok("[daemon]\nallow_host_netns = false\n").daemon.allow_host_netns);
  EXPECT_TRUE(contains(parse_error("[daemon]\nallow_host_netns = \"yes\"\n"),
                       "meshlane.toml:2:20: daemon.allow_host_netns:"));
}

TEST(ParseConfig, OnMissingFeature) {
  EXPECT_EQ(parse_ok("").daemon.on_missing_feature, "refuse");
  EXPECT_EQ(parse_ok("[daemon]\non_missing_feature = \"degrade\"\n").daemon.on_missing_feature,
            "degrade");
  EXPECT_TRUE(contains(parse_error("[daemon]\non_missing_feature = \"ignore\"\n"),
                       "unknown choice \"ignore\" (allowed: \"refuse\", \"degrade\")"));
}

TEST(ParseConfig, UnknownAccelerationKeyIsRejected) {
  EXPECT_TRUE(
      contains(parse_error("[acceleration]\n  include_port = [80]\n"),
               "meshlane.toml:2:3: acceleration.include_port: unknown key (known keys: "
               "enabled, adaptive_splicing, leave_spinning_readers, spinning_reader_per_mille, "
               "splice_blocking_sockets, sockhash_max_entries, include_ports, exclude_ports, "
               "max_unread_bytes)"));
}

TEST(ParseConfig, MaxUnreadBytesIsOffByDefaultAndBounded) {
  EXPECT_EQ(AccelerationConfig{}.max_unread_bytes, 0u);
  EXPECT_TRUE(contains(parse_error("[acceleration]\nmax_unread_bytes = 2147483648\n"),
                       "acceleration.max_unread_bytes: 2147483648 is out of range (allowed "
                       "0..1073741824)"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\nmax_unread_bytes = -1\n"), "is out of range"));
}

TEST(ParseConfig, SpinningReaderPerMilleIsBounded) {
  EXPECT_TRUE(contains(parse_error("[acceleration]\nspinning_reader_per_mille = 0\n"),
                       "acceleration.spinning_reader_per_mille: 0 is out of range (allowed "
                       "1..1000)"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\nspinning_reader_per_mille = 1001\n"),
                       "is out of range"));
  EXPECT_EQ(parse_ok("[acceleration]\nspinning_reader_per_mille = 1000\n")
                .acceleration.spinning_reader_per_mille,
            1000u);
}

TEST(ParseConfig, NestedTableIsAnUnknownKey) {
  EXPECT_TRUE(contains(parse_error("[daemon.extra]\nx = 1\n"), "daemon.extra: unknown key"));
}

TEST(ParseConfig, WrongTypeNamesExpectedAndActualType) {
  EXPECT_TRUE(contains(parse_error("[acceleration]\nenabled = \"yes\"\n"),
                       "meshlane.toml:2:11: acceleration.enabled: expected a boolean (true or "
                       "false), got string"));
  EXPECT_TRUE(contains(parse_error("[daemon]\ncgroup = 5\n"),
                       "daemon.cgroup: expected a string, got integer"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\nsockhash_max_entries = 1024.0\n"),
                       "acceleration.sockhash_max_entries: expected an integer 1..16777216, "
                       "got float"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\ninclude_ports = 80\n"),
                       "acceleration.include_ports: expected an array of port numbers"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\ninclude_ports = [80, \"http\"]\n"),
                       "acceleration.include_ports[1]: expected an integer 1..65535, got string"));
  EXPECT_TRUE(contains(parse_error("daemon = 3\n"), "daemon: expected a table, got integer"));
}

TEST(ParseConfig, OutOfRangePortIsRejected) {
  EXPECT_TRUE(contains(parse_error("[acceleration]\nexclude_ports = [22, 70000]\n"),
                       "meshlane.toml:2:22: acceleration.exclude_ports[1]: 70000 is out of range "
                       "(allowed 1..65535)"));
  EXPECT_TRUE(contains(parse_error("[acceleration]\ninclude_ports = [0]\n"),
                       "acceleration.include_ports[0]: 0 is out of range (allowed 1..65535)"));
}

TEST(ParseConfig, DuplicatePortIsRejected) {
  EXPECT_TRUE(contains(parse_error("[acceleration]\ninclude_ports = [80, 443, 80]\n"),
                       "acceleration.include_ports[2]: duplicate port 80"));
}

TEST(ParseConfig, SamePortInIncludeAndExcludeIsAllowed) {
  const Config config = parse_ok("[acceleration]\ninclude_ports = [80]\nexclude_ports = [80]\n");
  EXPECT_EQ(config.acceleration.exclude_ports, (std::vector<std::uint16_t>{80}));
}

TEST(ParseConfig, SockhashSizeOutOfRangeIsRejected) {
  EXPECT_TRUE(contains(parse_error("[acceleration]\nsockhash_max_entries = 0\n"),
                       "acceleration.sockhash_max_entries: 0 is out of range (allowed "
                       "1..16777216)"));
  EXPECT_TRUE(
      contains(parse_error("[acceleration]\nsockhash_max_entries = 16777217\n"), "out of range"));
}

TEST(ParseConfig, BadLogLevelListsAllowedLevels) {
  EXPECT_TRUE(contains(parse_error("[daemon]\nlog_level = \"verbose\"\n"),
                       "meshlane.toml:2:13: daemon.log_level: unknown log level \"verbose\" "
                       "(allowed: trace, debug, info, warn, error, critical, off)"));
}

TEST(ParseConfig, RelativeOrEmptyBpffsDirIsRejected) {
  EXPECT_TRUE(contains(parse_error("[daemon]\nbpffs_dir = \"sys/fs/bpf/meshlane\"\n"),
                       "daemon.bpffs_dir: \"sys/fs/bpf/meshlane\" is not an absolute path"));
  EXPECT_TRUE(
      contains(parse_error("[daemon]\nbpffs_dir = \"\"\n"), "daemon.bpffs_dir: must not be empty"));
}

TEST(ParseConfig, SyntaxErrorHasLineAndColumn) {
  const std::string message = parse_error("[daemon]\nlog_level = \n");
  EXPECT_TRUE(contains(message, "meshlane.toml:2:"));
  EXPECT_TRUE(contains(message, ": TOML syntax error: "));
}

TEST(ParseConfig, DuplicateKeyIsASyntaxError) {
  EXPECT_TRUE(
      contains(parse_error("[daemon]\ncgroup = \"a\"\ncgroup = \"b\"\n"), "meshlane.toml:3:"));
}

TEST(ParseConfig, ErrorsAreNotSystemErrors) {
  Result<Config> config = parse_config("[nope]\n", kSource);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().errnum, 0);
}

TEST(LoadConfigFile, MissingFileNamesPathAndErrno) {
  const std::string path = "/nonexistent/meshlane-test/meshlane.toml";
  Result<Config> config = load_config_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().errnum, ENOENT);
  EXPECT_TRUE(contains(config.error().message(), "cannot read config file " + path));
}

TEST(LoadConfigFile, DirectoryIsUnreadable) {
  Result<Config> config = load_config_file(MESHLANE_FIXTURE_DIR);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().errnum, EISDIR);
}

TEST(LoadConfigFile, ShippedConfigParsesToTheDefaults) {
  const std::string path = MESHLANE_FIXTURE_DIR "/../../config/meshlane.toml";
  Result<Config> config = load_config_file(path);
  ASSERT_TRUE(config.ok()) << config.error().message();
  expect_default(*config);
}

TEST(LoadConfigFile, ErrorsNameTheFilePath) {
  // Any non-TOML file will do: the point is that the path is the source in the message.
  const std::string path = MESHLANE_FIXTURE_DIR "/mountinfo/hybrid.txt";
  Result<Config> config = load_config_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(contains(config.error().message(), path + ":1:"));
}

}  // namespace
}  // namespace meshlane
