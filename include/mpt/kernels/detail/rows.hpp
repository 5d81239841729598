#pragma once
// How the element-wise kernels cut their work: which path a kernel over given storage
// types takes (simd_isa_for), rows per task and the parallel loop over row chunks,
// per-slot scratch that stops touching the heap after the first step, software
// prefetch distances, and small helpers (keep_as, present). The SIMD vocabulary
// itself is in simd.hpp.

#include <mpt/core/bf16.hpp>
#include <mpt/core/aligned.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/scratch.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>

#if MPT_X86
#include <immintrin.h>
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace mpt::kernels::detail {

// The storage types the SIMD paths handle; anything else (double) runs scalar.
template <class T>
inline constexpr bool simd_storage = std::is_same_v<T, float> || std::is_same_v<T, bf16>;

// Which path a kernel over these storage types takes now.
template <class... T>
inline Isa simd_isa_for() {
  if constexpr ((simd_storage<std::remove_const_t<T>> && ...)) {
    return active_isa();
  } else {
    return Isa::scalar;
  }
}

// The value a store into T keeps, as float (identity unless T is bf16).
template <class T>
inline float keep_as(float x) noexcept {
  if constexpr (std::is_same_v<T, bf16>)
    return mpt::round_to_bf16(x);
  else
    return x;
}

// Asks the cache for `bytes` starting `ahead` bytes past p: the compute-heavy
// kernels keep too few misses in flight for the hardware prefetcher alone
// (dropout from memory ran at 40% of triad without it). A hint: addresses
// past the end of an array are harmless (no fault, no access).
template <class T>
inline void prefetch(const T* p, std::size_t ahead, std::size_t bytes) noexcept {
#if MPT_X86
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(p) + ahead;
  for (std::size_t line = 0; line < bytes; line += 64) _mm_prefetch(reinterpret_cast<const char*>(start + line), _MM_HINT_T0);
#else
  (void)p, (void)ahead, (void)bytes;
#endif
}

// How many rows ahead a row-wise kernel prefetches: up to 16 KiB and 4 rows.
// A short row's work (1.5 KiB: ~100 ns) is shorter than a DRAM miss under
// load, so the next row alone arrives late; more would crowd L1.
inline std::size_t prefetch_rows_ahead(std::size_t row_bytes) noexcept {
  const std::size_t rows = row_bytes == 0 ? 4 : 16384 / row_bytes;
  return rows < 1 ? 1 : (rows > 4 ? 4 : rows);
}

// Optional tensor arguments are passed as a default-constructed view (no data).
template <class T>
inline bool present(const TensorView<T>& v) noexcept {
  return v.data() != nullptr;
}

// Rows per task so one task moves roughly `bytes_per_task` bytes.
inline std::size_t rows_per_task(std::size_t row_bytes, std::size_t bytes_per_task = 64 * 1024) noexcept {
  const std::size_t rows = row_bytes == 0 ? 1 : bytes_per_task / row_bytes;
  return rows == 0 ? 1 : rows;
}

// Scratch memory of the running task's arena slot (or of the calling thread in
// serial code), grown to the largest request and then reused, so kernels called
// inside a training step stop touching the heap after the first step (see
// core/scratch.hpp). `Use` keeps apart buffers one thread holds at the same time
// (a kernel's cross-chunk partials and a chunk's row scratch).
enum class ScratchUse { row, partials };
template <class T, ScratchUse Use>
T* thread_scratch(std::size_t count) {
  mpt::detail::ScratchBlock& block =
      mpt::detail::scratch_block(Use == ScratchUse::row ? mpt::detail::ScratchKind::row : mpt::detail::ScratchKind::partials);
  const std::size_t bytes = (count * sizeof(T) + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes;
  if (block.bytes < bytes) {
    block.grow(bytes);
    if (mpt::detail::current_scratch_slot() >= 0) mpt::detail::slot_scratch().grew = true;
  }
  return static_cast<T*>(block.data);
}

// Runs body(row_begin, row_end) over [0, rows) in chunks of `chunk` rows, in parallel.
// Chunks depend only on (rows, chunk), never on the thread count.
template <class Body>
void for_each_row_chunk(std::size_t rows, std::size_t chunk, Body&& body) {
  const std::size_t tasks = (rows + chunk - 1) / chunk;
  mpt::parallel_for(tasks, [&](std::size_t t) {
    const std::size_t begin = t * chunk;
    body(begin, begin + chunk < rows ? begin + chunk : rows);
  });
}

}  // namespace mpt::kernels::detail
