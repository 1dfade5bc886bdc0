// libbpf's messages in meshlaned's log: warnings as warnings (a verifier rejection cut to its
// last lines, the whole text at debug), the rest at debug and trace.
#pragma once

namespace meshlane {

// Installs the libbpf print callback; libbpf keeps one for the whole process.
void send_libbpf_log_to_spdlog();

}  // namespace meshlane
