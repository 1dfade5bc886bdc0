#include "policy/policy.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <set>
#include <string_view>

namespace meshlane::policy {

namespace {

using nlohmann::json;

Error at(const std::string& path, const std::string& what) {
  return make_error(EINVAL, "policy " + path + ": " + what);
}

std::string member(const std::string& path, std::string_view key) {
  return path + "." + std::string(key);
}

Status only_members(const json& object, const std::string& path,
                    std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (std::string_view name : known) {
        list += (list.empty() ? "" : ", ") + std::string(name);
      }
      return at(member(path, key), "unknown member (known: " + list + ")");
    }
  }
  return {};
}

Result<std::string> string_member(const json& object, const std::string& path,
                                  std::string_view key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return at(member(path, key), it == object.end() ? "required" : "must be a string");
  }
  return it->get<std::string>();
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

Result<std::map<std::string, std::string>> parse_labels(const json& value,
                                                        const std::string& path) {
  if (!value.is_object() || value.empty()) {
    return at(path, "must be a non-empty object of label: value");
  }
  std::map<std::string, std::string> labels;
  for (const auto& [key, label] : value.items()) {
    if (!is_valid_label_key(key)) {
      return at(member(path, key), "not a valid label key (1..253 of A-Z a-z 0-9 _ . - /)");
    }
    if (!label.is_string() || !is_valid_label_value(label.get<std::string>())) {
      return at(member(path, key), "label value must be a string of 0..63 A-Z a-z 0-9 _ . -");
    }
    labels[key] = label.get<std::string>();
  }
  return labels;
}

// Host bits cleared, so that equal prefixes compare equal.
Cidr masked(Cidr cidr) {
  for (std::size_t bit = cidr.prefix_length; bit < 128; ++bit) {
    cidr.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return cidr;
}

Result<PeerSelector> parse_selector(const json& value, const std::string& path, bool allow_cidr) {
  if (!value.is_object() || value.size() != 1) {
    return at(path, allow_cidr ? "must be an object with one of workload, labels, cidr"
                               : "must be an object with one of workload, labels");
  }
  PeerSelector selector;
  // An iterator into `value` itself: items() is a proxy that must not outlive the statement.
  const auto first = value.begin();
  const std::string key = first.key();
  const json& inner = first.value();
  if (key == "workload") {
    if (!inner.is_string() || !valid_name(inner.get<std::string>())) {
      return at(member(path, key), "must be a workload name (1..63 of A-Z a-z 0-9 _ . -)");
    }
    selector.workload = inner.get<std::string>();
  } else if (key == "labels") {
    auto labels = parse_labels(inner, member(path, key));
    if (!labels) {
      return labels.error();
    }
    selector.labels = std::move(labels.value());
  } else if (key == "cidr" && allow_cidr) {
    const std::optional<Cidr> cidr =
        inner.is_string() ? parse_cidr(inner.get<std::string>()) : std::nullopt;
    if (!cidr) {
      return at(
          member(path, key),
          "must be a CIDR with its host bits zero, such as \"198.18.0.0/16\" or \"fd00::/8\"");
    }
    selector.cidr = masked(*cidr);
  } else {
    return at(member(path, key), allow_cidr ? "unknown selector (use workload, labels or cidr)"
                                            : "unknown selector (use workload or labels)");
  }
  return selector;
}

Result<PortRange> parse_port_range(const json& value, const std::string& path) {
  const std::string form = "must be a port 1..65535 or a range \"first-last\"";
  if (value.is_number_integer()) {
    const auto port = value.get<std::int64_t>();
    if (port < 1 || port > 65535) {
      return at(path, form);
    }
    return PortRange{static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port)};
  }
  if (!value.is_string()) {
    return at(path, form);
  }
  const std::string text = value.get<std::string>();
  const std::size_t dash = text.find('-');
  auto number = [](std::string_view digits) -> std::optional<std::uint16_t> {
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    const long parsed = std::stol(std::string(digits));
    if (parsed < 1 || parsed > 65535) {
      return std::nullopt;
    }
    return static_cast<std::uint16_t>(parsed);
  };
  const auto first = number(std::string_view(text).substr(0, dash));
  const auto last =
      dash == std::string::npos ? first : number(std::string_view(text).substr(dash + 1));
  if (!first || !last || *first > *last) {
    return at(path, form + " (got \"" + text + "\")");
  }
  return PortRange{*first, *last};
}

Result<PolicyRule> parse_rule(const json& value, const std::string& path, std::string_view peers) {
  if (!value.is_object()) {
    return at(path, "must be an object with action, " + std::string(peers) + " and ports");
  }
  if (auto status = only_members(value, path, {"action", peers, "ports"}); !status) {
    return status.error();
  }
  PolicyRule rule;
  auto action = string_member(value, path, "action");
  if (!action) {
    return action.error();
  }
  if (*action == "allow") {
    rule.action = RuleAction::kAllow;
  } else if (*action == "deny") {
    rule.action = RuleAction::kDeny;
  } else {
    return at(member(path, "action"), "must be \"allow\" or \"deny\"");
  }
  if (const auto it = value.find(peers); it != value.end()) {
    if (!it->is_array()) {
      return at(member(path, peers), "must be a list of selectors");
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      auto selector =
          parse_selector((*it)[i], member(path, peers) + "[" + std::to_string(i) + "]", true);
      if (!selector) {
        return selector.error();
      }
      rule.peers.push_back(std::move(selector.value()));
    }
  }
  if (const auto it = value.find("ports"); it != value.end()) {
    if (!it->is_array()) {
      return at(member(path, "ports"), "must be a list of ports or \"first-last\" ranges");
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      auto range =
          parse_port_range((*it)[i], member(path, "ports") + "[" + std::to_string(i) + "]");
      if (!range) {
        return range.error();
      }
      rule.ports.push_back(range.value());
    }
  }
  return rule;
}

Status parse_rules(const json& object, const std::string& path, std::string_view key,
                   std::string_view peers, std::vector<PolicyRule>& out) {
  const auto it = object.find(key);
  if (it == object.end()) {
    return {};
  }
  if (!it->is_array() || it->size() > kMaxRulesPerPolicy) {
    return at(member(path, key),
              "must be a list of at most " + std::to_string(kMaxRulesPerPolicy) + " rules");
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    auto rule = parse_rule((*it)[i], member(path, key) + "[" + std::to_string(i) + "]", peers);
    if (!rule) {
      return rule.error();
    }
    out.push_back(std::move(rule.value()));
  }
  return {};
}

Result<std::vector<std::uint16_t>> parse_port_list(const json& value, const std::string& path) {
  if (!value.is_array()) {
    return at(path, "must be a list of ports 1..65535");
  }
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const json& port = value[i];
    if (!port.is_number_integer() || port.get<std::int64_t>() < 1 ||
        port.get<std::int64_t>() > 65535) {
      return at(path + "[" + std::to_string(i) + "]", "must be a port 1..65535");
    }
    ports.push_back(static_cast<std::uint16_t>(port.get<std::int64_t>()));
  }
  return ports;
}

Result<std::vector<Cidr>> parse_cidr_list(const json& value, const std::string& path) {
  if (!value.is_array()) {
    return at(path, "must be a list of CIDRs");
  }
  std::vector<Cidr> cidrs;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::optional<Cidr> cidr =
        value[i].is_string() ? parse_cidr(value[i].get<std::string>()) : std::nullopt;
    if (!cidr) {
      return at(path + "[" + std::to_string(i) + "]",
                "must be a CIDR with its host bits zero, such as \"198.18.0.0/16\"");
    }
    cidrs.push_back(*cidr);
  }
  return cidrs;
}

struct PortListKey {
  const char* name;
  std::optional<std::vector<std::uint16_t>> PolicyOverrides::*field;
};
struct CidrListKey {
  const char* name;
  std::optional<std::vector<Cidr>> PolicyOverrides::*field;
};
const PortListKey kInterceptionPorts[] = {
    {"include_outbound_ports", &PolicyOverrides::include_outbound_ports},
    {"exclude_outbound_ports", &PolicyOverrides::exclude_outbound_ports},
    {"include_inbound_ports", &PolicyOverrides::include_inbound_ports},
    {"exclude_inbound_ports", &PolicyOverrides::exclude_inbound_ports},
};
const CidrListKey kInterceptionCidrs[] = {
    {"include_outbound_cidrs", &PolicyOverrides::include_outbound_cidrs},
    {"exclude_outbound_cidrs", &PolicyOverrides::exclude_outbound_cidrs},
    {"exclude_inbound_cidrs", &PolicyOverrides::exclude_inbound_cidrs},
};

// An object member {"enabled": bool, "exclude_ports": [ports]} (both optional), as
// "acceleration" and "fast_path" are written.
Status parse_switch(const json& object, const std::string& path, const char* name,
                    std::optional<bool>& enabled_out,
                    std::optional<std::vector<std::uint16_t>>& exclude_ports_out) {
  const auto it = object.find(name);
  if (it == object.end()) {
    return {};
  }
  const std::string where = member(path, name);
  if (!it->is_object()) {
    return at(where, "must be an object with enabled and/or exclude_ports");
  }
  if (auto status = only_members(*it, where, {"enabled", "exclude_ports"}); !status) {
    return status;
  }
  if (const auto enabled = it->find("enabled"); enabled != it->end()) {
    if (!enabled->is_boolean()) {
      return at(member(where, "enabled"), "must be true or false");
    }
    enabled_out = enabled->get<bool>();
  }
  if (const auto ports = it->find("exclude_ports"); ports != it->end()) {
    auto list = parse_port_list(*ports, member(where, "exclude_ports"));
    if (!list) {
      return list.error();
    }
    exclude_ports_out = std::move(list.value());
  }
  return {};
}

Status parse_overrides(const json& object, const std::string& path, PolicyOverrides& out) {
  if (const auto it = object.find("interception"); it != object.end()) {
    const std::string where = member(path, "interception");
    if (!it->is_object()) {
      return at(where, "must be an object of [[workload]] port and CIDR lists");
    }
    for (const auto& [key, value] : it->items()) {
      bool known = false;
      for (const PortListKey& list : kInterceptionPorts) {
        if (key == list.name) {
          auto ports = parse_port_list(value, member(where, key));
          if (!ports) {
            return ports.error();
          }
          out.*list.field = std::move(ports.value());
          known = true;
        }
      }
      for (const CidrListKey& list : kInterceptionCidrs) {
        if (key == list.name) {
          auto cidrs = parse_cidr_list(value, member(where, key));
          if (!cidrs) {
            return cidrs.error();
          }
          out.*list.field = std::move(cidrs.value());
          known = true;
        }
      }
      if (!known) {
        return at(member(where, key),
                  "unknown member (known: include_outbound_ports, exclude_outbound_ports, "
                  "include_inbound_ports, exclude_inbound_ports, include_outbound_cidrs, "
                  "exclude_outbound_cidrs, exclude_inbound_cidrs)");
      }
    }
  }
  if (auto status = parse_switch(object, path, "acceleration", out.acceleration,
                                 out.exclude_acceleration_ports);
      !status) {
    return status;
  }
  return parse_switch(object, path, "fast_path", out.fast_path, out.fast_path_exclude_ports);
}

// The inverse of parse_switch: nothing when neither member is set.
void switch_to_json(const std::optional<bool>& enabled,
                    const std::optional<std::vector<std::uint16_t>>& exclude_ports,
                    const char* name, json& policy) {
  json object = json::object();
  if (enabled) {
    object["enabled"] = *enabled;
  }
  if (exclude_ports) {
    object["exclude_ports"] = *exclude_ports;
  }
  if (!object.empty()) {
    policy[name] = std::move(object);
  }
}

json overrides_to_json(const PolicyOverrides& overrides, json& policy) {
  json interception = json::object();
  for (const PortListKey& list : kInterceptionPorts) {
    if (overrides.*list.field) {
      interception[list.name] = *(overrides.*list.field);
    }
  }
  for (const CidrListKey& list : kInterceptionCidrs) {
    if (overrides.*list.field) {
      json cidrs = json::array();
      for (const Cidr& cidr : *(overrides.*list.field)) {
        cidrs.push_back(to_string(cidr));
      }
      interception[list.name] = std::move(cidrs);
    }
  }
  if (!interception.empty()) {
    policy["interception"] = std::move(interception);
  }
  switch_to_json(overrides.acceleration, overrides.exclude_acceleration_ports, "acceleration",
                 policy);
  switch_to_json(overrides.fast_path, overrides.fast_path_exclude_ports, "fast_path", policy);
  return policy;
}

json selector_to_json(const PeerSelector& selector) {
  if (selector.workload) {
    return {{"workload", *selector.workload}};
  }
  if (selector.cidr) {
    return {{"cidr", to_string(*selector.cidr)}};
  }
  return {{"labels", selector.labels}};
}

json rule_to_json(const PolicyRule& rule, std::string_view peers) {
  json object = {{"action", to_string(rule.action)}};
  if (!rule.peers.empty()) {
    json list = json::array();
    for (const PeerSelector& peer : rule.peers) {
      list.push_back(selector_to_json(peer));
    }
    object[std::string(peers)] = std::move(list);
  }
  if (!rule.ports.empty()) {
    json list = json::array();
    for (const PortRange& range : rule.ports) {
      if (range.first == range.last) {
        list.push_back(range.first);
      } else {
        list.push_back(std::to_string(range.first) + "-" + std::to_string(range.last));
      }
    }
    object["ports"] = std::move(list);
  }
  return object;
}

bool address_in(const std::array<std::uint8_t, 16>& address, const Cidr& cidr) {
  for (std::size_t bit = 0; bit < cidr.prefix_length; ++bit) {
    const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((address[bit / 8] & mask) != (cidr.address[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

}  // namespace

const char* to_string(RuleAction action) { return action == RuleAction::kAllow ? "allow" : "deny"; }

Result<Policy> parse_policy(const json& object, const std::string& path) {
  if (!object.is_object()) {
    return at(path, "must be an object with name, workload or selector, ingress, egress");
  }
  if (auto status = only_members(object, path,
                                 {"name", "workload", "selector", "ingress", "egress",
                                  "interception", "acceleration", "fast_path"});
      !status) {
    return status.error();
  }
  Policy policy;
  auto name = string_member(object, path, "name");
  if (!name) {
    return name.error();
  }
  if (!valid_name(*name)) {
    return at(member(path, "name"),
              "\"" + *name + "\" is not a valid policy name (1..63 of A-Z a-z 0-9 _ . -)");
  }
  policy.name = *name;
  const bool by_name = object.contains("workload");
  const bool by_labels = object.contains("selector");
  if (by_name == by_labels) {
    return at(path, "needs exactly one of \"workload\" (a name) and \"selector\" (labels)");
  }
  if (by_name) {
    auto target = parse_selector(json{{"workload", object["workload"]}}, path, false);
    if (!target) {
      return target.error();
    }
    policy.target = std::move(target.value());
  } else {
    auto labels = parse_labels(object["selector"], member(path, "selector"));
    if (!labels) {
      return labels.error();
    }
    policy.target.labels = std::move(labels.value());
  }
  if (auto status = parse_rules(object, path, "ingress", "from", policy.ingress); !status) {
    return status.error();
  }
  if (auto status = parse_rules(object, path, "egress", "to", policy.egress); !status) {
    return status.error();
  }
  if (auto status = parse_overrides(object, path, policy.overrides); !status) {
    return status.error();
  }
  return policy;
}

Result<std::vector<Policy>> parse_policy_document(const json& document) {
  if (document.is_object() && !document.contains("policies")) {
    auto policy = parse_policy(document, "(document)");
    if (!policy) {
      return policy.error();
    }
    return std::vector<Policy>{std::move(policy.value())};
  }
  if (!document.is_object() || !document["policies"].is_array() || document.size() != 1) {
    return at("(document)", "must be {\"policies\": [...]} or a single policy object");
  }
  const json& list = document["policies"];
  if (list.size() > kMaxPolicies) {
    return at("policies", "more than " + std::to_string(kMaxPolicies) + " policies");
  }
  std::vector<Policy> policies;
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = "policies[" + std::to_string(i) + "]";
    auto policy = parse_policy(list[i], path);
    if (!policy) {
      return policy.error();
    }
    if (!names.insert(policy->name).second) {
      return at(path + ".name", "duplicate policy name \"" + policy->name + "\"");
    }
    policies.push_back(std::move(policy.value()));
  }
  return policies;
}

json policy_to_json(const Policy& policy) {
  json object = {{"name", policy.name}};
  if (policy.target.workload) {
    object["workload"] = *policy.target.workload;
  } else {
    object["selector"] = policy.target.labels;
  }
  json ingress = json::array();
  for (const PolicyRule& rule : policy.ingress) {
    ingress.push_back(rule_to_json(rule, "from"));
  }
  json egress = json::array();
  for (const PolicyRule& rule : policy.egress) {
    egress.push_back(rule_to_json(rule, "to"));
  }
  object["ingress"] = std::move(ingress);
  object["egress"] = std::move(egress);
  return overrides_to_json(policy.overrides, object);
}

std::vector<WorkloadConfig> apply_policy_overrides(std::vector<WorkloadConfig> workloads,
                                                   const std::vector<Policy>& policies) {
  std::vector<const Policy*> ordered;
  for (const Policy& policy : policies) {
    ordered.push_back(&policy);
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const Policy* a, const Policy* b) { return a->name < b->name; });
  for (WorkloadConfig& workload : workloads) {
    for (const Policy* policy : ordered) {
      if (!selects(policy->target, workload)) {
        continue;
      }
      const PolicyOverrides& o = policy->overrides;
      auto take = [](auto& field, const auto& override_value) {
        if (override_value) {
          field = *override_value;
        }
      };
      take(workload.include_outbound_ports, o.include_outbound_ports);
      take(workload.exclude_outbound_ports, o.exclude_outbound_ports);
      take(workload.include_inbound_ports, o.include_inbound_ports);
      take(workload.exclude_inbound_ports, o.exclude_inbound_ports);
      take(workload.include_outbound_cidrs, o.include_outbound_cidrs);
      take(workload.exclude_outbound_cidrs, o.exclude_outbound_cidrs);
      take(workload.exclude_inbound_cidrs, o.exclude_inbound_cidrs);
      take(workload.acceleration, o.acceleration);
      take(workload.exclude_acceleration_ports, o.exclude_acceleration_ports);
      take(workload.fast_path, o.fast_path);
      take(workload.fast_path_exclude_ports, o.fast_path_exclude_ports);
    }
  }
  return workloads;
}

bool selects(const PeerSelector& selector, const WorkloadConfig& workload) {
  if (selector.workload) {
    return *selector.workload == workload.name;
  }
  if (selector.cidr) {
    return std::any_of(workload.ips.begin(), workload.ips.end(),
                       [&](const IpAddress& ip) { return address_in(ip.bytes, *selector.cidr); });
  }
  if (selector.labels.empty()) {
    return false;
  }
  return std::all_of(selector.labels.begin(), selector.labels.end(), [&](const auto& label) {
    const auto it = workload.labels.find(label.first);
    return it != workload.labels.end() && it->second == label.second;
  });
}

}  // namespace meshlane::policy
