// meshlane-cni: the chained CNI plugin that registers meshed pods with meshlaned (docs/cni.md).
// The container runtime runs it with CNI_* variables and the network configuration on stdin;
// the result (or a CNI error object) goes to stdout, the log to stderr. cni/plugin.cpp does
// the work.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "cni/log.hpp"
#include "cni/plugin.hpp"
#include "cni/spec.hpp"

int main() {
  namespace cni = meshlane::cni;
  cni::Log log(std::cerr);
  try {
    const std::string input{std::istreambuf_iterator<char>(std::cin),
                            std::istreambuf_iterator<char>()};
    const cni::Outcome outcome = cni::run(
        [](const char* name) -> std::optional<std::string> {
          const char* value = std::getenv(name);
          return value == nullptr ? std::nullopt : std::optional<std::string>(value);
        },
        input, log);
    std::cout << outcome.output << std::flush;
    return outcome.exit_status;
  } catch (const std::exception& error) {
    // A bug, not an input error: the runtime still gets an error object it can show.
    const cni::CniError internal{cni::ErrorCode::kInternal, "meshlane-cni failed", error.what()};
    log.error(std::string("internal error: ") + error.what());
    std::cout << cni::error_json(internal, cni::kLatestVersion).dump() << '\n' << std::flush;
    return 1;
  }
}
