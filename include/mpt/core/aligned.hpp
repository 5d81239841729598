#pragma once
// 64-byte aligned storage: one cache line, one AVX-512 register.

#include <mpt/core/error.hpp>

#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

namespace mpt {

inline constexpr std::size_t cache_line_bytes = 64;

namespace detail {
struct AlignedDelete {
  void operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t(cache_line_bytes)); }
};
}  // namespace detail

// A fixed-size, zero-initialized, 64-byte aligned array of trivially
// copyable T. Moves, never copies implicitly (copying a tensor is explicit).
template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds trivially copyable scalars only");

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t count) : size_(count) {
    if (count == 0) return;
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T) - cache_line_bytes) {
      throw_error("AlignedBuffer: ", count, " elements of ", sizeof(T), " bytes do not fit in memory");
    }
    const std::size_t bytes = (count * sizeof(T) + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes;
    void* p = ::operator new(bytes, std::align_val_t(cache_line_bytes));
    std::memset(p, 0, bytes);
    data_.reset(static_cast<T*>(p));
  }
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  AlignedBuffer clone() const {
    AlignedBuffer copy(size_);
    if (size_ != 0) std::memcpy(copy.data(), data(), size_ * sizeof(T));
    return copy;
  }

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  T& operator[](std::size_t i) noexcept { return data_.get()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_.get()[i]; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }

 private:
  std::unique_ptr<T, detail::AlignedDelete> data_;
  std::size_t size_ = 0;
};

}  // namespace mpt
