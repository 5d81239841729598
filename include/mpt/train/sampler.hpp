#pragma once
// EpochSampler: which training samples make each batch, as transformers' seeded
// RandomSampler (one process) or DistributedSampler (data-parallel ranks) with
// its DataLoader. Every epoch is its own permutation, a function of (seed, epoch)
// alone, so a resumed run draws the same batches and any epoch can be recomputed
// without replaying the ones before it.
//
// With R ranks every rank draws the same permutation, pads it by repetition to a
// multiple of R, and takes positions rank, rank + R, ...: batch k of all ranks
// together holds the samples of batch k of one process with R times the batch.
//
//   EpochSampler sampler(dataset.size(), batch_size, drop_last, seed, rank, ranks);
//   sampler.batches_per_epoch();            // ceil(n_rank / b), or floor with drop_last
//   sampler.start_epoch(e);                 // draws epoch e's permutation
//   std::span<const std::size_t> ids = sampler.batch(k);   // this rank's sample indices of batch k

#include <mpt/core/error.hpp>
#include <mpt/core/random.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace mpt::train {

class EpochSampler {
 public:
  EpochSampler(std::size_t samples, std::size_t batch_size, bool drop_last, std::uint64_t seed, int rank = 0, int ranks = 1)
      : samples_(samples),
        batch_size_(batch_size),
        drop_last_(drop_last),
        seed_(seed),
        rank_(rank),
        ranks_(ranks),
        per_rank_(ranks > 0 ? (samples + static_cast<std::size_t>(ranks) - 1) / static_cast<std::size_t>(ranks) : 0),
        order_(samples),
        shard_(per_rank_) {
    if (batch_size == 0) throw_error("EpochSampler: the batch size must be at least 1");
    if (samples == 0) throw_error("EpochSampler: the training set is empty");
    if (ranks < 1 || rank < 0 || rank >= ranks) throw_error("EpochSampler: rank ", rank, " of ", ranks, " processes");
    if (drop_last && per_rank_ < batch_size) {
      throw_error("EpochSampler: ", samples, " training samples make no batch of ", batch_size, " per process (", ranks,
                  " processes) with dataloader_drop_last; lower the batch size or keep the last partial batch");
    }
  }

  std::size_t samples() const noexcept { return samples_; }
  // Samples each rank sees per epoch (the permutation padded to a multiple of the ranks).
  std::size_t samples_per_rank() const noexcept { return per_rank_; }
  std::size_t batch_size() const noexcept { return batch_size_; }
  std::size_t batches_per_epoch() const noexcept { return drop_last_ ? per_rank_ / batch_size_ : (per_rank_ + batch_size_ - 1) / batch_size_; }

  // Fisher-Yates over [0, n) with a SplitMix64 stream keyed by (seed, epoch), then this rank's shard.
  void start_epoch(std::int64_t epoch) {
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    SplitMix64 rng{seed_ ^ (0xA0761D6478BD642Full * static_cast<std::uint64_t>(epoch + 1))};
    for (std::size_t i = samples_; i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
    const auto r = static_cast<std::size_t>(rank_), world = static_cast<std::size_t>(ranks_);
    for (std::size_t k = 0; k < per_rank_; ++k) shard_[k] = order_[(r + k * world) % samples_];  // padding repeats the start
    epoch_ = epoch;
  }
  std::int64_t epoch() const noexcept { return epoch_; }

  // This rank's sample indices of batch k of the current epoch.
  std::span<const std::size_t> batch(std::size_t k) const {
    if (k >= batches_per_epoch()) throw_error("EpochSampler: batch ", k, " of an epoch of ", batches_per_epoch());
    const std::size_t begin = k * batch_size_;
    return std::span<const std::size_t>(shard_).subspan(begin, std::min(batch_size_, per_rank_ - begin));
  }

 private:
  std::size_t samples_, batch_size_;
  bool drop_last_;
  std::uint64_t seed_;
  int rank_, ranks_;
  std::size_t per_rank_;
  std::vector<std::size_t> order_, shard_;
  std::int64_t epoch_ = -1;
};

}  // namespace mpt::train
