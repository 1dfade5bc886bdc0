// The judgement of whether a spliced socket's reader spins on its socket
// (bpf/include/meshlane/reader_spin.h), compiled for the host.
#include "meshlane/reader_spin.h"

#include <gtest/gtest.h>

namespace {

struct Outcome {
  ml_spin_verdict verdict = ML_SPIN_COUNTING;
  int at_send = 0;  // the 1-based send that ended the window; 0 if it is still open
};

// Feeds sends into a window opened by a spinning send (the first one), then every `every`-th
// send spinning (0: none after the first), until the window ends or `sends` were fed.
Outcome run_window(int sends, int every) {
  ml_reader_spin spin{};
  for (int send = 1; send <= sends; ++send) {
    const int spinning = send == 1 || (every != 0 && send % every == 0) ? 1 : 0;
    const ml_spin_verdict verdict = ml_reader_spin_judge(&spin, spinning);
    if (verdict != ML_SPIN_COUNTING) {
      return {verdict, send};
    }
  }
  return {};
}

TEST(ReaderSpin, ABusyPollingReaderLeavesWithinOneWindow) {
  // sockperf's busy-polling client was found holding its socket on 17-20% of the sends to it.
  const Outcome every_fifth = run_window(100000, 5);
  EXPECT_EQ(every_fifth.verdict, ML_SPIN_LEAVE_SPLICE);
  EXPECT_EQ(every_fifth.at_send, (ML_SPIN_LEAVE - 1) * 5);
  EXPECT_EQ(run_window(100000, 10).verdict, ML_SPIN_LEAVE_SPLICE);
}

TEST(ReaderSpin, AnEventLoopReaderSeenNowAndThenKeepsTheSplice) {
  // Event-loop readers were found holding their socket on 0.1-3% of the sends to them.
  const Outcome every_thirtieth = run_window(100000, 30);
  EXPECT_EQ(every_thirtieth.verdict, ML_SPIN_FORGET);
  EXPECT_EQ(every_thirtieth.at_send, ML_SPIN_WINDOW_SENDS);
  EXPECT_EQ(run_window(100000, 0).verdict, ML_SPIN_FORGET);
}

TEST(ReaderSpin, TheThresholdIsSpinningSendsWithinOneWindow) {
  ml_reader_spin spin{};
  for (int send = 1; send < ML_SPIN_LEAVE; ++send) {
    EXPECT_EQ(ml_reader_spin_judge(&spin, 1), ML_SPIN_COUNTING);
  }
  EXPECT_EQ(ml_reader_spin_judge(&spin, 1), ML_SPIN_LEAVE_SPLICE);

  // One short of it, spread over a window: forgotten at the window's last send.
  ml_reader_spin spread{};
  int spinning = 0;
  for (int send = 1; send < ML_SPIN_WINDOW_SENDS; ++send) {
    const int spins = spinning < ML_SPIN_LEAVE - 1 && send % 8 == 1 ? 1 : 0;
    spinning += spins;
    EXPECT_EQ(ml_reader_spin_judge(&spread, spins), ML_SPIN_COUNTING) << send;
  }
  EXPECT_EQ(spinning, ML_SPIN_LEAVE - 1);
  EXPECT_EQ(ml_reader_spin_judge(&spread, 0), ML_SPIN_FORGET);
}

}  // namespace
