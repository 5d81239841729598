#pragma once
// Portable micro-kernel: the reference the SIMD micro-kernels are checked
// against, the fp32 path on CPUs without AVX2, and the fp64 path everywhere.
//
// Shape: C[MR x NR] (+)= A[MR x kc] * B[kc x NR]
//   A element (i, k) at a[i * rs_a + k * cs_a]   (packed panel or the caller's rows)
//   B packed: b[k * NR + j]
//   C accumulators at c[i * ldc + j], loaded first when `accumulate`.

#include <mpt/core/cpu.hpp>

#include <cstddef>

namespace mpt::kernels::detail {

template <class T, std::size_t MR, std::size_t NR>
struct ScalarKernel {
  using a_t = T;
  using b_t = T;
  using acc_t = T;
  static constexpr std::size_t mr = MR, nr = NR, kg = 1;
  static constexpr std::size_t kc = 256;  // k per cache block
  static constexpr std::size_t mc = 16 * MR;
  static constexpr Isa isa = Isa::scalar;

  static void run(std::size_t k_groups, const a_t* a, std::size_t rs_a, std::size_t cs_a, const b_t* b, acc_t* c, std::size_t ldc,
                  bool accumulate) noexcept {
    acc_t acc[MR][NR];
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t j = 0; j < NR; ++j) acc[i][j] = accumulate ? c[i * ldc + j] : acc_t(0);
    for (std::size_t k = 0; k < k_groups; ++k, a += cs_a, b += NR) {
      for (std::size_t i = 0; i < MR; ++i) {
        const acc_t ai = a[i * rs_a];
        for (std::size_t j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
      }
    }
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
  }
};

using ScalarFp32Kernel = ScalarKernel<float, 4, 16>;
using ScalarFp64Kernel = ScalarKernel<double, 4, 8>;

}  // namespace mpt::kernels::detail
