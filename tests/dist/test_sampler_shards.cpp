// DistributedSampler's arithmetic, without MPI: R ranks with batch b see, batch
// for batch, the samples one process sees with batch R x b.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <algorithm>
#include <vector>

TEST_CASE("ranks' shards of batch k together are batch k of one process with ranks x the batch") {
  for (const std::size_t n : {64u, 61u}) {  // 61: the permutation is padded by repetition to 62
    CAPTURE(n);
    mpt::train::EpochSampler one(n, 8, false, 42);
    mpt::train::EpochSampler r0(n, 4, false, 42, 0, 2), r1(n, 4, false, 42, 1, 2);
    CHECK(r0.samples_per_rank() == (n + 1) / 2);
    CHECK(r0.batches_per_epoch() == one.batches_per_epoch());
    for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
      one.start_epoch(epoch), r0.start_epoch(epoch), r1.start_epoch(epoch);
      for (std::size_t k = 0; k < one.batches_per_epoch(); ++k) {
        std::vector<std::size_t> together(r0.batch(k).begin(), r0.batch(k).end());
        together.insert(together.end(), r1.batch(k).begin(), r1.batch(k).end());
        std::vector<std::size_t> alone(one.batch(k).begin(), one.batch(k).end());
        std::sort(together.begin(), together.end());
        std::sort(alone.begin(), alone.end());
        if (n % 2 == 0 || k + 1 < one.batches_per_epoch()) {
          CHECK(together == alone);
        } else {  // the last batch: rank 1 repeats the epoch's first sample
          CHECK(together.size() == alone.size() + 1);
        }
      }
    }
  }
}
