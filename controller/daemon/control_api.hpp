// The control protocol's methods: access control, parameter checks and results. The daemon
// plugs in its datapath through ControlBackend; the unit tests plug in a fake.
#pragma once

#include <sys/types.h>

#include <cerrno>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/config.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "daemon/rate_limiter.hpp"
#include "meshlane/shared.h"
#include "observe/counters.hpp"
#include "observe/decisions.hpp"
#include "observe/monitor_hub.hpp"
#include "policy/registry.hpp"
#include "workloads/registry.hpp"

namespace meshlane::control {

// kRead methods only look at the daemon's state; kWrite methods change what the datapath does
// (a workload decides whose traffic goes to which proxy, a policy which connections are
// allowed), or watch every connection of the node as it happens (monitor).
enum class Access { kRead, kWrite };
const char* to_string(Access access);

struct MethodInfo {
  std::string_view name;
  Access access;
  std::string_view summary;
};

// Every method, in the order docs/control-protocol.md lists them.
const std::vector<MethodInfo>& methods();

// Who may call what (docs/security.md): uid 0 every method; members (primary or supplementary
// gid) of write_group (daemon.socket_write_group) every method; members of read_group
// (daemon.socket_read_group) the read methods only. Unset: that tier is root only.
struct AccessPolicy {
  std::optional<gid_t> write_group;
  std::optional<gid_t> read_group;
};

bool is_allowed(const PeerCredentials& peer, const AccessPolicy& policy, Access access);

// daemon.socket_read_group and socket_write_group (or the deprecated socket_group, which the
// config loader copied into socket_write_group: warned about here), resolved to gids.
Result<AccessPolicy> resolve_access_policy(const DaemonConfig& daemon);

// The socket file's groups for a policy. A Unix socket needs write permission on its file to
// connect, and the file has one group: it belongs to the read group (the larger tier), and a
// different write group gets the same permission bits through a POSIX ACL entry. Neither
// widens anything beyond the two groups (no 0666), so the per-method check on SO_PEERCRED
// stays a second lock rather than the only one.
void set_socket_groups(const AccessPolicy& policy, ServerOptions& options);

// "read: gid 1001, write: root only" for the startup log.
std::string describe(const AccessPolicy& policy);

// What the methods read from the running daemon.
class ControlBackend {
 public:
  virtual ~ControlBackend() = default;
  // The daemon's part of the status result (version, uptime, kernel, attach points, ...).
  virtual nlohmann::json status() = 0;
  virtual Result<Counters> counters() = 0;
  virtual Result<std::vector<ml_sock_key>> sockhash_keys() = 0;
  // The netns cookie of a workload's namespace; nullopt when it cannot be read.
  virtual std::optional<std::uint64_t> netns_cookie(const std::string& netns_path) = 0;
  // Whether the datapath has seen a listener of the cgroup in that namespace on that port (for
  // telling a connection's server end in conns). Without a datapath: assume so.
  virtual bool listening(std::uint64_t /*netns_cookie*/, std::uint16_t /*port*/) { return true; }
  // One workload's counters, by its netns cookie.
  virtual Result<Counters> workload_counters(std::uint64_t netns_cookie) {
    (void)netns_cookie;
    return make_error(ENOTSUP, "per-workload counters are not available");
  }
  // Why no program would enforce a policy now ("" when they are enforced): policy.apply refuses
  // rather than report a policy in force that nothing enforces.
  virtual std::string policy_enforcement_unavailable() { return {}; }
  // A workload's health for workload list/get ("health": state, netns cookie and inode,
  // whether the namespace still exists, tc filter state, draining); null when unknown.
  virtual nlohmann::json workload_health(const WorkloadConfig& /*workload*/) { return nullptr; }
  // Removed workloads whose tc filters still drain (workload list "draining").
  virtual nlohmann::json draining_workloads() { return nlohmann::json::array(); }
  // A live event subscription (the monitor method); the daemon's hub, or unavailable.
  virtual ControlResult<std::shared_ptr<monitor::Subscription>> subscribe(
      const monitor::Filter& filter);
  // The datapath's recent decisions (explain); nullptr when the daemon keeps none.
  virtual const monitor::DecisionLog* decision_log() { return nullptr; }
};

class ControlApi {
 public:
  // policies may be null: the policy methods then answer unavailable.
  ControlApi(ControlBackend& backend, workloads::WorkloadRegistry& workloads, AccessPolicy policy,
             policy::PolicyRegistry* policies = nullptr)
      : backend_(backend), workloads_(workloads), policy_(policy), policies_(policies) {}

  // One request line in, one response line out (the server's LineHandler); for monitor, the
  // acknowledgement and the stream that follows it.
  Reply handle_line(const PeerCredentials& peer, std::string_view line);

  // A parsed request: the result object or the error. A streaming method (monitor) puts its
  // stream in `stream`; without one to fill it is refused.
  ControlResult<nlohmann::json> call(const PeerCredentials& peer, const Request& request,
                                     std::shared_ptr<StreamSource>* stream = nullptr);

 private:
  ControlResult<nlohmann::json> status(const Params& params);
  ControlResult<nlohmann::json> stats(const Params& params);
  ControlResult<nlohmann::json> workload_list(const Params& params);
  ControlResult<nlohmann::json> workload_get(const Params& params);
  ControlResult<nlohmann::json> workload_add(const nlohmann::json& params);
  ControlResult<nlohmann::json> workload_del(const Params& params);
  ControlResult<nlohmann::json> conns(const Params& params);
  ControlResult<nlohmann::json> policy_apply(const Params& params, const nlohmann::json& raw);
  ControlResult<nlohmann::json> policy_get(const Params& params);
  ControlResult<nlohmann::json> policy_del(const Params& params);
  ControlResult<nlohmann::json> explain(const nlohmann::json& params);
  ControlResult<nlohmann::json> monitor(const nlohmann::json& params,
                                        std::shared_ptr<StreamSource>* stream);
  ControlResult<nlohmann::json> dispatch(const MethodInfo& method, const Request& request,
                                         std::shared_ptr<StreamSource>* stream);
  // The warning for a caller refused by the access rules, rate-limited.
  void log_refusal(const PeerCredentials& peer, const MethodInfo& method);

  ControlBackend& backend_;
  workloads::WorkloadRegistry& workloads_;
  AccessPolicy policy_;
  policy::PolicyRegistry* policies_;
  // At most kRefusalLogBurst refusal warnings a second (rate_limiter.hpp).
  RateLimiter refusals_{kRefusalLogBurst, std::chrono::seconds(1)};

 public:
  static constexpr std::size_t kRefusalLogBurst = 5;
};

// The audit line for a write method's outcome (without the "audit: " prefix): who, what, on
// what, and how it ended, e.g. "uid 1000 pid 4242: workload.add pod-a: added". Exposed for
// the unit tests.
std::string audit_line(const PeerCredentials& peer, const Request& request,
                       const ControlResult<nlohmann::json>& outcome);

}  // namespace meshlane::control
