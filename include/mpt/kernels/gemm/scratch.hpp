#pragma once
// Reusable per-thread scratch memory for GEMM packing and partial sums, so that
// a call allocates (and page-faults) nothing once the sizes have been seen.
// A slot already in use on this thread (re-entry from a nested parallel region)
// falls back to a fresh allocation, so leases never alias.

#include <mpt/core/aligned.hpp>

#include <cstddef>
#include <new>

namespace mpt::detail {

enum class ScratchSlot : int { packed_b = 0, packed_a = 1, partial_sums = 2, row_sums = 3 };

struct ScratchBlock {
  void* data = nullptr;
  std::size_t bytes = 0;
  bool busy = false;
  ScratchBlock() = default;
  ScratchBlock(const ScratchBlock&) = delete;
  ScratchBlock& operator=(const ScratchBlock&) = delete;
  ~ScratchBlock() { release(); }
  void release() noexcept {
    if (data) ::operator delete(data, std::align_val_t(cache_line_bytes));
    data = nullptr;
    bytes = 0;
  }
};

inline ScratchBlock& thread_scratch(ScratchSlot slot) noexcept {
  thread_local ScratchBlock blocks[4];
  return blocks[static_cast<int>(slot)];
}

// Uninitialized, 64-byte aligned storage for `count` T, valid for the lease's lifetime.
template <class T>
class ScratchLease {
 public:
  ScratchLease(ScratchSlot slot, std::size_t count) {
    const std::size_t bytes = (count * sizeof(T) + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes;
    ScratchBlock& block = thread_scratch(slot);
    if (!block.busy) {
      if (block.bytes < bytes) {
        block.release();
        block.data = ::operator new(bytes, std::align_val_t(cache_line_bytes));
        block.bytes = bytes;
      }
      block.busy = true;
      shared_ = &block;
      data_ = static_cast<T*>(block.data);
    } else if (bytes != 0) {
      owned_ = ::operator new(bytes, std::align_val_t(cache_line_bytes));
      data_ = static_cast<T*>(owned_);
    }
  }
  ~ScratchLease() {
    if (shared_) shared_->busy = false;
    if (owned_) ::operator delete(owned_, std::align_val_t(cache_line_bytes));
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  T* data() const noexcept { return data_; }

 private:
  ScratchBlock* shared_ = nullptr;
  void* owned_ = nullptr;
  T* data_ = nullptr;
};

}  // namespace mpt::detail
