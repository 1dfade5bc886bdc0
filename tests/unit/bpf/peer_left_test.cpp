// Whether a spliced socket's peer has left the splice (bpf/include/meshlane/peer_left.h),
// compiled for the host.
#include "meshlane/peer_left.h"

#include <gtest/gtest.h>

namespace {

TEST(PeerLeft, NothingByTcpKeepsTheSplice) { EXPECT_EQ(ml_peer_left_splice(0, 0), 0); }

TEST(PeerLeft, AnyDataByteByTcpMeansThePeerLeft) {
  EXPECT_EQ(ml_peer_left_splice(1, 0), 1);
  EXPECT_EQ(ml_peer_left_splice(64, 0), 1);
  EXPECT_EQ(ml_peer_left_splice(1ULL << 40, 0), 1);
}

TEST(PeerLeft, APeersFinAloneIsNotASend) {
  // TCP counts the FIN as one received byte; a peer that half-closed while spliced sent no
  // data by TCP.
  EXPECT_EQ(ml_peer_left_splice(1, 1), 0);
}

TEST(PeerLeft, DataByTcpBeforeAFinStillCounts) {
  EXPECT_EQ(ml_peer_left_splice(2, 1), 1);
  EXPECT_EQ(ml_peer_left_splice(4097, 1), 1);
}

}  // namespace
