#pragma once
// Scratch memory of the kernels: reusable blocks (packing buffers, partial sums,
// row temporaries) that grow to the largest size seen and are kept, so a training
// step allocates nothing once the sizes have been seen.
//
// Whose blocks: inside mpt's parallel loops, those of the arena slot running the
// task (mpt::parallel_for records it); outside them (serial code on the caller's
// thread), the thread's own. Slots, unlike threads, are known up front:
// equalize_scratch() grows every slot's blocks to the largest of their kind, so
// that a slot which has not yet run some kernel does not allocate when it first
// does (the model calls it at the end of forward and backward; it is cheap when
// nothing grew). A block already in use by the same slot or thread (re-entry from
// a nested parallel region) is not shared: the lease allocates its own.

#include <mpt/core/aligned.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>

namespace mpt::detail {

enum class ScratchKind : int {
  packed_b = 0,      // GEMM: a packed panel of op(B)
  packed_a = 1,      // GEMM: a packed chunk of op(A)
  partial_sums = 2,  // GEMM: fp32 sums across k-blocks
  row_sums = 3,      // GEMM: op(A)'s row sums (bias gradients)
  row = 4,           // element-wise kernels: one row's temporaries
  partials = 5,      // element-wise kernels: per-chunk partial reductions
};
inline constexpr int scratch_kinds = 6;

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
  // At least `want` bytes (contents not kept).
  void grow(std::size_t want) {
    if (bytes >= want) return;
    release();
    data = ::operator new(want, std::align_val_t(cache_line_bytes));
    bytes = want;
  }
};

struct ScratchSet {
  ScratchBlock blocks[scratch_kinds];
};

// The scratch of mpt's arena slots; replaced when the thread count changes (between parallel regions).
struct SlotScratch {
  std::unique_ptr<ScratchSet[]> slots;
  int count = 0;
  std::atomic<bool> grew{false};  // some slot grew a block since the last equalize_scratch()
};
inline SlotScratch& slot_scratch() {
  static SlotScratch s;
  return s;
}
inline void resize_slot_scratch(int slots) {
  auto& s = slot_scratch();
  s.slots = std::make_unique<ScratchSet[]>(static_cast<std::size_t>(slots));
  s.count = slots;
  s.grew = false;
}

// The arena slot running the current task of mpt::parallel_for, or -1 (serial code).
inline int& current_scratch_slot() noexcept {
  thread_local int slot = -1;
  return slot;
}

inline ScratchBlock& scratch_block(ScratchKind kind) noexcept {
  const int slot = current_scratch_slot();
  auto& s = slot_scratch();
  if (slot >= 0 && slot < s.count) return s.slots[slot].blocks[static_cast<int>(kind)];
  thread_local ScratchSet own;
  return own.blocks[static_cast<int>(kind)];
}

// Grows every slot's blocks to the largest block of their kind. Call between
// parallel regions (no task may be using scratch).
inline void equalize_scratch() {
  auto& s = slot_scratch();
  if (!s.grew.exchange(false)) return;
  for (int k = 0; k < scratch_kinds; ++k) {
    std::size_t largest = 0;
    for (int i = 0; i < s.count; ++i) largest = largest > s.slots[i].blocks[k].bytes ? largest : s.slots[i].blocks[k].bytes;
    for (int i = 0; i < s.count; ++i) s.slots[i].blocks[k].grow(largest);
  }
}

// Uninitialized, 64-byte aligned storage for `count` T, valid for the lease's lifetime.
template <class T>
class ScratchLease {
 public:
  ScratchLease(ScratchKind kind, std::size_t count) {
    const std::size_t bytes = (count * sizeof(T) + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes;
    ScratchBlock& block = scratch_block(kind);
    if (!block.busy) {
      if (block.bytes < bytes) {
        block.grow(bytes);
        if (current_scratch_slot() >= 0) slot_scratch().grew = true;
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
