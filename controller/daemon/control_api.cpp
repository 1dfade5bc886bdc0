#include "daemon/control_api.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "observe/connections.hpp"
#include "policy/policy.hpp"

namespace meshlane::control {

namespace {

const std::vector<MethodInfo> kMethods = {
    {"status", Access::kRead, "daemon version, uptime, kernel features, attach points, counts"},
    {"stats", Access::kRead, "the datapath counters"},
    {"workload.list", Access::kRead, "every workload, from the config file and live"},
    {"workload.get", Access::kRead, "one workload's effective settings"},
    {"workload.add", Access::kWrite, "add or replace a live workload (idempotent)"},
    {"workload.del", Access::kWrite, "delete a live workload"},
    {"conns", Access::kRead, "spliced sockets now in the sockhash, with their workloads"},
    {"policy.apply", Access::kWrite, "add or replace L4 policies; switched atomically"},
    {"policy.get", Access::kRead, "every policy, or one by name"},
    {"policy.del", Access::kWrite, "delete a policy"},
    // Write: it shows every connection of the node (addresses, ports, workloads) as it happens.
    {"monitor", Access::kWrite, "stream live datapath events, one JSON object per line"},
    // Read: it answers only about the connection the caller names, from decisions already made
    // (what `conns` and `stats` show of the same connections).
    {"explain", Access::kRead, "which rules decided one connection's interception and splicing"},
};

bool in_group(const PeerCredentials& peer, const std::optional<gid_t>& group) {
  if (!group) {
    return false;
  }
  return peer.gid == *group ||
         std::find(peer.groups.begin(), peer.groups.end(), *group) != peer.groups.end();
}

std::string known_methods() {
  std::string names;
  for (const MethodInfo& method : kMethods) {
    names += (names.empty() ? "" : ", ") + std::string(method.name);
  }
  return names;
}

// {"name", optional "missing_ok"}: what the *.del methods take.
struct DeleteParams {
  std::string name;
  bool missing_ok = false;
};

ControlResult<DeleteParams> delete_params(const Params& params) {
  if (ControlStatus valid = params.only({"name", "missing_ok"}); !valid) {
    return valid.error();
  }
  std::optional<std::string> name;
  if (ControlStatus valid = params.string("name", true, name); !valid) {
    return valid.error();
  }
  std::optional<bool> missing_ok;
  if (ControlStatus valid = params.boolean("missing_ok", missing_ok); !valid) {
    return valid.error();
  }
  return DeleteParams{*name, missing_ok.value_or(false)};
}

// The keys scripts read ("name", "source", "spec") stay as they were; "health" was added.
nlohmann::json entry_json(const workloads::WorkloadRegistry::Entry& entry,
                          ControlBackend& backend) {
  return {{"name", entry.workload->name},
          {"source", to_string(entry.source)},
          {"spec", workloads::workload_to_json(*entry.workload)},
          {"health", backend.workload_health(*entry.workload)}};
}

}  // namespace

ControlResult<std::shared_ptr<monitor::Subscription>> ControlBackend::subscribe(
    const monitor::Filter& /*filter*/) {
  return ControlError{ErrorCode::kUnavailable, "this daemon has no event monitor"};
}

const char* to_string(Access access) { return access == Access::kRead ? "read" : "write"; }

const std::vector<MethodInfo>& methods() { return kMethods; }

bool is_allowed(const PeerCredentials& peer, const AccessPolicy& policy, Access access) {
  if (peer.uid == 0) {
    return true;
  }
  return in_group(peer, policy.write_group) ||
         (access == Access::kRead && in_group(peer, policy.read_group));
}

Result<AccessPolicy> resolve_access_policy(const DaemonConfig& daemon) {
  if (!daemon.socket_group.empty()) {
    spdlog::warn(
        "daemon.socket_group is deprecated: it is read as daemon.socket_write_group (every "
        "method, workload and policy changes included); set socket_write_group instead, and "
        "socket_read_group for callers that only need to look (docs/security.md)");
  }
  auto read = resolve_socket_group(daemon.socket_read_group, "daemon.socket_read_group");
  if (!read) {
    return read.error();
  }
  auto write = resolve_socket_group(daemon.socket_write_group, daemon.socket_group.empty()
                                                                   ? "daemon.socket_write_group"
                                                                   : "daemon.socket_group");
  if (!write) {
    return write.error();
  }
  return AccessPolicy{write.value(), read.value()};
}

void set_socket_groups(const AccessPolicy& policy, ServerOptions& options) {
  options.group = policy.read_group ? policy.read_group : policy.write_group;
  options.acl_group =
      (policy.read_group && policy.write_group && *policy.read_group != *policy.write_group)
          ? policy.write_group
          : std::nullopt;
}

std::string describe(const AccessPolicy& policy) {
  auto tier = [](const std::optional<gid_t>& group) {
    return group ? "gid " + std::to_string(*group) : std::string("root only");
  };
  return "read: " +
         (policy.read_group ? tier(policy.read_group) + " and the write group"
                            : tier(policy.write_group)) +
         ", write: " + tier(policy.write_group);
}

std::string audit_line(const PeerCredentials& peer, const Request& request,
                       const ControlResult<nlohmann::json>& outcome) {
  std::string line = "uid " + std::to_string(peer.uid) + " pid " + std::to_string(peer.pid) + ": " +
                     request.method;
  // The object changed: the name the caller gave (workload.*, policy.del) or the policies'.
  const nlohmann::json& params = request.params;
  if (params.is_object() && params.contains("name") && params["name"].is_string()) {
    line += " " + params["name"].get<std::string>();
  }
  if (!outcome) {
    return line + ": failed, nothing changed: " + to_string(outcome.error().code) + ": " +
           outcome.error().message;
  }
  const nlohmann::json& result = outcome.value();
  if (result.contains("outcome") && result["outcome"].is_string()) {
    line += ": " + result["outcome"].get<std::string>();
  }
  if (result.contains("outcomes") && result["outcomes"].is_object()) {
    // policy.apply: every policy named with what happened to it, and what a replace dropped.
    std::string each;
    for (const auto& [name, what] : result["outcomes"].items()) {
      each += (each.empty() ? "" : ", ") + name + " " +
              (what.is_string() ? what.get<std::string>() : what.dump());
    }
    line += ": " + (each.empty() ? std::string("no policies") : each);
    if (params.is_object() && params.value("replace", false)) {
      line += " (replace)";
    }
  }
  if (result.contains("removed") && result["removed"].is_array() && !result["removed"].empty()) {
    line += "; removed " + result["removed"].dump();
  }
  if (result.contains("subscribed") && result.contains("filter")) {
    line += ": subscribed, filter " + result["filter"].dump();
  }
  return line;
}

void ControlApi::log_refusal(const PeerCredentials& peer, const MethodInfo& method) {
  const RateLimiter::Decision decision = refusals_.admit(RateLimiter::Clock::now());
  if (!decision.log) {
    return;
  }
  spdlog::warn("audit: refused uid {} gid {} pid {}: {} ({} method){}", peer.uid, peer.gid,
               peer.pid, method.name, to_string(method.access),
               decision.suppressed == 0
                   ? std::string()
                   : "; " + std::to_string(decision.suppressed) +
                         " more refusal(s) suppressed before this one (at most " +
                         std::to_string(kRefusalLogBurst) + " logged a second)");
}

Reply ControlApi::handle_line(const PeerCredentials& peer, std::string_view line) {
  auto parsed = parse_request(line);
  if (!parsed) {
    const RequestError& bad = parsed.error();
    spdlog::debug("control: bad request from pid {}: {}", peer.pid, bad.error.message);
    return {encode_error(bad.id, bad.error), bad.close};
  }
  const Request& request = parsed.value();
  std::shared_ptr<StreamSource> stream;
  ControlResult<nlohmann::json> outcome = call(peer, request, &stream);
  if (!outcome) {
    const ControlError& error = outcome.error();
    spdlog::debug("control: {} from pid {} uid {}: {}: {}", request.method, peer.pid, peer.uid,
                  to_string(error.code), error.message);
    return {encode_error(request.id, error), false};
  }
  return {encode_result(request.id, outcome.value()), false, std::move(stream)};
}

ControlResult<nlohmann::json> ControlApi::call(const PeerCredentials& peer, const Request& request,
                                               std::shared_ptr<StreamSource>* stream) {
  auto method = std::find_if(kMethods.begin(), kMethods.end(),
                             [&](const MethodInfo& m) { return m.name == request.method; });
  if (method == kMethods.end()) {
    return ControlError{
        ErrorCode::kUnknownMethod,
        "unknown method \"" + request.method + "\" (known methods: " + known_methods() + ")"};
  }
  if (!is_allowed(peer, policy_, method->access)) {
    log_refusal(peer, *method);
    auto member = [](const char* setting, const std::optional<gid_t>& group) {
      return std::string("members of ") + setting +
             (group ? " (gid " + std::to_string(*group) + ")" : std::string(" (unset)"));
    };
    std::string who = "uid 0 and " + member("daemon.socket_write_group", policy_.write_group);
    if (method->access == Access::kRead) {
      who += " or " + member("daemon.socket_read_group", policy_.read_group);
    }
    return ControlError{ErrorCode::kPermissionDenied,
                        "uid " + std::to_string(peer.uid) + " (gid " + std::to_string(peer.gid) +
                            ") may not call " + request.method + ": a " +
                            to_string(method->access) + " method, open to " + who};
  }
  ControlResult<nlohmann::json> outcome = dispatch(*method, request, stream);
  // Audit: every call that may change something (or watches every connection), with who made
  // it and how it ended. Read methods are not logged: they change nothing and are frequent.
  if (method->access == Access::kWrite) {
    spdlog::info("audit: {}", audit_line(peer, request, outcome));
  }
  return outcome;
}

ControlResult<nlohmann::json> ControlApi::dispatch(const MethodInfo& method, const Request& request,
                                                   std::shared_ptr<StreamSource>* stream) {
  const Params params(request.params);
  const std::string_view name = method.name;
  if (name == "status") {
    return status(params);
  }
  if (name == "stats") {
    return stats(params);
  }
  if (name == "workload.list") {
    return workload_list(params);
  }
  if (name == "workload.get") {
    return workload_get(params);
  }
  if (name == "workload.add") {
    return workload_add(request.params);
  }
  if (name == "workload.del") {
    return workload_del(params);
  }
  if (name == "conns") {
    return conns(params);
  }
  if (name.substr(0, 7) == "policy." && policies_ == nullptr) {
    return ControlError{ErrorCode::kUnavailable, "this daemon has no policy support"};
  }
  if (name == "policy.apply") {
    return policy_apply(params, request.params);
  }
  if (name == "policy.get") {
    return policy_get(params);
  }
  if (name == "policy.del") {
    return policy_del(params);
  }
  if (name == "monitor") {
    return monitor(request.params, stream);
  }
  if (name == "explain") {
    return explain(request.params);
  }
  return ControlError{ErrorCode::kInternal, "method " + request.method + " has no handler"};
}

ControlResult<nlohmann::json> ControlApi::status(const Params& params) {
  if (ControlStatus valid = params.only({}); !valid) {
    return valid.error();
  }
  nlohmann::json result = backend_.status();
  result["protocol"] = kProtocolVersion;
  result["workloads"] = {{"total", workloads_.config_count() + workloads_.live_count()},
                         {"config", workloads_.config_count()},
                         {"live", workloads_.live_count()}};
  return result;
}

ControlResult<nlohmann::json> ControlApi::stats(const Params& params) {
  if (ControlStatus valid = params.only({"workload"}); !valid) {
    return valid.error();
  }
  std::optional<std::string> workload;
  if (ControlStatus valid = params.string("workload", false, workload); !valid) {
    return valid.error();
  }
  if (workload) {
    const workloads::WorkloadRegistry::Entry entry = workloads_.find(*workload);
    if (entry.workload == nullptr) {
      return ControlError{ErrorCode::kNotFound, "no workload named " + *workload};
    }
    const std::optional<std::uint64_t> cookie = backend_.netns_cookie(entry.workload->netns);
    if (!cookie) {
      return ControlError{ErrorCode::kUnavailable,
                          "cannot read the netns cookie of " + entry.workload->netns};
    }
    auto counters = backend_.workload_counters(*cookie);
    if (!counters) {
      return ControlError{ErrorCode::kUnavailable, counters.error().message()};
    }
    return nlohmann::json{{"workload", *workload},
                          {"counters", workload_counters_to_json(counters.value())}};
  }
  auto counters = backend_.counters();
  if (!counters) {
    return ControlError{ErrorCode::kUnavailable, counters.error().message()};
  }
  return nlohmann::json{{"counters", counters_to_json(counters.value())}};
}

ControlResult<nlohmann::json> ControlApi::workload_list(const Params& params) {
  if (ControlStatus valid = params.only({}); !valid) {
    return valid.error();
  }
  nlohmann::json list = nlohmann::json::array();
  for (const workloads::WorkloadRegistry::Entry& entry : workloads_.list()) {
    list.push_back(entry_json(entry, backend_));
  }
  return nlohmann::json{
      {"workloads", list}, {"total", list.size()}, {"draining", backend_.draining_workloads()}};
}

ControlResult<nlohmann::json> ControlApi::workload_get(const Params& params) {
  if (ControlStatus valid = params.only({"name"}); !valid) {
    return valid.error();
  }
  std::optional<std::string> name;
  if (ControlStatus valid = params.string("name", true, name); !valid) {
    return valid.error();
  }
  const workloads::WorkloadRegistry::Entry entry = workloads_.find(*name);
  if (entry.workload == nullptr) {
    return ControlError{ErrorCode::kNotFound, "no workload named " + *name};
  }
  return entry_json(entry, backend_);
}

ControlResult<nlohmann::json> ControlApi::workload_add(const nlohmann::json& params) {
  auto workload = parse_workload_json(params, "", "params");
  if (!workload) {
    return invalid_params(workload.error().message());
  }
  ControlResult<workloads::AddOutcome> outcome = workloads_.add(workload.value());
  if (!outcome) {
    return outcome.error();
  }
  return nlohmann::json{{"name", workload->name},
                        {"outcome", to_string(outcome.value())},
                        {"spec", workloads::workload_to_json(workload.value())}};
}

ControlResult<nlohmann::json> ControlApi::workload_del(const Params& params) {
  auto target = delete_params(params);
  if (!target) {
    return target.error();
  }
  const auto& [name, missing_ok] = target.value();
  ControlResult<workloads::DeleteOutcome> outcome = workloads_.remove(name, missing_ok);
  if (!outcome) {
    return outcome.error();
  }
  return nlohmann::json{{"name", name}, {"outcome", to_string(outcome.value())}};
}

ControlResult<nlohmann::json> ControlApi::conns(const Params& params) {
  if (ControlStatus valid = params.only({"limit"}); !valid) {
    return valid.error();
  }
  std::optional<std::int64_t> limit;
  if (ControlStatus valid =
          params.integer("limit", 0, std::numeric_limits<std::int64_t>::max(), limit);
      !valid) {
    return valid.error();
  }
  auto keys = backend_.sockhash_keys();
  if (!keys) {
    return ControlError{ErrorCode::kUnavailable, keys.error().message()};
  }
  // The workloads as applied: a policy may have turned their fast path on or off.
  std::vector<WorkloadConfig> applied = workloads_.combined();
  if (policies_ != nullptr) {
    applied = policy::apply_policy_overrides(std::move(applied), policies_->list());
  }
  WorkloadIndex index;
  for (const WorkloadConfig& workload : applied) {
    index.add(workload, backend_.netns_cookie(workload.netns).value_or(0));
  }
  index.listening = [this](std::uint64_t netns_cookie, std::uint16_t port) {
    return backend_.listening(netns_cookie, port);
  };
  const std::int64_t shown = limit.value_or(kDefaultConnsLimit);
  return describe_connections(keys.value(), index,
                              shown == 0 ? keys->size() : static_cast<std::size_t>(shown));
}

ControlResult<nlohmann::json> ControlApi::explain(const nlohmann::json& params) {
  auto query = monitor::parse_explain_query(params);
  if (!query) {
    return query.error();
  }
  monitor::ExplainContext context;
  if (query->src) {
    context.src_workload = std::string();
    for (const WorkloadConfig& workload : workloads_.combined()) {
      for (const IpAddress& ip : workload.ips) {
        if (ip.bytes == query->src->address.bytes) {
          context.src_workload = workload.name;
        }
      }
    }
  }
  std::vector<monitor::Event> records;
  if (const monitor::DecisionLog* log = backend_.decision_log(); log != nullptr) {
    context.log_capacity = log->capacity();
    context.log_size = log->size();
    context.recorded_total = log->recorded_total();
    records = log->matching(query.value(), context.src_workload.value_or(std::string()));
  }
  return monitor::explain(query.value(), records, context);
}

ControlResult<nlohmann::json> ControlApi::monitor(const nlohmann::json& params,
                                                  std::shared_ptr<StreamSource>* stream) {
  auto filter = monitor::parse_filter(params);
  if (!filter) {
    return filter.error();
  }
  if (stream == nullptr) {
    return ControlError{ErrorCode::kInternal, "monitor needs a connection it can stream on"};
  }
  const monitor::Filter& wanted = filter.value();
  auto subscription = backend_.subscribe(wanted);
  if (!subscription) {
    return subscription.error();
  }
  const auto& subscribed = subscription.value();
  *stream = subscribed;
  return nlohmann::json{
      {"subscribed", true}, {"filter", wanted.to_json()}, {"queue_limit", subscribed->limit()}};
}

}  // namespace meshlane::control

namespace meshlane::control {

ControlResult<nlohmann::json> ControlApi::policy_apply(const Params& params,
                                                       const nlohmann::json& raw) {
  if (ControlStatus valid = params.only({"policies", "replace"}); !valid) {
    return valid.error();
  }
  std::optional<bool> replace;
  if (ControlStatus valid = params.boolean("replace", replace); !valid) {
    return valid.error();
  }
  if (!raw.contains("policies")) {
    return invalid_params("params.policies: required (a list of policies)");
  }
  if (const std::string why = backend_.policy_enforcement_unavailable(); !why.empty()) {
    return ControlError{ErrorCode::kUnavailable, "policy not applied: " + why};
  }
  auto parsed = policy::parse_policy_document(nlohmann::json{{"policies", raw["policies"]}});
  if (!parsed) {
    return invalid_params(parsed.error().context);
  }
  return policies_->apply(parsed.value(), replace.value_or(false));
}

ControlResult<nlohmann::json> ControlApi::policy_get(const Params& params) {
  if (ControlStatus valid = params.only({"name"}); !valid) {
    return valid.error();
  }
  std::optional<std::string> name;
  if (ControlStatus valid = params.string("name", false, name); !valid) {
    return valid.error();
  }
  nlohmann::json list = nlohmann::json::array();
  if (name) {
    const policy::Policy* policy = policies_->find(*name);
    if (policy == nullptr) {
      return ControlError{ErrorCode::kNotFound, "no policy named " + *name};
    }
    list.push_back(policy::policy_to_json(*policy));
  } else {
    for (const policy::Policy& policy : policies_->list()) {
      list.push_back(policy::policy_to_json(policy));
    }
  }
  return nlohmann::json{{"policies", list}, {"total", list.size()}};
}

ControlResult<nlohmann::json> ControlApi::policy_del(const Params& params) {
  auto target = delete_params(params);
  if (!target) {
    return target.error();
  }
  const auto& [name, missing_ok] = target.value();
  return policies_->remove(name, missing_ok);
}

}  // namespace meshlane::control
