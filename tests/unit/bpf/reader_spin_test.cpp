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
Outcome run_window(int sends, int every, __u32 per_mille = ML_SPIN_DEFAULT_PER_MILLE) {
  ml_reader_spin spin{};
  for (int send = 1; send <= sends; ++send) {
    const int spinning = send == 1 || (every != 0 && send % every == 0) ? 1 : 0;
    const ml_spin_verdict verdict = ml_reader_spin_judge(&spin, spinning, per_mille);
    if (verdict != ML_SPIN_COUNTING) {
      return {verdict, send};
    }
  }
  return {};
}

TEST(ReaderSpin, ABusyPollingReaderLeavesOnceItHasSpunEnough) {
  // sockperf's busy-polling client was found holding its socket on 17-20% of the sends to it
  // on a VM whose idle vCPUs halt.
  const Outcome every_fifth = run_window(100000, 5);
  EXPECT_EQ(every_fifth.verdict, ML_SPIN_LEAVE_SPLICE);
  EXPECT_EQ(every_fifth.at_send, (ML_SPIN_LEAVE - 1) * 5);
  EXPECT_EQ(run_window(100000, 10).verdict, ML_SPIN_LEAVE_SPLICE);
}

TEST(ReaderSpin, AReaderBelowTheShareKeepsTheSplice) {
  // Event-loop readers were found holding their socket on 0.1-3% of the sends to them there.
  const Outcome every_thirtieth = run_window(100000, 30);
  EXPECT_EQ(every_thirtieth.verdict, ML_SPIN_FORGET);
  EXPECT_EQ(every_thirtieth.at_send, ML_SPIN_WINDOW_SENDS);
  EXPECT_EQ(run_window(100000, 0).verdict, ML_SPIN_FORGET);
  // On a VM that polls before halting, a busy-polling client was found on 1-2.6% of the sends:
  // below the default share, it keeps the splice there (each wait costs little).
  EXPECT_EQ(run_window(100000, 50).verdict, ML_SPIN_FORGET);
}

TEST(ReaderSpin, TheShareIsASetting) {
  // 5 per mille: the busy-polling client found on 1-2% leaves, after its 24th spinning send.
  const Outcome every_fiftieth = run_window(100000, 50, 5);
  EXPECT_EQ(every_fiftieth.verdict, ML_SPIN_LEAVE_SPLICE);
  EXPECT_EQ(every_fiftieth.at_send, (ML_SPIN_LEAVE - 1) * 50);
  // 1 per 1,000 sends stays below it.
  EXPECT_EQ(run_window(100000, 1000, 5).verdict, ML_SPIN_FORGET);
  // 1000 per mille: every send must find the reader spinning.
  EXPECT_EQ(run_window(100000, 1, 1000).verdict, ML_SPIN_LEAVE_SPLICE);
  EXPECT_EQ(run_window(100000, 2, 1000).verdict, ML_SPIN_FORGET);
}

TEST(ReaderSpin, TheShareIsCountedOverTheWholeWindowNotInBursts) {
  // 24 spinning sends in a row, then none: at the 24th the share is 100%, so it leaves.
  ml_reader_spin burst{};
  for (int send = 1; send < ML_SPIN_LEAVE; ++send) {
    EXPECT_EQ(ml_reader_spin_judge(&burst, 1, ML_SPIN_DEFAULT_PER_MILLE), ML_SPIN_COUNTING);
  }
  EXPECT_EQ(ml_reader_spin_judge(&burst, 1, ML_SPIN_DEFAULT_PER_MILLE), ML_SPIN_LEAVE_SPLICE);

  // The 24th spinning send after 1,000 sends (2.4%) is below 9%: the window stays open, and
  // leaves once the share reaches 9% (every later send spinning).
  ml_reader_spin spread{};
  int sends = 0;
  int spinning = 0;
  while (sends < 1000) {
    const int spins = spinning < ML_SPIN_LEAVE && sends % 42 == 0 ? 1 : 0;
    spinning += spins;
    ++sends;
    ASSERT_EQ(ml_reader_spin_judge(&spread, spins, ML_SPIN_DEFAULT_PER_MILLE), ML_SPIN_COUNTING)
        << sends;
  }
  ASSERT_EQ(spinning, ML_SPIN_LEAVE);
  ml_spin_verdict verdict = ML_SPIN_COUNTING;
  while (verdict == ML_SPIN_COUNTING) {
    ++sends;
    ++spinning;
    verdict = ml_reader_spin_judge(&spread, 1, ML_SPIN_DEFAULT_PER_MILLE);
  }
  EXPECT_EQ(verdict, ML_SPIN_LEAVE_SPLICE);
  EXPECT_GE(spinning * 1000, ML_SPIN_DEFAULT_PER_MILLE * sends);
  EXPECT_LT((spinning - 1) * 1000, ML_SPIN_DEFAULT_PER_MILLE * (sends - 1));
}

}  // namespace
