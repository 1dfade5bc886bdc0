// meshlaned configuration: the TOML file documented key by key in config/meshlane.toml.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/addresses.hpp"
#include "common/error.hpp"
#include "meshlane/reader_spin.h"

namespace meshlane {

// Where meshlaned listens and meshlanectl connects unless told otherwise.
inline constexpr const char* kDefaultControlSocket = "/run/meshlane/meshlane.sock";

struct DaemonConfig {
  // Directory on bpffs that holds every pin meshlane makes (maps and links).
  std::string bpffs_dir = "/sys/fs/bpf/meshlane";
  // cgroup v2 to attach to: "" or "/" is the cgroup v2 root; a relative path or one starting
  // with "/" is taken below the discovered cgroup v2 mount; an absolute path that already
  // starts with the mount point is used as is.
  std::string cgroup;
  // spdlog level name: trace, debug, info, warn, error, critical, off.
  std::string log_level = "info";
  // What to do when the running kernel lacks a feature the datapath uses (probed at start):
  // "refuse" exits naming it; "degrade" runs with what works (e.g. interception without
  // splicing) and reports what is off in `meshlanectl status`.
  std::string on_missing_feature = "refuse";
  // Unix stream socket of the control protocol (docs/control-protocol.md). Absolute path, at
  // most 107 bytes (sun_path). Its directory is created (mode 0755) when missing.
  std::string socket = kDefaultControlSocket;
  // Permission bits of the socket file (0..0777); connect() needs write permission.
  std::uint32_t socket_mode = 0660;
  // Who may call the control protocol besides uid 0 (checked with SO_PEERCRED/SO_PEERGROUPS;
  // docs/security.md): members of socket_read_group call the read methods (status, stats,
  // workload list/get, conns, policy get), members of socket_write_group every method. "" =
  // root only. A group name or a numeric gid; resolved when the daemon starts.
  std::string socket_read_group;
  std::string socket_write_group;
  // The old name of socket_write_group (it gave its members every method), still accepted so
  // that existing configs keep working; the loader copies it into socket_write_group and the
  // daemon warns. Setting both is an error.
  std::string socket_group;
  // Where the daemon keeps state that must survive a restart (workloads added over the control
  // socket). Absolute path; created (mode 0700) when missing.
  std::string state_dir = "/var/lib/meshlane";
  // Whether a workload's netns may be the daemon's own network namespace or PID 1's (the
  // host's). Off: such a workload is refused, since its tc steering would land on the host's
  // interfaces and its interception on the node's own connections.
  bool allow_host_netns = false;
  // How many datapath decisions (interception and splicing events) the daemon keeps for
  // `meshlanectl explain`. 0 (the default): none, and the datapath emits no event while no
  // monitor client watches. Above 0 it emits those events for every connection (a ring buffer
  // record each, and the daemon reads them).
  std::uint32_t decision_log = 0;
  // How connections that enter a pod from off the node reach its inbound proxy
  // (docs/interception.md): "sk_lookup" hands them to the proxy's listener at the socket
  // lookup, with nothing per packet; "tc" rewrites their port with tc filters on the pod's
  // interface. Read at start (a restart switches, open connections included).
  std::string inbound_steering = "sk_lookup";
};

// Upper bound of daemon.decision_log.
inline constexpr std::int64_t kMaxDecisionLog = 1000000;

struct AccelerationConfig {
  // Splice local TCP connections through the sockhash.
  bool enabled = true;
  // Capacity of the sockhash; when full, new sockets use the normal stack and are counted.
  std::uint32_t sockhash_max_entries = 65536;
  // When non-empty, only connections with either end's port in this list are spliced.
  std::vector<std::uint16_t> include_ports;
  // Connections with either end's port in this list are never spliced (wins over include).
  std::vector<std::uint16_t> exclude_ports;
  // Also splice sockets that the application may read in blocking mode. Off by default: the
  // kernel's sockmap receive path can then return EAGAIN to a blocking recv() (docs/datapath.md).
  bool splice_blocking_sockets = false;
  // Back-pressure: a spliced socket whose reader has more than this many redirected bytes
  // unread goes back to the normal stack and TCP's flow control. 0 (the default): no limit.
  std::uint32_t max_unread_bytes = 0;
  // A server port whose spliced connections carry only a few messages each (one request per
  // connection) stops splicing its new ones, which would cost more than they save; one in 128
  // is still spliced to notice when that changes (docs/datapath.md).
  bool adaptive_splicing = true;
  // A spliced socket whose reader keeps spinning on its socket (recv() in a loop on a
  // non-blocking socket with nothing queued) sends by TCP from then on: every redirected send
  // would wait for the reader's lock and wake a vCPU for it (docs/datapath.md).
  bool leave_spinning_readers = true;
  // How many of every 1,000 redirected sends (counted from the first that found the reader
  // spinning, at least 24 of them) must find it spinning for the socket to leave. How often a
  // spinning reader is found holding its socket depends on the machine (docs/datapath.md).
  std::uint32_t spinning_reader_per_mille = ML_SPIN_DEFAULT_PER_MILLE;
};

// Capacities of the datapath's maps other than the sockhash (acceleration.sockhash_max_entries),
// given to the kernel when the maps are created (docs/datapath.md "Map sizes"). A pinned map of
// another size is migrated into a new map of the configured size at start.
struct MapsConfig {
  // ml_origdst_v2: original destinations of intercepted handshakes in flight. Interception
  // pauses (the connect takes the normal path, intercept_skipped_map_full) an eighth before full.
  std::uint32_t orig_dst_max_entries = 65536;
  // ml_tcflows_v3: connections from off the node steered to an inbound proxy by tc, while they
  // last. When full, new SYNs are not steered (tc_flows_full).
  std::uint32_t tc_flow_max_entries = 65536;
  // ml_workloads_v1 and ml_wlcounters_v1: workloads (pods) in force on the node.
  std::uint32_t workload_max_entries = 4096;
  // ml_pod_ips_v1: the addresses of those workloads, all together.
  std::uint32_t pod_address_max_entries = 8192;

  bool operator==(const MapsConfig&) const = default;
};

struct MetricsConfig {
  // Where meshlaned serves GET /metrics (Prometheus text format, docs/metrics.md):
  // "ADDR:PORT" or "[IPv6]:PORT". "" (the default) serves nothing.
  std::string listen;
  std::optional<ListenAddress> listen_address;  // `listen` parsed; nullopt when off
  // The endpoint has no authentication: an address other than loopback is refused unless this
  // is true.
  bool allow_non_loopback = false;

  bool operator==(const MetricsConfig&) const = default;
};

struct KubernetesConfig {
  // The container runtime's CNI cache directory (libcni's, which holds results/<network>-
  // <container>-<ifname>): at start the daemon enrolls from it the pods meshlane-cni would have
  // enrolled while the daemon was down or not yet installed (docs/kubernetes.md). "" = off.
  std::string cni_cache_dir;
  // Where the node's CNI configuration lives: a pod whose cached configuration predates
  // install-cni is decided with the meshlane-cni entry of its network's conflist here.
  std::string cni_conf_dir = "/etc/cni/net.d";

  bool operator==(const KubernetesConfig&) const = default;
};

enum class MeshKind { kIstio, kLinkerd, kCustom };

inline constexpr std::size_t kMaxPassthroughSources = 2;  // ML_MAX_PASSTHROUGH in shared.h

// A pod: a network namespace with its addresses and mesh settings. Presets fill every field
// for istio and linkerd; explicit keys override them; "custom" requires every port and uid.
struct WorkloadConfig {
  std::string name;            // unique, [A-Za-z0-9_.-]{1,63}
  std::string netns;           // path of a netns file, e.g. /var/run/netns/podA
  std::vector<IpAddress> ips;  // the pod's addresses (at least one)
  MeshKind mesh = MeshKind::kIstio;
  std::uint32_t proxy_uid = 1337;  // the sidecar's connects are never intercepted
  std::uint32_t proxy_gid = 1337;
  std::uint16_t outbound_port = 15001;
  std::uint16_t inbound_port = 15006;
  // Source addresses the inbound proxy uses for its upstream to the app (Istio: 127.0.0.6 and
  // ::6); empty for meshes without one. At most kMaxPassthroughSources.
  std::vector<IpAddress> inbound_passthrough_sources;
  // Ports and prefixes. Outbound: destination port/address of the app's connect. Inbound:
  // the pod's port that is connected to / the peer's address. When an include list is
  // non-empty only what it lists is intercepted; exclude wins over include.
  std::vector<std::uint16_t> include_outbound_ports;
  std::vector<std::uint16_t> exclude_outbound_ports;
  std::vector<std::uint16_t> include_inbound_ports;
  std::vector<std::uint16_t> exclude_inbound_ports;  // istio: 15008 15020 15021 15090
  std::vector<Cidr> include_outbound_cidrs;
  std::vector<Cidr> exclude_outbound_cidrs;
  std::vector<Cidr> exclude_inbound_cidrs;
  // Sidecarless (ambient style): outbound connects go to this node-level proxy instead of an
  // in-pod sidecar. Port 0 means "use outbound_port".
  std::optional<IpAddress> node_proxy_address;
  std::uint16_t node_proxy_port = 0;
  // Interface inside the netns that carries traffic from off the node (tc programs).
  std::string interface = "eth0";
  // Splicing of this workload's sockets (the node-wide [acceleration] still applies): off
  // entirely, or off for connections with a local or remote port listed.
  bool acceleration = true;
  std::vector<std::uint16_t> exclude_acceleration_ports;
  // L4 fast path (docs/fast-path.md), off by default: an app's connect to an address of
  // another fast-path workload on this node goes app to app, skipping both sidecars (no mTLS,
  // no L7 policy, no proxy telemetry; the server sees the client pod's address), when the L4
  // policy allows it and the server app listens. A destination port listed in the
  // fast_path_exclude_ports of either workload keeps its sidecars.
  bool fast_path = false;
  std::vector<std::uint16_t> fast_path_exclude_ports;
  // DNS capture (Istio's ISTIO_META_DNS_CAPTURE): the app's queries to port 53, UDP and TCP,
  // go to the pod's DNS proxy on loopback port dns_proxy_port (istio 15053), and its replies
  // appear to come from the server the app asked. Off by default; the proxy's own queries (its
  // uid or gid), loopback servers and excluded outbound CIDRs are never captured.
  bool dns_capture = false;
  std::uint16_t dns_proxy_port = 15053;  // 0: the mesh has no DNS proxy (linkerd)
  // What L4 policies select the workload by (besides its name).
  std::map<std::string, std::string> labels;

  // Same settings, key for key: what makes workload.add idempotent and a reload a no-op.
  bool operator==(const WorkloadConfig&) const = default;
};

bool is_valid_label_key(std::string_view key);
bool is_valid_label_value(std::string_view value);

struct Config {
  DaemonConfig daemon;
  AccelerationConfig acceleration;
  MapsConfig maps;
  MetricsConfig metrics;
  KubernetesConfig kubernetes;
  std::vector<WorkloadConfig> workloads;
};

// The preset for a mesh: ports, uids and non-intercepted ports. kCustom returns zeros.
WorkloadConfig workload_preset(MeshKind mesh);

// "istio", "linkerd", "custom".
const char* to_string(MeshKind mesh);

// Parses TOML text; source_name (a file path) is used in error messages:
// "<source>:<line>:<column>: <key>: <what is wrong>".
// Unknown tables and keys are rejected, as are values of the wrong type or out of range.
Result<Config> parse_config(std::string_view toml_text, const std::string& source_name);

// Parses one workload given as a JSON object (a control request's params, the state file) with
// the keys, presets and checks of a [[workload]] section. JSON null is rejected; floats and
// other wrong types get the same messages as in TOML. Errors read
// "[<source>: ]<key_prefix>.<key>: <what is wrong>".
Result<WorkloadConfig> parse_workload_json(const nlohmann::json& object,
                                           const std::string& source_name,
                                           const std::string& key_prefix);

// Reads and parses a file. A missing or unreadable file is an error naming the path.
Result<Config> load_config_file(const std::string& path);

}  // namespace meshlane
