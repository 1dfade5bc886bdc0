// Steering and close tracking of the inbound tc programs (bpf/include/meshlane/tc_flow.h).
#include <gtest/gtest.h>

#include <cstdint>

extern "C" {
// C headers shared with the BPF programs (meshlane/compiler.h makes them host code here).
#include "meshlane/map_room.h"
#include "meshlane/sock_key.h"
#include "meshlane/tc_flow.h"
}

namespace {

ml_workload istio_pod() {
  ml_workload wl{};
  wl.id = 1;
  wl.proxy_uid = 1337;
  wl.proxy_gid = 1337;
  wl.outbound_port = 15001;
  wl.inbound_port = 15006;
  wl.netns_cookie = 100;
  return wl;
}

// ---- ml_tc_should_steer ---------------------------------------------------------------------

TEST(TcShouldSteer, AppPortIsSteered) {
  const ml_workload wl = istio_pod();
  EXPECT_TRUE(ml_tc_should_steer(&wl, 8080, 0, 0));
  EXPECT_TRUE(ml_tc_should_steer(&wl, 80, 0, 0));
}

TEST(TcShouldSteer, InboundPortIsNotSteered) {
  const ml_workload wl = istio_pod();
  EXPECT_FALSE(ml_tc_should_steer(&wl, 15006, 0, 0));
  // Even when listed in include mode: it already is the inbound proxy.
  ml_workload include = istio_pod();
  include.flags |= ML_WL_INCLUDE_IN_PORTS;
  EXPECT_FALSE(ml_tc_should_steer(&include, 15006, ML_RULE_INCLUDE, 0));
}

TEST(TcShouldSteer, OutboundPortIsNotSteered) {
  const ml_workload wl = istio_pod();
  EXPECT_FALSE(ml_tc_should_steer(&wl, 15001, 0, 0));
}

TEST(TcShouldSteer, ExcludedPortIsNotSteered) {
  const ml_workload wl = istio_pod();
  EXPECT_FALSE(ml_tc_should_steer(&wl, 15020, ML_RULE_EXCLUDE, 0));
  EXPECT_FALSE(ml_tc_should_steer(&wl, 15090, ML_RULE_EXCLUDE, 0));
}

TEST(TcShouldSteer, IncludeModeSteersOnlyListedPorts) {
  ml_workload wl = istio_pod();
  wl.flags |= ML_WL_INCLUDE_IN_PORTS;
  EXPECT_FALSE(ml_tc_should_steer(&wl, 9090, 0, 0));
  EXPECT_TRUE(ml_tc_should_steer(&wl, 8080, ML_RULE_INCLUDE, 0));
  EXPECT_FALSE(ml_tc_should_steer(&wl, 8080, ML_RULE_EXCLUDE, 0));
  // Only the inbound include flag matters here.
  ml_workload outbound_only = istio_pod();
  outbound_only.flags |= ML_WL_INCLUDE_OUT_PORTS | ML_WL_INCLUDE_OUT_CIDRS;
  EXPECT_TRUE(ml_tc_should_steer(&outbound_only, 9090, 0, 0));
}

TEST(TcShouldSteer, ExcludedSourceIsNotSteered) {
  const ml_workload wl = istio_pod();
  EXPECT_FALSE(ml_tc_should_steer(&wl, 8080, 0, 1));
  ml_workload include = istio_pod();
  include.flags |= ML_WL_INCLUDE_IN_PORTS;
  EXPECT_FALSE(ml_tc_should_steer(&include, 8080, ML_RULE_INCLUDE, 1));
}

// ---- ml_tc_flow_track -----------------------------------------------------------------------

constexpr int kInbound = 1;
constexpr int kOutbound = 0;

ml_tc_flow steered_flow() {
  ml_tc_flow flow{};
  flow.orig_port = 8080;
  flow.inbound_port = 15006;
  return flow;
}

void expect_untouched_ports(const ml_tc_flow& flow) {
  EXPECT_EQ(flow.orig_port, 8080);
  EXPECT_EQ(flow.inbound_port, 15006);
}

// A segment: flags, its sequence number, what it acknowledges and how many data bytes it holds.
ml_tcp_segment seg(__u8 flags, __u32 seq = 0, __u32 ack_seq = 0, __u32 payload_len = 0) {
  ml_tcp_segment segment{};
  segment.flags = flags;
  segment.seq = seq;
  segment.ack_seq = ack_seq;
  segment.payload_len = payload_len;
  return segment;
}

int track(ml_tc_flow& flow, const ml_tcp_segment& segment, int inbound) {
  return ml_tc_flow_track(&flow, &segment, inbound);
}

// Sequence numbers of the two sides in the tests below: the remote side (the client off the
// node) sends from kRemoteSeq, the pod from kPodSeq.
constexpr __u32 kRemoteSeq = 1000;
constexpr __u32 kPodSeq = 5000;

TEST(TcFlowTrack, DataKeepsTheFlow) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq, kPodSeq, 100), kInbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq, kRemoteSeq + 100), kOutbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_SYN | ML_TCP_ACK), kOutbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in, 0);
  EXPECT_EQ(flow.fin_out, 0);
  expect_untouched_ports(flow);
}

TEST(TcFlowTrack, RstDeletesAtOnceInEitherDirection) {
  ml_tc_flow in = steered_flow();
  EXPECT_EQ(track(in, seg(ML_TCP_RST), kInbound), ML_TC_FLOW_DELETE);
  ml_tc_flow out = steered_flow();
  EXPECT_EQ(track(out, seg(ML_TCP_RST | ML_TCP_ACK), kOutbound), ML_TC_FLOW_DELETE);
  ml_tc_flow half_closed = steered_flow();
  half_closed.fin_in = 1;
  EXPECT_EQ(track(half_closed, seg(ML_TCP_RST), kOutbound), ML_TC_FLOW_DELETE);
}

TEST(TcFlowTrack, FinFromTheRemoteRecordsWhereItEnds) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq, 200), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in, 1);
  EXPECT_EQ(flow.fin_in_ack, kRemoteSeq + 200 + 1) << "its data, then the FIN itself";
  EXPECT_EQ(flow.fin_out, 0);
  expect_untouched_ports(flow);
}

TEST(TcFlowTrack, FinFromThePodRecordsWhereItEnds) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in, 0);
  EXPECT_EQ(flow.fin_out, 1);
  EXPECT_EQ(flow.fin_out_ack, kPodSeq + 1);
}

TEST(TcFlowTrack, AckAfterOneFinKeepsTheFlow) {
  ml_tc_flow flow = steered_flow();
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq, kRemoteSeq + 1), kOutbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_acked, 1);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 1, kPodSeq), kInbound), ML_TC_FLOW_KEEP);
}

TEST(TcFlowTrack, RemoteClosesFirstFinalAckFromRemoteDeletes) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq, kRemoteSeq + 1), kOutbound), ML_TC_FLOW_KEEP);
  // The pod's FIN completes both FINs but must still leave the entry for the last ACK.
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq + 1), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in, 1);
  EXPECT_EQ(flow.fin_out, 1);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 1, kPodSeq + 1), kInbound), ML_TC_FLOW_DELETE);
}

TEST(TcFlowTrack, PodClosesFirstFinalAckFromPodDeletes) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  // The remote side's FIN+ACK acknowledges the pod's FIN and sends its own.
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq + 1), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_out_acked, 1);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq + 1, kRemoteSeq + 1), kOutbound),
            ML_TC_FLOW_DELETE);
}

TEST(TcFlowTrack, SimultaneousCloseDeletesAtTheSecondFinalAck) {
  ml_tc_flow flow = steered_flow();
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 1, kPodSeq + 1), kInbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq + 1, kRemoteSeq + 1), kOutbound),
            ML_TC_FLOW_DELETE);
}

// The bug of ml_tcflows_v2: it ended the flow at the first pure ACK after both FINs.
TEST(TcFlowTrack, DuplicateAckForALostSegmentAfterBothFinsKeepsTheFlow) {
  ml_tc_flow flow = steered_flow();
  // The pod has closed and the remote side acknowledged it.
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  ASSERT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq, kPodSeq + 1, 1000), kInbound), ML_TC_FLOW_KEEP);
  // The remote side's FIN arrives after a lost segment [1000+1000, 1000+2000).
  ASSERT_EQ(
      track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq + 2000, kPodSeq + 1, 500), kInbound),
      ML_TC_FLOW_KEEP);
  // The pod's duplicate ACK asks for the lost segment: the flow must stay for its retransmission.
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq + 1, kRemoteSeq + 1000), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_acked, 0);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 1000, kPodSeq + 1, 1000), kInbound),
            ML_TC_FLOW_KEEP);
  // Everything up to and with the FIN acknowledged: the close is complete.
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq + 1, kRemoteSeq + 2500 + 1), kOutbound),
            ML_TC_FLOW_DELETE);
}

TEST(TcFlowTrack, WindowUpdateAfterBothFinsKeepsTheFlow) {
  ml_tc_flow flow = steered_flow();
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq, 300), kInbound),
            ML_TC_FLOW_KEEP);
  // The remote side has not acknowledged the pod's FIN yet; a window update from the pod for
  // data before the remote FIN neither.
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq + 1, kRemoteSeq + 100), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 301, kPodSeq), kInbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_out_acked, 0);
}

TEST(TcFlowTrack, RetransmittedFinKeepsWhereTheFirstEnded) {
  ml_tc_flow flow = steered_flow();
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq, kPodSeq, 10), kInbound),
            ML_TC_FLOW_KEEP);
  // A retransmission that starts earlier (segments collapsed) ends at the same place.
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kRemoteSeq - 90, kPodSeq, 100), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_ack, kRemoteSeq + 11);
}

TEST(TcFlowTrack, SequenceNumbersWrap) {
  ml_tc_flow flow = steered_flow();
  const __u32 near_end = 0xffffff00U;
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, near_end, kPodSeq, 0x200), kInbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_ack, 0x101U);
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq, 0xffffff80U), kOutbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_acked, 0) << "before the wrap is before the FIN";
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kPodSeq, 0x101U), kOutbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_in_acked, 1);
}

TEST(TcFlowTrack, SegmentWithoutAckDoesNotAcknowledge) {
  ml_tc_flow flow = steered_flow();
  ASSERT_EQ(track(flow, seg(ML_TCP_FIN | ML_TCP_ACK, kPodSeq, kRemoteSeq), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(track(flow, seg(0, kRemoteSeq, kPodSeq + 1), kInbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.fin_out_acked, 0);
}

TEST(TcFlowTrack, FlowConvertedWithBothFinsAcknowledgedEndsAtItsNextSegment) {
  // map_upgrade.cpp marks the FINs of a retired layout as acknowledged.
  ml_tc_flow flow = steered_flow();
  flow.fin_in = flow.fin_out = 1;
  flow.fin_in_acked = flow.fin_out_acked = 1;
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq, kPodSeq), kInbound), ML_TC_FLOW_DELETE);
}

// ---- ml_tc_syn_decide: the SYN of a flow inserted with BPF_NOEXIST ----------------------------

constexpr long kE2big = -7;
constexpr long kEexist = -17;

TEST(TcSynDecide, NewFlowIsSteered) {
  EXPECT_EQ(ml_tc_syn_decide(0, nullptr, 8080), ML_TC_SYN_STEER_NEW);
}

TEST(TcSynDecide, RetransmittedSynForTheSamePortIsSteeredAgain) {
  const ml_tc_flow existing = steered_flow();
  EXPECT_EQ(ml_tc_syn_decide(kEexist, &existing, existing.orig_port), ML_TC_SYN_STEER_RETRANSMIT);
}

TEST(TcSynDecide, SameKeyForAnotherPortIsACollision) {
  // One client address and port to two app ports of one pod: steered, both would be the same
  // 4-tuple at the inbound port.
  const ml_tc_flow existing = steered_flow();
  EXPECT_EQ(ml_tc_syn_decide(kEexist, &existing, static_cast<__u16>(existing.orig_port + 1)),
            ML_TC_SYN_COLLISION);
}

TEST(TcSynDecide, KeyThatWentAwayInBetweenIsNotSteered) {
  EXPECT_EQ(ml_tc_syn_decide(kEexist, nullptr, 8080), ML_TC_SYN_COLLISION);
}

TEST(TcSynDecide, FullMapIsNotSteered) {
  EXPECT_EQ(ml_tc_syn_decide(kE2big, nullptr, 8080), ML_TC_SYN_FLOWS_FULL);
  EXPECT_EQ(ml_tc_syn_decide(-12 /* ENOMEM */, nullptr, 8080), ML_TC_SYN_FLOWS_FULL);
}

// ---- acked, and the controller's sweep of flows left at their SYN ------------------------------

TEST(TcFlowTrack, ClientAckMarksTheFlowAcked) {
  ml_tc_flow flow = steered_flow();
  ASSERT_EQ(flow.acked, 0);
  EXPECT_EQ(track(flow, seg(ML_TCP_SYN | ML_TCP_ACK, kPodSeq, kRemoteSeq + 1), kOutbound),
            ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.acked, 0) << "the pod's SYN-ACK does not complete the handshake";
  EXPECT_EQ(track(flow, seg(ML_TCP_ACK, kRemoteSeq + 1, kPodSeq + 1), kInbound), ML_TC_FLOW_KEEP);
  EXPECT_EQ(flow.acked, 1);
}

TEST(TcFlowStale, OnlyUnackedFlowsOlderThanTheTimeoutAreStale) {
  ml_tc_flow flow = steered_flow();
  flow.start_ns = 1000;
  EXPECT_FALSE(ml_tc_flow_stale(&flow, 1000 + ML_TC_FLOW_SYN_TIMEOUT_NS));
  EXPECT_TRUE(ml_tc_flow_stale(&flow, 1001 + ML_TC_FLOW_SYN_TIMEOUT_NS));
  flow.acked = 1;
  EXPECT_FALSE(ml_tc_flow_stale(&flow, 1001 + ML_TC_FLOW_SYN_TIMEOUT_NS))
      << "an established idle connection is never swept";
  flow.acked = 0;
  EXPECT_FALSE(ml_tc_flow_stale(&flow, 500)) << "a clock behind the stamp is not an age";
}

// ---- ml_map_has_room: interception stops before ml_origdst_v2 is full -------------------------

TEST(MapRoom, KeepsAnEighthFree) {
  EXPECT_TRUE(ml_map_has_room(0, 65536));
  EXPECT_TRUE(ml_map_has_room(65536 - 8192 - 1, 65536));
  EXPECT_FALSE(ml_map_has_room(65536 - 8192, 65536));
  EXPECT_FALSE(ml_map_has_room(65536, 65536));
}

TEST(MapRoom, SmallMapsKeepAtLeastOneFree) {
  EXPECT_TRUE(ml_map_has_room(6, 8));  // headroom 1
  EXPECT_FALSE(ml_map_has_room(7, 8));
  EXPECT_TRUE(ml_map_has_room(2, 4));  // 4 / 8 = 0: still one
  EXPECT_FALSE(ml_map_has_room(3, 4));
  EXPECT_FALSE(ml_map_has_room(0, 1));  // a one-entry map never has room to spare
  EXPECT_TRUE(ml_map_has_room(13, 16));
  EXPECT_FALSE(ml_map_has_room(14, 16));
}

}  // namespace
