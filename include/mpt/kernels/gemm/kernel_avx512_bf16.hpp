#pragma once
// AVX512_BF16 micro-kernel, 12 x 32 with vdpbf16ps: each 32-bit lane holds two
// consecutive-k bf16 values, so one instruction does 2 k-steps of 16 columns
// with exact products, accumulated in fp32.
//
// Shape: C[12 x 32] (+)= A[12 x 2g] * B[2g x 32]   (g = k_groups pairs)
//   A pair (i, g) = the two bf16 at a + i * rs_a + g * cs_a (consecutive k)
//   B packed b[(g * 32 + j) * 2 + u] = B(2g + u, j);  C at c[i * ldc + j].
// Scalar reference: Bf16DotKernelReference below (same pairing, fp32 sums).

#include <mpt/core/bf16.hpp>
#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm/kernel_avx512.hpp>

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

// The scalar meaning of one vdpbf16ps lane: acc += a_odd * b_odd, then += a_even * b_even
// (the products are exact in fp32; only the sums round).
inline void bf16_dot_reference(std::size_t mr, std::size_t nr, std::size_t k_groups, const bf16* a, std::size_t rs_a, std::size_t cs_a, const bf16* b,
                               float* c, std::size_t ldc, bool accumulate) noexcept {
  for (std::size_t i = 0; i < mr; ++i) {
    for (std::size_t j = 0; j < nr; ++j) {
      float acc = accumulate ? c[i * ldc + j] : 0.0f;
      for (std::size_t g = 0; g < k_groups; ++g) {
        const bf16* ap = a + i * rs_a + g * cs_a;
        const bf16* bp = b + (g * nr + j) * 2;
        acc += to_float(ap[1]) * to_float(bp[1]);
        acc += to_float(ap[0]) * to_float(bp[0]);
      }
      c[i * ldc + j] = acc;
    }
  }
}

#if MPT_X86
struct Avx512Bf16DotKernel {
  using a_t = bf16;
  using b_t = bf16;
  using acc_t = float;
  static constexpr std::size_t mr = 12, nr = 32, kg = 2;
  // Measured best here (CPU time, BERT shapes): long k-blocks, short row chunks.
  static constexpr std::size_t kc = 3072;  // B micro-panel 192 KiB streamed from L2; BERT K <= 3072: no partial sums
  static constexpr std::size_t mc = 24;    // 2 row panels: A block 144 KiB in L2
  static constexpr Isa isa = Isa::avx512_bf16;

  // acc[i][h] += sum over k-pairs of A pair (i, g) . B pairs (g, 16h .. 16h+15): the loop
  // both stores below share (inlined, so the accumulators stay in registers).
  MPT_TARGET_AVX512_BF16 __attribute__((always_inline)) static inline void accumulate_pairs(std::size_t k_groups, const bf16* a, std::size_t rs_a,
                                                                                            std::size_t cs_a, const bf16* b,
                                                                                            __m512 (&acc)[12][2]) noexcept {
    for (std::size_t g = 0; g < k_groups; ++g, a += cs_a, b += 64) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
#pragma GCC unroll 12
      for (std::size_t i = 0; i < 12; ++i) {
        std::uint32_t pair;  // may be unaligned when lda is odd
        std::memcpy(&pair, a + i * rs_a, sizeof pair);
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
      }
    }
  }

  MPT_TARGET_AVX512_BF16 static void run(std::size_t k_groups, const bf16* a, std::size_t rs_a, std::size_t cs_a, const bf16* b, float* c,
                                         std::size_t ldc, bool accumulate) noexcept {
    __m512 acc[12][2];
    start_accumulators_12x32(acc, c, ldc, accumulate);
    accumulate_pairs(k_groups, a, rs_a, cs_a, b, acc);
    store_accumulators_12x32(acc, c, ldc);
  }

  // C = store(A B) from the registers: store(i, row i's two accumulator vectors) applies
  // the epilogue and writes row i (RegisterStoreAvx512Bf16 / RegisterStoreAvx512 in
  // epilogue.hpp), without an fp32 tile and a second pass: with attention's k = 64 that
  // pass was ~12% of the time, with a linear layer's bias at k = 768 5-7%.
  template <class Store>
  MPT_TARGET_AVX512_BF16 static void run_store(std::size_t k_groups, const bf16* a, std::size_t rs_a, std::size_t cs_a, const bf16* b,
                                               const Store& store) noexcept {
    __m512 acc[12][2];
    start_accumulators_12x32(acc, nullptr, 0, false);
    accumulate_pairs(k_groups, a, rs_a, cs_a, b, acc);
#pragma GCC unroll 12
    for (std::size_t i = 0; i < 12; ++i) store(i, acc[i][0], acc[i][1]);
  }
};
#endif

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
