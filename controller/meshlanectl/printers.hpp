// meshlanectl's tables: one printer per control method's result (-o table), and the policy
// file reader of `policy apply`.
#pragma once

#include <optional>
#include <string>

#include "meshlanectl/cli.hpp"

namespace meshlane::cli {

void print_status(const json& r);
void print_stats(const json& r);
void print_policy_apply(const json& r);
void print_policy_list(const json& r);
std::optional<json> read_policy_file(const std::string& path);
void print_workload_list(const json& r);
void print_workload(const json& r);
void print_workload_add(const json& r);
void print_workload_del(const json& r);
void print_conns(const json& r);
// explain: the rule that decided interception and splicing, then the records behind it.
void print_explain(const json& r);

}  // namespace meshlane::cli
