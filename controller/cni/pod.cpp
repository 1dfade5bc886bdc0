#include "cni/pod.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <set>
#include <utility>

#include "common/addresses.hpp"
#include "config/config.hpp"

namespace meshlane::cni {

namespace {

// Annotations meshlane reads (docs/cni.md).
constexpr const char* kIstioStatus = "sidecar.istio.io/status";
constexpr const char* kLinkerdVersion = "linkerd.io/proxy-version";
constexpr const char* kEnabled = "meshlane.io/enabled";
constexpr const char* kFastPath = "meshlane.io/fast-path";
constexpr const char* kIstioExcludeInbound = "traffic.sidecar.istio.io/excludeInboundPorts";
constexpr const char* kIstioIncludeInbound = "traffic.sidecar.istio.io/includeInboundPorts";
constexpr const char* kIstioExcludeOutbound = "traffic.sidecar.istio.io/excludeOutboundPorts";
constexpr const char* kIstioExcludeRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
constexpr const char* kIstioIncludeRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges";
constexpr const char* kLinkerdSkipInbound = "config.linkerd.io/skip-inbound-ports";
constexpr const char* kLinkerdSkipOutbound = "config.linkerd.io/skip-outbound-ports";
constexpr const char* kLinkerdSkipSubnets = "config.linkerd.io/skip-subnets";

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// FNV-1a, 64 bits: stable across builds and hosts (std::hash is not).
std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

CniError bad_annotation(const std::string& key, const std::string& value, const std::string& why) {
  return CniError{ErrorCode::kInvalidAnnotation, "the pod annotation " + key + " cannot be used",
                  "\"" + value + "\": " + why + "; fix the annotation (docs/cni.md)"};
}

const std::string* find(const std::map<std::string, std::string>& annotations, const char* key) {
  const auto found = annotations.find(key);
  return found == annotations.end() ? nullptr : &found->second;
}

// Adds the annotation's ports to `ports` (the preset's), without repeats: the daemon wants
// distinct ports, and the sidecar's own ports must stay excluded whatever the pod lists.
Result<void, CniError> merge_ports(const std::map<std::string, std::string>& annotations,
                                   const char* key, std::vector<int>& ports) {
  const std::string* value = find(annotations, key);
  if (value == nullptr) {
    return {};
  }
  auto parsed = parse_port_list(*value);
  if (!parsed) {
    return bad_annotation(key, *value, parsed.error().message());
  }
  for (int port : parsed.value()) {
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) {
      ports.push_back(port);
    }
  }
  return {};
}

// "*" (or absent) -> nullopt: everything; "" -> an empty list: nothing; else the prefixes.
Result<std::optional<std::vector<std::string>>, CniError> cidr_annotation(
    const std::map<std::string, std::string>& annotations, const char* key) {
  const std::string* value = find(annotations, key);
  if (value == nullptr || trim(*value) == "*") {
    return std::optional<std::vector<std::string>>();
  }
  std::vector<std::string> cidrs;
  for (const std::string& item : split_list(*value)) {
    const std::optional<Cidr> cidr = parse_cidr(item);
    if (!cidr) {
      return bad_annotation(key, *value,
                            "\"" + item + "\" is not an address prefix like 10.0.0.0/8");
    }
    const std::string text = to_string(*cidr);
    if (std::find(cidrs.begin(), cidrs.end(), text) == cidrs.end()) {
      cidrs.push_back(text);
    }
  }
  return std::optional<std::vector<std::string>>(std::move(cidrs));
}

void add_unique(nlohmann::json& list, const std::vector<std::string>& items) {
  for (const std::string& item : items) {
    if (std::find(list.begin(), list.end(), item) == list.end()) {
      list.push_back(item);
    }
  }
}

const std::vector<std::string> kEverything = {"0.0.0.0/0", "::/0"};

}  // namespace

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (!item.empty()) {
      items.push_back(std::move(item));
    }
  }
  return items;
}

Result<std::vector<int>> parse_port_list(std::string_view text) {
  std::vector<int> ports;
  auto number = [](std::string_view digits, int& out) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return ec == std::errc() && end == digits.data() + digits.size() && out >= 1 && out <= 65535;
  };
  for (const std::string& item : split_list(text)) {
    const std::size_t dash = item.find('-');
    int first = 0;
    int last = 0;
    const bool ok = dash == std::string::npos
                        ? number(item, first) && number(item, last)
                        : number(trim(item.substr(0, dash)), first) &&
                              number(trim(item.substr(dash + 1)), last) && first <= last;
    if (!ok) {
      return make_error("\"" + item + "\" is not a port 1..65535 or a range like 8000-8010");
    }
    for (int port = first; port <= last; ++port) {
      if (std::find(ports.begin(), ports.end(), port) == ports.end()) {
        if (ports.size() == kMaxAnnotationPorts) {
          return make_error("more than " + std::to_string(kMaxAnnotationPorts) +
                            " ports (each is a rule in the kernel's port map)");
        }
        ports.push_back(port);
      }
    }
  }
  return ports;
}

Result<std::vector<std::string>> pod_addresses(const nlohmann::json& prev_result,
                                               std::string_view ifname) {
  std::set<int> indexes;
  bool any_interface = false;
  if (const auto found = prev_result.find("interfaces"); found != prev_result.end()) {
    if (!found->is_array()) {
      return make_error("prevResult.interfaces is not an array");
    }
    for (std::size_t i = 0; i < found->size(); ++i) {
      const nlohmann::json& entry = (*found)[i];
      if (!entry.is_object()) {
        return make_error("prevResult.interfaces[" + std::to_string(i) + "] is not an object");
      }
      any_interface = true;
      const bool named = entry.value("name", nlohmann::json()) == ifname;
      const nlohmann::json sandbox = entry.value("sandbox", nlohmann::json());
      // The container side: inside the sandbox. Host-side veths and bridges have no sandbox.
      if (named && sandbox.is_string() && !sandbox.get<std::string>().empty()) {
        indexes.insert(static_cast<int>(i));
      }
    }
  }
  std::vector<std::string> addresses;
  const auto ips = prev_result.find("ips");
  if (ips == prev_result.end()) {
    return addresses;
  }
  if (!ips->is_array()) {
    return make_error("prevResult.ips is not an array");
  }
  for (std::size_t i = 0; i < ips->size(); ++i) {
    const nlohmann::json& ip = (*ips)[i];
    const std::string where = "prevResult.ips[" + std::to_string(i) + "]";
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) {
      return make_error(where + " has no \"address\" string");
    }
    const auto index = ip.find("interface");
    if (index != ip.end() && !index->is_number_integer()) {
      return make_error(where + ".interface is not an interface index");
    }
    const bool ours = index != ip.end() ? indexes.count(index->get<int>()) > 0 : !any_interface;
    if (!ours) {
      continue;
    }
    std::string address = ip["address"].get<std::string>();
    address = address.substr(0, address.find('/'));
    if (!parse_ip_address(address)) {
      return make_error(where + ".address \"" + ip["address"].get<std::string>() +
                        "\" is not an address/prefix");
    }
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  return addresses;
}

PodIdentity pod_identity(const Environment& env) {
  auto arg = [&](const char* key) {
    const auto found = env.args.find(key);
    return found == env.args.end() ? std::string() : found->second;
  };
  return PodIdentity{arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME"), env.container_id};
}

namespace {

std::string bounded(std::string_view original, std::string_view prefix) {
  std::string name(prefix);
  name += original;
  bool changed = false;
  for (char& c : name) {
    if (!name_char(c)) {
      c = '_';
      changed = true;
    }
  }
  if (!changed && name.size() <= kMaxNameLength && !name.empty() && name != "." && name != "..") {
    return name;
  }
  char suffix[10];
  std::snprintf(suffix, sizeof suffix, "-%08x",
                static_cast<unsigned>(fnv1a(std::string(prefix) + std::string(original))));
  name.resize(std::min(name.size(), kMaxNameLength - 9));
  return name + suffix;
}

}  // namespace

std::string workload_name(const PodIdentity& pod) {
  if (!pod.k8s_namespace.empty() && !pod.pod_name.empty()) {
    return bounded(pod.k8s_namespace + "." + pod.pod_name, "");
  }
  return bounded(pod.container_id, "cni-");
}

std::string label_value(std::string_view text) {
  std::string value(text.substr(0, kMaxNameLength));
  std::replace_if(
      value.begin(), value.end(), [](char c) { return !name_char(c); }, '_');
  return value;
}

Result<std::map<std::string, std::string>> pod_annotations(const nlohmann::json& runtime_config) {
  std::map<std::string, std::string> annotations;
  const auto found = runtime_config.find(kAnnotationsCapability);
  if (found == runtime_config.end() || found->is_null()) {
    return annotations;
  }
  if (!found->is_object()) {
    return make_error(std::string("runtimeConfig[\"") + kAnnotationsCapability +
                      "\"] is not an object of annotations");
  }
  for (const auto& [key, value] : found->items()) {
    if (!value.is_string()) {
      return make_error(std::string("runtimeConfig[\"") + kAnnotationsCapability + "\"][\"" + key +
                        "\"] is not a string");
    }
    annotations[key] = value.get<std::string>();
  }
  return annotations;
}

Result<Decision, CniError> decide(const Settings& settings, const Environment& env,
                                  const std::map<std::string, std::string>& annotations,
                                  const std::vector<std::string>& addresses) {
  const PodIdentity pod = pod_identity(env);
  Decision decision;
  decision.name = workload_name(pod);
  if (std::find(settings.exclude_namespaces.begin(), settings.exclude_namespaces.end(),
                pod.k8s_namespace) != settings.exclude_namespaces.end()) {
    decision.reason = "namespace " + pod.k8s_namespace + " is in exclude_namespaces";
    return decision;
  }
  if (const std::string* enabled = find(annotations, kEnabled)) {
    if (*enabled == "false") {
      decision.reason = std::string("the pod opts out (") + kEnabled + ": \"false\")";
      return decision;
    }
    if (*enabled != "true") {
      return bad_annotation(kEnabled, *enabled, R"(expected "true" or "false")");
    }
  }
  const bool istio = find(annotations, kIstioStatus) != nullptr;
  const bool linkerd = find(annotations, kLinkerdVersion) != nullptr;
  if (istio && linkerd) {
    return bad_annotation(kIstioStatus, *find(annotations, kIstioStatus),
                          std::string("the pod also carries ") + kLinkerdVersion +
                              ": a pod has one sidecar, meshlane cannot tell which mesh it is in");
  }
  if (!istio && !linkerd) {
    // No sidecar was injected: redirecting its connections would lead nowhere.
    decision.reason =
        std::string("no sidecar (neither ") + kIstioStatus + " nor " + kLinkerdVersion + ")";
    return decision;
  }
  decision.mesh = istio ? Mesh::kIstio : Mesh::kLinkerd;
  decision.reason = istio ? std::string(kIstioStatus) : std::string(kLinkerdVersion);
  if (addresses.empty()) {
    return CniError{ErrorCode::kNoPodAddress,
                    "the previous plugin's result has no address on " + env.ifname,
                    "meshlane-cni registers the IPs on CNI_IFNAME inside the pod; put it after "
                    "the plugin that creates that interface in the conflist"};
  }

  const WorkloadConfig preset = workload_preset(istio ? MeshKind::kIstio : MeshKind::kLinkerd);
  nlohmann::json params = {{"name", decision.name},
                           {"netns", env.netns},
                           {"ips", addresses},
                           {"mesh", istio ? "istio" : "linkerd"},
                           {"interface", env.ifname}};
  nlohmann::json labels = {{kLabelManagedBy, kManagedByValue},
                           {kLabelContainerId, label_value(pod.container_id)}};
  if (!pod.k8s_namespace.empty()) {
    labels[kLabelNamespace] = label_value(pod.k8s_namespace);
  }
  if (!pod.pod_name.empty()) {
    labels[kLabelPod] = label_value(pod.pod_name);
  }
  params["labels"] = labels;

  if (const std::string* fast = find(annotations, kFastPath)) {
    if (*fast != "true" && *fast != "false") {
      return bad_annotation(kFastPath, *fast, R"(expected "true" or "false")");
    }
    if (*fast == "true") {
      params["fast_path"] = true;
    }
  }

  std::vector<int> exclude_in(preset.exclude_inbound_ports.begin(),
                              preset.exclude_inbound_ports.end());
  std::vector<int> exclude_out(preset.exclude_outbound_ports.begin(),
                               preset.exclude_outbound_ports.end());
  const char* in_key = istio ? kIstioExcludeInbound : kLinkerdSkipInbound;
  const char* out_key = istio ? kIstioExcludeOutbound : kLinkerdSkipOutbound;
  if (auto status = merge_ports(annotations, in_key, exclude_in); !status) {
    return status.error();
  }
  if (auto status = merge_ports(annotations, out_key, exclude_out); !status) {
    return status.error();
  }
  if (find(annotations, in_key) != nullptr) {
    params["exclude_inbound_ports"] = exclude_in;
  }
  if (find(annotations, out_key) != nullptr) {
    params["exclude_outbound_ports"] = exclude_out;
  }

  nlohmann::json exclude_out_cidrs = nlohmann::json::array();
  nlohmann::json exclude_in_cidrs = nlohmann::json::array();
  if (istio) {
    auto excluded = cidr_annotation(annotations, kIstioExcludeRanges);
    if (!excluded) {
      return excluded.error();
    }
    if (excluded.value()) {
      add_unique(exclude_out_cidrs, *excluded.value());
    }
    auto included = cidr_annotation(annotations, kIstioIncludeRanges);
    if (!included) {
      return included.error();
    }
    if (included.value() && included.value()->empty()) {
      add_unique(exclude_out_cidrs, kEverything);  // Istio: "" redirects no outbound traffic
    } else if (included.value()) {
      params["include_outbound_cidrs"] = *included.value();
    }
    if (const std::string* inbound = find(annotations, kIstioIncludeInbound)) {
      const std::string value = trim(*inbound);
      if (value.empty()) {
        add_unique(exclude_in_cidrs, kEverything);  // Istio: "" redirects no inbound traffic
      } else if (value != "*") {
        auto ports = parse_port_list(value);
        if (!ports) {
          return bad_annotation(kIstioIncludeInbound, *inbound, ports.error().message());
        }
        params["include_inbound_ports"] = ports.value();
      }
    }
  } else {
    auto skipped = cidr_annotation(annotations, kLinkerdSkipSubnets);
    if (!skipped) {
      return skipped.error();
    }
    if (skipped.value()) {
      add_unique(exclude_out_cidrs, *skipped.value());
    }
  }
  if (!exclude_out_cidrs.empty()) {
    params["exclude_outbound_cidrs"] = exclude_out_cidrs;
  }
  if (!exclude_in_cidrs.empty()) {
    params["exclude_inbound_cidrs"] = exclude_in_cidrs;
  }
  decision.enroll = true;
  decision.params = std::move(params);
  return decision;
}

}  // namespace meshlane::cni
