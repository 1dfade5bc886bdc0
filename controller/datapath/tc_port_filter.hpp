// The marked-port filter of the tc programs (bpf/include/meshlane/tc_port_marks.h): which ports
// a steered flow may use, so that other packets skip the flow-map lookup. Used by the
// programs only while armed, which the controller does once it knows every flow in
// ml_tcflows_v3 has its ports marked.
#pragma once

#include <cstddef>

#include "common/error.hpp"
#include "datapath/pin_layout.hpp"

namespace meshlane {

// Every packet looks its flow up until arm_tc_port_filter(): called at start, before the new
// programs replace any old ones (whose flows may be unmarked).
Status disarm_tc_port_filter(const PinLayout& pins);
Status disarm_tc_port_filter(int marks_fd);

struct TcPortFilterReport {
  std::size_t flows = 0;      // flows in ml_tcflows_v3 whose ports were marked
  std::size_t app_ports = 0;  // ports marked in each set afterwards
  std::size_t inbound_ports = 0;
};

// Once this build's programs are the only ones that file flows (after attach): waits until
// no older program can still be running, marks the ports of every flow already filed (the
// programs mark the ones they file themselves) and arms the filter. On error the filter stays
// disarmed, which costs a lookup per packet and breaks nothing.
Result<TcPortFilterReport> arm_tc_port_filter(const PinLayout& pins);
// The same on the maps at these fds (ml_tcports_v1 and ml_tcflows_v3 layouts).
Result<TcPortFilterReport> arm_tc_port_filter(int marks_fd, int flows_fd);

}  // namespace meshlane
