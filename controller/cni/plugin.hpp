// One invocation of meshlane-cni: the CNI command from the environment, the configuration from
// stdin, what is printed on stdout and the exit status. meshlane-cni/main.cpp only wires this
// to the process; the unit tests call it directly against a fake daemon.
#pragma once

#include <string>
#include <string_view>

#include "cni/log.hpp"
#include "cni/spec.hpp"

namespace meshlane::cni {

struct Outcome {
  int exit_status = 0;
  std::string output;  // stdout: a result, an error object, version info, or nothing
};

// ADD: prints prevResult unchanged on success, whether the pod was enrolled or skipped.
// DEL: always succeeds once the input parses (missing workloads, a daemon that is down).
// CHECK, STATUS, GC, VERSION: docs/cni.md. Failures print error_json() and exit 1.
Outcome run(const EnvLookup& env, std::string_view input, Log& log);

}  // namespace meshlane::cni
