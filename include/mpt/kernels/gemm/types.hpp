#pragma once
// The vocabulary of GEMM calls: which operand is transposed, and what is fused
// into the store of C.

#include <cstddef>

namespace mpt::kernels {

// op(X) = X (N) or X transposed (T). Matrices are row-major with a leading
// dimension: element (r, c) of a stored R x C matrix is at X[r * ld + c].
enum class Trans { N, T };

// Applied, in this order, to every element of C as it is stored:
//   v = alpha * (op(A) op(B))(i, j) + beta * C(i, j)     (C is not read when beta == 0)
//   v += bias[j]                                         (bias != nullptr)
//   v = gelu(v) = v/2 * (1 + erf(v / sqrt 2))            (gelu, as BERT)
//   v += residual[i * ldr + j]                           (residual != nullptr)
//   C(i, j) = v rounded to C's type (round to nearest even for bf16)
// Everything before the final rounding happens in the accumulation type.
template <class Bias = float, class Residual = Bias>
struct GemmEpilogue {
  const Bias* bias = nullptr;  // [N]
  bool gelu = false;
  const Residual* residual = nullptr;  // [M x N], leading dimension ldr
  std::size_t ldr = 0;

  bool fuses_anything() const noexcept { return bias != nullptr || gelu || residual != nullptr; }
};

}  // namespace mpt::kernels
