#include "cni/plugin.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "cni/pod.hpp"
#include "cni/register.hpp"
#include "cni/settings.hpp"

namespace meshlane::cni {

namespace {

// Everything one command needs, parsed.
struct Invocation {
  Environment env;
  NetConf conf;
  Settings settings;
  Log& log;
};

Outcome fail(const CniError& error, std::string_view cni_version, Log& log) {
  log.error(error.msg + (error.details.empty() ? "" : ": " + error.details));
  return Outcome{1, error_json(error, cni_version).dump() + "\n"};
}

Outcome print(const nlohmann::json& value) { return Outcome{0, value.dump() + "\n"}; }

// The version to write into an error when the input could not be fully parsed.
std::string peek_version(std::string_view input) {
  const nlohmann::json raw = nlohmann::json::parse(input, nullptr, false);
  if (raw.is_object() && raw.contains("cniVersion") && raw["cniVersion"].is_string() &&
      is_supported_version(raw["cniVersion"].get<std::string>())) {
    return raw["cniVersion"].get<std::string>();
  }
  return std::string(kLatestVersion);
}

// The ADD result: prevResult as the previous plugin made it. A result must name its version
// (the runtime decodes it by that), so a prevResult without one gets the configuration's.
nlohmann::json pass_through(const Invocation& call) {
  nlohmann::json result = *call.conf.prev_result;
  if (!result.contains("cniVersion")) {
    result["cniVersion"] = call.conf.cni_version;
  }
  return result;
}

// A pod that should be a workload is not (or cannot be checked). closed: the error, so that
// the runtime fails the pod and retries. open: logged; the pod goes on without meshlane.
Outcome not_enrolled(const Invocation& call, const CniError& error, Outcome on_open) {
  if (call.settings.failure_policy == FailurePolicy::kClosed) {
    return fail(error, call.conf.cni_version, call.log);
  }
  call.log.warn(error.msg + (error.details.empty() ? "" : ": " + error.details) +
                " (failure_policy \"open\": the pod starts without meshlane)");
  return on_open;
}

CniError daemon_error(const Invocation& call, const DaemonError& error, const char* doing) {
  if (error.unreachable) {
    return CniError{ErrorCode::kTryAgainLater, std::string("meshlaned is unreachable ") + doing,
                    error.message + " (control_socket " + call.settings.control_socket + ")"};
  }
  return CniError{ErrorCode::kDaemonRefused, std::string("meshlaned refused ") + doing,
                  error.message};
}

struct PodView {
  std::vector<std::string> addresses;
  std::map<std::string, std::string> annotations;
};

// The pod as prevResult and runtimeConfig show it. Error code 7 when either is malformed.
Result<PodView, CniError> read_pod(const Invocation& call) {
  PodView pod;
  auto addresses = pod_addresses(*call.conf.prev_result, call.env.ifname);
  if (!addresses) {
    return CniError{ErrorCode::kInvalidNetworkConfig, "prevResult cannot be read",
                    addresses.error().message()};
  }
  pod.addresses = std::move(addresses.value());
  auto annotations = pod_annotations(call.conf.runtime_config);
  if (!annotations) {
    return CniError{ErrorCode::kInvalidNetworkConfig, "runtimeConfig cannot be read",
                    annotations.error().message()};
  }
  pod.annotations = std::move(annotations.value());
  return pod;
}

CniError not_chained() {
  return CniError{ErrorCode::kInvalidNetworkConfig, "meshlane-cni has no prevResult",
                  "it is a chained plugin: list it after the plugin that creates the pod's "
                  "interface (and its IPAM) in the conflist's \"plugins\""};
}

Outcome add(const Invocation& call) {
  if (!call.conf.prev_result) {
    return fail(not_chained(), call.conf.cni_version, call.log);
  }
  Outcome success = print(pass_through(call));
  auto pod = read_pod(call);
  if (!pod) {
    return fail(pod.error(), call.conf.cni_version, call.log);
  }
  auto decision = decide(call.settings, call.env, pod->annotations, pod->addresses);
  if (!decision) {
    return not_enrolled(call, decision.error(), success);
  }
  if (!decision->enroll) {
    call.log.info("skipped: " + decision->reason);
    return success;
  }
  auto daemon = Daemon::connect(call.settings.control_socket, call.settings.timeout);
  if (!daemon) {
    return not_enrolled(call, daemon_error(call, daemon.error(), "adding the workload"), success);
  }
  auto outcome = daemon->add_workload(decision->params);
  if (!outcome) {
    return not_enrolled(call, daemon_error(call, outcome.error(), "adding the workload"), success);
  }
  call.log.info("workload " + decision->name + " " + outcome.value() + " (" + decision->reason +
                ")");
  return success;
}

Outcome del(const Invocation& call) {
  // DEL never fails on what is missing or down: a failing DEL keeps the kubelet from ever
  // tearing the sandbox down. A workload left behind is removed by GC or by the operator.
  const std::string name = workload_name(pod_identity(call.env));
  auto daemon = Daemon::connect(call.settings.control_socket, call.settings.timeout);
  if (!daemon) {
    call.log.warn("cannot remove workload " + name + ": " + daemon.error().message +
                  " (ignored: DEL succeeds; remove it with meshlanectl workload del if the "
                  "daemon does not drop it)");
    return Outcome{};
  }
  auto outcome = daemon->remove_workload(name, call.env.container_id);
  if (!outcome) {
    call.log.warn("cannot remove workload " + name + ": " + outcome.error().message +
                  " (ignored: DEL succeeds)");
    return Outcome{};
  }
  switch (outcome.value()) {
    case DelOutcome::kDeleted: call.log.info("workload " + name + " deleted"); break;
    case DelOutcome::kAbsent: call.log.info("no workload " + name + ": nothing to delete"); break;
    case DelOutcome::kNotOurs:
      call.log.info("workload " + name +
                    " belongs to another sandbox or was not created by meshlane-cni: left");
      break;
  }
  return Outcome{};
}

Outcome check(const Invocation& call) {
  if (!call.conf.prev_result) {
    return fail(not_chained(), call.conf.cni_version, call.log);
  }
  auto pod = read_pod(call);
  if (!pod) {
    return fail(pod.error(), call.conf.cni_version, call.log);
  }
  auto decision = decide(call.settings, call.env, pod->annotations, pod->addresses);
  if (!decision) {
    return not_enrolled(call, decision.error(), Outcome{});
  }
  if (!decision->enroll) {
    return Outcome{};
  }
  auto daemon = Daemon::connect(call.settings.control_socket, call.settings.timeout);
  if (!daemon) {
    return not_enrolled(call, daemon_error(call, daemon.error(), "checking the workload"),
                        Outcome{});
  }
  auto workload = daemon->get_workload(decision->name);
  if (!workload) {
    return not_enrolled(call, daemon_error(call, workload.error(), "checking the workload"),
                        Outcome{});
  }
  auto missing = [&](const std::string& what) {
    return fail(CniError{ErrorCode::kNotRegistered,
                         "the pod is not registered with meshlaned as ADD left it",
                         "workload " + decision->name + ": " + what +
                             " (delete and re-create the pod, or run the ADD again)"},
                call.conf.cni_version, call.log);
  };
  if (!workload.value()) {
    return missing("no such workload");
  }
  const nlohmann::json& found = *workload.value();
  std::string owner;
  if (!created_by_cni(found, &owner) || owner != label_value(call.env.container_id)) {
    return missing("it belongs to another sandbox or was not created by meshlane-cni");
  }
  const nlohmann::json spec = found.value("spec", nlohmann::json::object());
  if (spec.value("netns", std::string()) != call.env.netns) {
    return missing("its netns is " + spec.value("netns", nlohmann::json()).dump() + ", not " +
                   call.env.netns);
  }
  std::vector<std::string> want = pod->addresses;
  std::vector<std::string> have;
  for (const nlohmann::json& ip : spec.value("ips", nlohmann::json::array())) {
    have.push_back(ip.is_string() ? ip.get<std::string>() : ip.dump());
  }
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  if (want != have) {
    return missing("its ips are " + spec.value("ips", nlohmann::json()).dump() +
                   ", the pod's are " + nlohmann::json(pod->addresses).dump());
  }
  return Outcome{};
}

Outcome status(const Invocation& call) {
  auto daemon = Daemon::connect(call.settings.control_socket, call.settings.timeout);
  DaemonError error;
  if (daemon) {
    auto answer = daemon->status();
    if (answer) {
      return Outcome{};
    }
    error = answer.error();
  } else {
    error = daemon.error();
  }
  // With "open", an ADD succeeds without the daemon: reporting the plugin unavailable would
  // stop the runtime from creating any pod on the node for no gain.
  const CniError unavailable{ErrorCode::kPluginNotAvailable, "meshlaned is not answering",
                             error.message + " (socket " + call.settings.control_socket + ")"};
  return not_enrolled(call, unavailable, Outcome{});
}

Outcome gc(const Invocation& call) {
  const auto found = call.conf.raw.find("cni.dev/valid-attachments");
  if (found == call.conf.raw.end() || !found->is_array()) {
    // Without the list every workload would look stale: remove nothing.
    call.log.warn("no cni.dev/valid-attachments: nothing removed");
    return Outcome{};
  }
  std::set<std::string> valid;
  for (const nlohmann::json& attachment : *found) {
    if (!attachment.is_object() || !attachment.contains("containerID") ||
        !attachment["containerID"].is_string()) {
      return fail(
          CniError{ErrorCode::kInvalidNetworkConfig, "cni.dev/valid-attachments is malformed",
                   "each entry needs a \"containerID\" string, got " + attachment.dump()},
          call.conf.cni_version, call.log);
    }
    valid.insert(label_value(attachment["containerID"].get<std::string>()));
  }
  // GC is a best-effort sweep: when the daemon cannot be asked, the next GC will be.
  auto daemon = Daemon::connect(call.settings.control_socket, call.settings.timeout);
  if (!daemon) {
    call.log.warn("skipped: " + daemon.error().message);
    return Outcome{};
  }
  auto workloads = daemon->list_workloads();
  if (!workloads) {
    call.log.warn("skipped: " + workloads.error().message);
    return Outcome{};
  }
  for (const nlohmann::json& workload : workloads.value()) {
    std::string container;
    if (!created_by_cni(workload, &container) || valid.count(container) > 0) {
      continue;
    }
    const std::string name = workload.value("name", std::string());
    auto outcome = daemon->remove_workload(name, container);
    if (!outcome) {
      call.log.warn("cannot remove workload " + name + ": " + outcome.error().message);
    } else if (outcome.value() == DelOutcome::kDeleted) {
      std::string message = "removed workload " + name;
      message += " (container " + container + " is no longer attached)";
      call.log.info(message);
    }
  }
  return Outcome{};
}

}  // namespace

Outcome run(const EnvLookup& lookup, std::string_view input, Log& log) {
  auto env = parse_environment(lookup);
  if (!env) {
    return fail(env.error(), peek_version(input), log);
  }
  auto conf = parse_netconf(input, env->command);
  if (!conf) {
    return fail(conf.error(), peek_version(input), log);
  }
  if (env->command == Command::kVersion) {
    return print(version_json(conf->cni_version));
  }
  auto settings = parse_settings(conf->raw);
  if (!settings) {
    return fail(settings.error(), conf->cni_version, log);
  }
  if (!settings->log_file.empty()) {
    log.open_file(settings->log_file);
  }
  const PodIdentity pod = pod_identity(env.value());
  std::string context = to_string(env->command);
  if (!env->container_id.empty()) {
    context += " " + env->container_id.substr(0, 12);
  }
  if (!pod.k8s_namespace.empty() || !pod.pod_name.empty()) {
    context += " " + pod.k8s_namespace + "/" + pod.pod_name;
  }
  log.set_context(context);

  const Invocation call{std::move(env.value()), std::move(conf.value()),
                        std::move(settings.value()), log};
  switch (call.env.command) {
    case Command::kAdd: return add(call);
    case Command::kDel: return del(call);
    case Command::kCheck: return check(call);
    case Command::kStatus: return status(call);
    case Command::kGc: return gc(call);
    case Command::kVersion: break;
  }
  return print(version_json(call.conf.cni_version));
}

}  // namespace meshlane::cni
