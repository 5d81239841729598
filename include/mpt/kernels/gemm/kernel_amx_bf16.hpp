#pragma once
// AMX-BF16 micro-kernel, 32 x 32 with tdpbf16ps: C is four 16 x 16 fp32 tiles,
// each k-step of 32 loads two A tiles (16 rows x 16 bf16 pairs) and two B tiles
// (16 pair-rows x 16 columns) and issues four tile dot-products.
//
//   tmm0 tmm1    C rows  0..15, columns 0..15 | 16..31      += tmm4 . tmm6 | tmm4 . tmm7
//   tmm2 tmm3    C rows 16..31, columns 0..15 | 16..31      += tmm5 . tmm6 | tmm5 . tmm7
//
// Shape: C[32 x 32] (+)= A[32 x 2g] * B[2g x 32]   (g = k_groups pairs)
//   A row i at a + i * rs_a, its k contiguous (cs_a = 2): A is always packed, as rows one
//     cache line longer than the k-block (packs_a_as_rows, reads_a_in_place = false): the
//     16 rows of a tile at a stride that is a multiple of 2 or 4 KiB (lda = 1024, 2048,
//     3072 bf16; kc = 2048) fall into the same few L1 sets and evict each other
//   B packed as for the vdpbf16ps kernel: b[(g * 32 + j) * 2 + u] = B(2g + u, j), so a
//     B tile is 16 pair-rows of 64 bytes, 128 bytes apart
// k-groups beyond the last multiple of 16 are added with vdpbf16ps on C in memory.
//
// Rounding: tdpbf16ps multiplies exactly and accumulates in fp32 (round to nearest
// even), treating bf16 denormal inputs as zero and flushing denormal results, in its
// own order within a k-step; so its sums may differ from vdpbf16ps's in the last bit.
// Every C element is still one fixed sequence of operations, whatever the threads.

#include <mpt/core/bf16.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm/amx_tiles.hpp>

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mpt::kernels::detail {

#if MPT_X86
struct AmxBf16Kernel {
  using a_t = bf16;
  using b_t = bf16;
  using acc_t = float;
  static constexpr std::size_t mr = 32, nr = 32, kg = 2, k_step = 32;  // k_step: one A tile row of pairs
  static constexpr std::size_t kc = 2048;                              // B micro-panel 128 KiB, from L2: measured best of 256-4096 here
  static constexpr std::size_t mc = 128;                               // 4 row panels: A block 256 KiB in L2
  static constexpr Isa isa = Isa::amx_bf16;
  static constexpr bool packs_a_as_rows = true;
  static constexpr bool reads_a_in_place = false;
  // The A and B tiles of the step after next are prefetched into L1: tileloadd from L2
  // leaves the tile unit idle (measured: 1.63 -> 1.70-1.83 TFLOP/s at BERT-base shapes,
  // with the padded A rows).
  static constexpr std::size_t prefetch_steps = 2;

  // Before this thread's first micro-kernel of a GEMM task.
  static void prepare_thread() noexcept { configure_tiles_16x64(); }

  MPT_TARGET_AVX512_BF16 static void run(std::size_t k_groups, const bf16* a, std::size_t rs_a, std::size_t cs_a, const bf16* b, float* c,
                                         std::size_t ldc, bool accumulate) noexcept {
    (void)cs_a;  // 2: each A row's pairs are contiguous
    const long c_stride = static_cast<long>(ldc * sizeof(float));
    float* c_low = c + 16 * ldc;
    if (accumulate) {
      MPT_TILE_LOAD(0, c, c_stride);
      MPT_TILE_LOAD(1, c + 16, c_stride);
      MPT_TILE_LOAD(2, c_low, c_stride);
      MPT_TILE_LOAD(3, c_low + 16, c_stride);
    } else {
      MPT_TILE_ZERO(0);
      MPT_TILE_ZERO(1);
      MPT_TILE_ZERO(2);
      MPT_TILE_ZERO(3);
    }
    const long a_stride = static_cast<long>(rs_a * sizeof(bf16)), b_stride = 2 * nr * sizeof(bf16);
    const bf16* a_low = a + 16 * rs_a;
    const std::size_t steps = k_groups / 16;
    for (std::size_t s = 0; s < steps; ++s) {
      const bf16* bs = b + s * 16 * 2 * nr;
      if (prefetch_steps > 0 && s + prefetch_steps < steps) {  // the tiles of a later step, into L1 while this one computes
        const char* bn = reinterpret_cast<const char*>(bs + prefetch_steps * 16 * 2 * nr);
        const char* an = reinterpret_cast<const char*>(a + (s + prefetch_steps) * 32);
#pragma GCC unroll 32
        for (int line = 0; line < 32; ++line) {
          _mm_prefetch(bn + line * 64, _MM_HINT_T0);
          _mm_prefetch(an + line * a_stride, _MM_HINT_T0);
        }
      }
      MPT_TILE_LOAD(4, a + s * 32, a_stride);
      MPT_TILE_LOAD(6, bs, b_stride);
      MPT_TILE_DPBF16PS(0, 4, 6);
      MPT_TILE_LOAD(7, bs + 32, b_stride);
      MPT_TILE_DPBF16PS(1, 4, 7);
      MPT_TILE_LOAD(5, a_low + s * 32, a_stride);
      MPT_TILE_DPBF16PS(2, 5, 6);
      MPT_TILE_DPBF16PS(3, 5, 7);
    }
    MPT_TILE_STORE(0, c, c_stride);
    MPT_TILE_STORE(1, c + 16, c_stride);
    MPT_TILE_STORE(2, c_low, c_stride);
    MPT_TILE_STORE(3, c_low + 16, c_stride);
    if (const std::size_t rest = k_groups % 16) add_pairs(rest, a + steps * 32, rs_a, b + steps * 16 * 2 * nr, c, ldc);
  }

  // C = store(A B) row by row from an fp32 tile (the epilogue functors of epilogue.hpp).
  template <class Store>
  MPT_TARGET_AVX512_BF16 static void run_store(std::size_t k_groups, const bf16* a, std::size_t rs_a, std::size_t cs_a, const bf16* b,
                                               const Store& store) noexcept {
    alignas(64) float tile[mr * nr];
    run(k_groups, a, rs_a, cs_a, b, tile, nr, false);
    for (std::size_t i = 0; i < mr; ++i) store(i, _mm512_load_ps(tile + i * nr), _mm512_load_ps(tile + i * nr + 16));
  }

 private:
  // C rows += the remaining (< 16) k-groups, with vdpbf16ps, four rows at a time.
  MPT_TARGET_AVX512_BF16 static void add_pairs(std::size_t groups, const bf16* a, std::size_t rs_a, const bf16* b, float* c,
                                               std::size_t ldc) noexcept {
    for (std::size_t i = 0; i < mr; i += 4) {
      __m512 acc[4][2];
      for (std::size_t r = 0; r < 4; ++r) {
        acc[r][0] = _mm512_loadu_ps(c + (i + r) * ldc);
        acc[r][1] = _mm512_loadu_ps(c + (i + r) * ldc + 16);
      }
      for (std::size_t g = 0; g < groups; ++g) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + g * 2 * nr), b1 = (__m512bh)_mm512_loadu_si512(b + g * 2 * nr + 32);
        for (std::size_t r = 0; r < 4; ++r) {
          std::uint32_t pair;
          std::memcpy(&pair, a + (i + r) * rs_a + 2 * g, sizeof pair);
          const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
          acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
          acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
      }
      for (std::size_t r = 0; r < 4; ++r) {
        _mm512_storeu_ps(c + (i + r) * ldc, acc[r][0]);
        _mm512_storeu_ps(c + (i + r) * ldc + 16, acc[r][1]);
      }
    }
  }
};
#endif

}  // namespace mpt::kernels::detail
