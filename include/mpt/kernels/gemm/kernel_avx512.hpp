#pragma once
// AVX-512F fp32 micro-kernel, 12 x 32: 24 zmm accumulators, 2 for B, A broadcast
// from memory straight into the FMA. (bf16 inputs on CPUs without AVX512_BF16
// reach it widened to fp32 by the packing, which is exact.)
//
// Shape: C[12 x 32] (+)= A[12 x kc] * B[kc x 32]
//   A element (i, k) at a[i * rs_a + k * cs_a]; B packed b[k * 32 + j]; C at c[i * ldc + j].
// Scalar reference: ScalarKernel<float, 12, 32>.

#include <mpt/core/cpu.hpp>

#include <immintrin.h>

#include <cstddef>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels::detail {

#if MPT_X86
// The 12 x 32 fp32 accumulators both AVX-512 kernels keep in 24 zmm registers:
// zero or C's values to start, C's rows to end.
MPT_TARGET_AVX512 __attribute__((always_inline)) inline void start_accumulators_12x32(__m512 (&acc)[12][2], const float* c, std::size_t ldc,
                                                                                      bool from_c) noexcept {
#pragma GCC unroll 12
  for (std::size_t i = 0; i < 12; ++i) {
    acc[i][0] = from_c ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
    acc[i][1] = from_c ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
  }
}
MPT_TARGET_AVX512 __attribute__((always_inline)) inline void store_accumulators_12x32(const __m512 (&acc)[12][2], float* c,
                                                                                      std::size_t ldc) noexcept {
#pragma GCC unroll 12
  for (std::size_t i = 0; i < 12; ++i) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}

struct Avx512FmaKernel {
  using a_t = float;
  using b_t = float;
  using acc_t = float;
  static constexpr std::size_t mr = 12, nr = 32, kg = 1;
  // Measured best here (CPU time, BERT shapes): long k-blocks, short row chunks.
  static constexpr std::size_t kc = 1536;  // B micro-panel 192 KiB streamed from L2; few partial-sum round trips
  static constexpr std::size_t mc = 24;    // 2 row panels: A block 144 KiB in L2
  static constexpr Isa isa = Isa::avx512;

  // acc[i][h] += sum over k of A(i, k) * B(k, 16h .. 16h+15): the loop both stores below
  // share (inlined, so the accumulators stay in registers).
  MPT_TARGET_AVX512 __attribute__((always_inline)) static inline void accumulate(std::size_t k_groups, const float* a, std::size_t rs_a,
                                                                                 std::size_t cs_a, const float* b, __m512 (&acc)[12][2]) noexcept {
    for (std::size_t k = 0; k < k_groups; ++k, a += cs_a, b += 32) {
      const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
      for (std::size_t i = 0; i < 12; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i * rs_a]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
  }

  MPT_TARGET_AVX512 static void run(std::size_t k_groups, const float* a, std::size_t rs_a, std::size_t cs_a, const float* b, float* c,
                                    std::size_t ldc, bool accumulate_into_c) noexcept {
    __m512 acc[12][2];
    start_accumulators_12x32(acc, c, ldc, accumulate_into_c);
    accumulate(k_groups, a, rs_a, cs_a, b, acc);
    store_accumulators_12x32(acc, c, ldc);
  }

  // C = store(A B) from the registers: store(i, row i's two accumulator vectors) applies
  // the epilogue and writes row i (see RegisterStoreAvx512 in epilogue.hpp).
  template <class Store>
  MPT_TARGET_AVX512 static void run_store(std::size_t k_groups, const float* a, std::size_t rs_a, std::size_t cs_a, const float* b,
                                          const Store& store) noexcept {
    __m512 acc[12][2];
    start_accumulators_12x32(acc, nullptr, 0, false);
    accumulate(k_groups, a, rs_a, cs_a, b, acc);
#pragma GCC unroll 12
    for (std::size_t i = 0; i < 12; ++i) store(i, acc[i][0], acc[i][1]);
  }
};
#endif

}  // namespace mpt::kernels::detail

#pragma GCC diagnostic pop
