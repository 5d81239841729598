#pragma once
// Arena: the activations of one training step, carved out of one allocation.
// Sized once (from batch, sequence length and model config), reset at the
// start of every step; allocating never touches the heap. Running past the
// capacity is an error that names the request and the sizes, never a silent
// reallocation that would invalidate earlier views.

#include <mpt/core/aligned.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>

#include <algorithm>
#include <cstddef>

namespace mpt {

class Arena {
 public:
  Arena() = default;
  explicit Arena(std::size_t capacity_bytes) : storage_(round_up(capacity_bytes)) {}

  // Bytes one allocation of `count` elements of T occupies (64-byte granules),
  // so that callers can size an arena exactly.
  template <class T>
  static constexpr std::size_t bytes_for(std::size_t count) noexcept {
    return round_up(count * sizeof(T));
  }

  // A 64-byte aligned tensor view of the given shape, its contents unspecified: every
  // layer writes what it allocates before reading it (zero-filling the activations cost
  // 15-20% of a bf16 training step). Debug builds fill it with all-one bytes instead
  // (NaN in fp32 and bf16), so that a read before the first write shows in the results.
  template <class T>
  TensorView<T> allocate(Shape shape, const char* what = "tensor") {
    const std::size_t bytes = bytes_for<T>(shape.numel());
    if (used_ + bytes > storage_.size()) {
      throw_error("Arena: allocating ", what, " ", shape, " (", bytes, " bytes) needs ", used_ + bytes, " bytes but the arena holds ",
                  storage_.size(), "; size it for the largest batch and sequence length before the step");
    }
    std::byte* p = storage_.data() + used_;
#ifndef NDEBUG
    std::fill(p, p + bytes, std::byte{0xFF});
#endif
    used_ += bytes;
    high_water_ = std::max(high_water_, used_);
    return TensorView<T>(reinterpret_cast<T*>(p), shape);
  }

  // Forgets every allocation (views from before are dangling afterwards).
  void reset() noexcept { used_ = 0; }
  // Grows to at least `bytes`; only between steps (all views become invalid).
  void reserve(std::size_t bytes) {
    if (bytes <= storage_.size()) return;
    storage_ = AlignedBuffer<std::byte>(round_up(bytes));
    used_ = 0;
  }

  std::size_t capacity() const noexcept { return storage_.size(); }
  std::size_t used() const noexcept { return used_; }
  std::size_t high_water() const noexcept { return high_water_; }

 private:
  static constexpr std::size_t round_up(std::size_t bytes) noexcept { return (bytes + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes; }
  AlignedBuffer<std::byte> storage_;
  std::size_t used_ = 0;
  std::size_t high_water_ = 0;
};

}  // namespace mpt
