#pragma once
// AVX2 + FMA fp32 micro-kernel, 6 x 16: 12 ymm accumulators, 2 for B, 1 broadcast.
// (bf16 inputs reach it widened to fp32 by the packing, which is exact.)
//
// Shape: C[6 x 16] (+)= A[6 x kc] * B[kc x 16]
//   A element (i, k) at a[i * rs_a + k * cs_a]; B packed b[k * 16 + j]; C at c[i * ldc + j].
// Scalar reference: ScalarKernel<float, 6, 16>.

#include <mpt/core/cpu.hpp>

#include <immintrin.h>

#include <cstddef>

namespace mpt::kernels::detail {

#if MPT_X86
struct Avx2FmaKernel {
  using a_t = float;
  using b_t = float;
  using acc_t = float;
  static constexpr std::size_t mr = 6, nr = 16, kg = 1;
  static constexpr std::size_t kc = 256;  // B micro-panel 16 KiB in L1
  static constexpr std::size_t mc = 96;   // A block 96 KiB in L2
  static constexpr Isa isa = Isa::avx2;

  MPT_TARGET_AVX2 static void run(std::size_t k_groups, const float* a, std::size_t rs_a, std::size_t cs_a, const float* b, float* c, std::size_t ldc,
                                  bool accumulate) noexcept {
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (std::size_t i = 0; i < 6; ++i) {
      acc[i][0] = accumulate ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
      acc[i][1] = accumulate ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
    }
    for (std::size_t k = 0; k < k_groups; ++k, a += cs_a, b += 16) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
      for (std::size_t i = 0; i < 6; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i * rs_a);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
#pragma GCC unroll 6
    for (std::size_t i = 0; i < 6; ++i) {
      _mm256_storeu_ps(c + i * ldc, acc[i][0]);
      _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
  }
};
#endif

}  // namespace mpt::kernels::detail
