#pragma once
// EpochSampler: which training samples make each batch, as transformers'
// seeded RandomSampler + DataLoader: every epoch is its own permutation,
// a function of (seed, epoch) alone, so a resumed run draws the same batches
// and any epoch can be recomputed without replaying the ones before it.
//
//   EpochSampler sampler(dataset.size(), batch_size, drop_last, seed);
//   sampler.batches_per_epoch();            // ceil(n / b), or floor with drop_last
//   sampler.start_epoch(e);                 // draws epoch e's permutation
//   std::span<const std::size_t> ids = sampler.batch(k);   // sample indices of batch k

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
  EpochSampler(std::size_t samples, std::size_t batch_size, bool drop_last, std::uint64_t seed)
      : samples_(samples), batch_size_(batch_size), drop_last_(drop_last), seed_(seed), order_(samples) {
    if (batch_size == 0) throw_error("EpochSampler: the batch size must be at least 1");
    if (samples == 0) throw_error("EpochSampler: the training set is empty");
    if (drop_last && samples < batch_size) {
      throw_error("EpochSampler: ", samples, " training samples make no batch of ", batch_size,
                  " with dataloader_drop_last; lower the batch size or keep the last partial batch");
    }
  }

  std::size_t samples() const noexcept { return samples_; }
  std::size_t batch_size() const noexcept { return batch_size_; }
  std::size_t batches_per_epoch() const noexcept {
    return drop_last_ ? samples_ / batch_size_ : (samples_ + batch_size_ - 1) / batch_size_;
  }

  // Fisher-Yates over [0, n) with a SplitMix64 stream keyed by (seed, epoch).
  void start_epoch(std::int64_t epoch) {
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    SplitMix64 rng{seed_ ^ (0xA0761D6478BD642Full * static_cast<std::uint64_t>(epoch + 1))};
    for (std::size_t i = samples_; i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
    epoch_ = epoch;
  }
  std::int64_t epoch() const noexcept { return epoch_; }

  // Sample indices of batch k of the current epoch.
  std::span<const std::size_t> batch(std::size_t k) const {
    if (k >= batches_per_epoch()) throw_error("EpochSampler: batch ", k, " of an epoch of ", batches_per_epoch());
    const std::size_t begin = k * batch_size_;
    return std::span<const std::size_t>(order_).subspan(begin, std::min(batch_size_, samples_ - begin));
  }

 private:
  std::size_t samples_, batch_size_;
  bool drop_last_;
  std::uint64_t seed_;
  std::vector<std::size_t> order_;
  std::int64_t epoch_ = -1;
};

}  // namespace mpt::train
