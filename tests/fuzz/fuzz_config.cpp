// Fuzzes the config file parser (parse_config on arbitrary TOML text). Besides crashes and
// sanitizer reports it checks that:
//   - a rejected file gets a message that starts with the file name (file:line:column: ...);
//   - every workload of an accepted file survives the round trip through its JSON form
//     (workload_to_json -> parse_workload_json, what the state file and workload.add rely on).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "fuzz_check.hpp"
#include "workloads/registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using meshlane::fuzz::require;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string source = "fuzz.toml";
  auto config = meshlane::parse_config(text, source);
  if (!config) {
    const std::string message = config.error().message();
    require(message.rfind(source, 0) == 0, "a config error names the file first", message);
    return 0;
  }
  for (const meshlane::WorkloadConfig& workload : config->workloads) {
    const nlohmann::json spec = meshlane::workloads::workload_to_json(workload);
    auto reparsed = meshlane::parse_workload_json(spec, "", "workload");
    const std::string dumped = spec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    require(reparsed.ok(), "a configured workload's JSON form parses back", dumped);
    require(workload == reparsed.value(),
            "a configured workload's JSON form parses back to the same workload", dumped);
  }
  return 0;
}
