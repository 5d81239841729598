#pragma once
// The residual branch of a BERT block in one pass over memory:
//   sum = dropout(x) + residual          (saved: LayerNorm backward needs it)
//   y   = LayerNorm(sum) * gamma + beta  (mean, rstd saved)
// Bit for bit the same as dropout_add_forward followed by layer_norm_forward;
// fused, each chunk of rows is normalized while its sum is still in cache,
// so the sum is written once and never read back from memory.
// p = 0 gives plain residual + LayerNorm.
//
//   dropout_add_layer_norm_forward(x, residual, p, key, gamma, beta, eps, sum, y, mean, rstd)
//     x, residual, sum, y [rows..., H] (fp32 / bf16 / double); gamma, beta [H];
//     mean, rstd [rows] fp32 (double when the activations are double).
// Backward: dsum = layer_norm_backward(dy, sum, ...); dresidual = dsum;
//           dx = dropout_backward(dsum, p, key).

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/rows.hpp>
#include <mpt/kernels/detail/simd.hpp>
#include <mpt/kernels/dropout.hpp>
#include <mpt/kernels/layer_norm.hpp>

#include <cstddef>
#include <numeric>
#include <type_traits>

namespace mpt::kernels {

template <class In, class Res, class Par, class Out, class Stat>
void dropout_add_layer_norm_forward(TensorView<In> x, TensorView<Res> residual, float p, DropoutKey key, TensorView<Par> gamma, TensorView<Par> beta,
                                    double eps, TensorView<Out> sum, TensorView<Out> y, TensorView<Stat> mean, TensorView<Stat> rstd) {
  using I = std::remove_const_t<In>;
  using R = std::remove_const_t<Res>;
  using P = std::remove_const_t<Par>;
  using C = std::conditional_t<std::is_same_v<I, double> || std::is_same_v<Out, double>, double, float>;
  static_assert(std::is_same_v<Stat, C>, "dropout_add_layer_norm_forward: mean and rstd are fp32 (double when the activations are double)");
  constexpr const char* op = "dropout_add_layer_norm_forward";
  detail::check_dropout_probability(op, p);
  check_shape(op, "residual", residual.shape(), x.shape());
  check_shape(op, "sum", sum.shape(), x.shape());
  const std::size_t h = detail::check_layer_norm_forward(op, x, gamma, beta, y, mean, rstd);
  const std::size_t rows = h == 0 ? 0 : x.size() / h;
  // Chunks start on a dropout group boundary: chunk * h is a multiple of dropout_group.
  const std::size_t align = detail::dropout_group / std::gcd(h == 0 ? 1 : h, detail::dropout_group);
  const std::size_t want = detail::rows_per_task(h * (sizeof(I) + sizeof(R) + 2 * sizeof(Out)));
  const std::size_t chunk = (want + align - 1) / align * align;
  const Isa dropout_path = detail::dropout_isa<I, R, Out>();
  const Isa norm_path = detail::simd_isa_for<Out, Out>();
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t b, std::size_t e) {
    detail::dropout_range(dropout_path, x.data(), residual.data(), sum.data(), b * h, e * h, p, key);
    detail::layer_norm_rows<C, Out, P>(norm_path, sum.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(), rstd.data(), h, b, e);
  });
}

}  // namespace mpt::kernels
