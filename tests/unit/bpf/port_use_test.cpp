// The per-port judgement of whether splicing pays (bpf/include/meshlane/port_use.h), compiled
// for the host.
#include "meshlane/port_use.h"

#include <gtest/gtest.h>

namespace {

TEST(PortUse, EveryConnectionIsSplicedUntilEnoughEndsAreJudged) {
  EXPECT_FALSE(ml_port_use_short(0, 0));
  EXPECT_FALSE(ml_port_use_short(0, ML_USE_MIN_ENDS - 1));
  EXPECT_TRUE(ml_port_use_short(0, ML_USE_MIN_ENDS));
}

TEST(PortUse, APortIsShortWhileFewerThanOneEndInEightIsBusy) {
  // 64 ends: 8 busy is exactly one in eight, so the port still splices.
  EXPECT_FALSE(ml_port_use_short(8, 56));
  EXPECT_TRUE(ml_port_use_short(7, 57));
  // Persistent connections (both ends busy) and one-way streams (one end busy) splice.
  EXPECT_FALSE(ml_port_use_short(128, 0));
  EXPECT_FALSE(ml_port_use_short(64, 64));
}

TEST(PortUse, CountsNearTheTopOfTheRangeDoNotOverflow) {
  EXPECT_TRUE(ml_port_use_short(0, 0xffffffffu));
  EXPECT_FALSE(ml_port_use_short(0xffffffffu, 0xffffffffu));
}

TEST(PortUse, OneIn16SkippedConnectionsIsWatchedAsASample) {
  // Samples stay unspliced and cost little, so a port turning busy is noticed within 16.
  EXPECT_EQ(ML_USE_SAMPLE_EVERY, 16);
  int sampled = 0;
  for (__u32 skipped = 0; skipped < 160; ++skipped) {
    sampled += ml_port_use_sampled(skipped);
  }
  EXPECT_EQ(sampled, 10);
  EXPECT_FALSE(ml_port_use_sampled(0));
  EXPECT_TRUE(ml_port_use_sampled(ML_USE_SAMPLE_EVERY - 1));
}

TEST(PortUse, AnEndIsBusyFromItsFourthMessage) {
  EXPECT_FALSE(ml_sock_use_busy(0));
  EXPECT_FALSE(ml_sock_use_busy(ML_USE_BUSY_MESSAGES - 1));
  EXPECT_TRUE(ml_sock_use_busy(ML_USE_BUSY_MESSAGES));
}

TEST(PortUse, CountsAreHalvedAtTheWindow) {
  ml_port_use use{};
  use.short_ends = ML_USE_WINDOW_ENDS - 1;
  ml_port_use_fade(&use);
  EXPECT_EQ(use.short_ends, ML_USE_WINDOW_ENDS - 1u);

  use.short_ends = ML_USE_WINDOW_ENDS;
  ml_port_use_fade(&use);
  EXPECT_EQ(use.short_ends, ML_USE_WINDOW_ENDS / 2u);
  EXPECT_TRUE(ml_port_use_short(use.busy_ends, use.short_ends));
}

TEST(PortUse, AShortPortSplicesAgainWithinTwoSampledPersistentConnections) {
  ml_port_use use{};
  for (int end = 0; end < 1000; ++end) {
    ml_port_use_judge(&use, 0);
  }
  EXPECT_TRUE(ml_port_use_short(use.busy_ends, use.short_ends));
  EXPECT_LT(use.short_ends, static_cast<__u32>(ML_USE_WINDOW_ENDS));
  // A sampled persistent connection: both its ends are busy.
  int busy_ends = 0;
  while (ml_port_use_short(use.busy_ends, use.short_ends)) {
    ml_port_use_judge(&use, 1);
    ++busy_ends;
  }
  EXPECT_LE(busy_ends, 4);
}

TEST(PortUse, APortWhereOneConnectionInTwentyIsPersistentKeepsSplicing) {
  ml_port_use use{};
  for (int round = 0; round < 50; ++round) {
    for (int end = 0; end < 38; ++end) {
      ml_port_use_judge(&use, 0);
    }
    ml_port_use_judge(&use, 1);
    ml_port_use_judge(&use, 1);
    EXPECT_FALSE(ml_port_use_short(use.busy_ends, use.short_ends)) << "round " << round;
  }
}

TEST(PortUse, APortOfOneRequestConnectionsStaysShortThroughItsSamples) {
  ml_port_use use{};
  for (int end = 0; end < 2000; ++end) {
    ml_port_use_judge(&use, 0);
    if (end >= ML_USE_MIN_ENDS) {
      EXPECT_TRUE(ml_port_use_short(use.busy_ends, use.short_ends)) << "end " << end;
    }
  }
}

TEST(PortUse, ASampleJudgesNothingWhileBothDirectionsHaveFewSegments) {
  __u8 busy = 0xff;
  EXPECT_EQ(ml_sample_judge(1, 2, 0, 0, &busy), 0);
  EXPECT_EQ(busy, 0);
  EXPECT_EQ(ml_sample_judge(ML_USE_BUSY_MESSAGES - 1, ML_USE_BUSY_MESSAGES - 1, 0, 0, &busy), 0);
}

TEST(PortUse, ASampleJudgesAnEndBusyAtItsFourthSegment) {
  __u8 busy = 0;
  // The client sends its fourth request: its end is busy, the server's not judged yet.
  EXPECT_EQ(ml_sample_judge(ML_USE_BUSY_MESSAGES, 3, 0, 0, &busy), ML_SAMPLE_CLIENT);
  EXPECT_EQ(busy, ML_SAMPLE_CLIENT);
  // The server's fourth segment arrives: only the server end is new.
  EXPECT_EQ(ml_sample_judge(5, ML_USE_BUSY_MESSAGES, 0, ML_SAMPLE_CLIENT, &busy), ML_SAMPLE_SERVER);
  EXPECT_EQ(busy, ML_SAMPLE_SERVER);
  // Both judged: nothing more, leaving or not.
  EXPECT_EQ(ml_sample_judge(50, 50, 0, ML_SAMPLE_BOTH, &busy), 0);
  EXPECT_EQ(ml_sample_judge(50, 50, 1, ML_SAMPLE_BOTH, &busy), 0);
  EXPECT_EQ(busy, 0);
}

TEST(PortUse, AStreamToTheClientJudgesTheServerEndBusy) {
  // The client sent one request; the server streams: its end is busy, the client's waits.
  __u8 busy = 0;
  EXPECT_EQ(ml_sample_judge(1, 40, 0, 0, &busy), ML_SAMPLE_SERVER);
  EXPECT_EQ(busy, ML_SAMPLE_SERVER);
  // At the close the client end, still under four segments, is judged short.
  EXPECT_EQ(ml_sample_judge(1, 40, 1, ML_SAMPLE_SERVER, &busy), ML_SAMPLE_CLIENT);
  EXPECT_EQ(busy, 0);
}

TEST(PortUse, ASampleLeavingEstablishedJudgesEveryEndLeft) {
  // One request, a greeting and one response: both ends short.
  __u8 busy = 0xff;
  EXPECT_EQ(ml_sample_judge(1, 2, 1, 0, &busy), ML_SAMPLE_BOTH);
  EXPECT_EQ(busy, 0);
  // Segments that reached four since the last callback still count as busy.
  EXPECT_EQ(ml_sample_judge(4, 2, 1, 0, &busy), ML_SAMPLE_BOTH);
  EXPECT_EQ(busy, ML_SAMPLE_CLIENT);
}

TEST(PortUse, OneBusySampleMakesAShortPortSpliceAgain) {
  ml_port_use use{};
  for (int end = 0; end < 1000; ++end) {
    ml_port_use_judge(&use, 0);
  }
  ASSERT_TRUE(ml_port_use_short(use.busy_ends, use.short_ends));
  // A persistent connection watched as a sample: both its ends busy.
  __u8 busy = 0;
  __u8 judged = ml_sample_judge(8, 9, 0, 0, &busy);
  ASSERT_EQ(judged, ML_SAMPLE_BOTH);
  ml_port_use_judge(&use, busy & ML_SAMPLE_CLIENT);
  ml_port_use_judge(&use, busy & ML_SAMPLE_SERVER);
  EXPECT_FALSE(ml_port_use_short(use.busy_ends, use.short_ends));
}

}  // namespace
