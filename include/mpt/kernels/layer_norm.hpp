#pragma once
// LayerNorm over the last axis, as torch.nn.LayerNorm (biased variance,
// statistics in fp32 whatever the storage; BERT's eps is 1e-12).
//
//   layer_norm_forward(x, gamma, beta, eps, y, mean, rstd)
//     x [rows..., H] fp32 / bf16 / double; gamma, beta [H] fp32 (or double)
//     y = (x - mean) * rstd * gamma + beta  [rows..., H] fp32 / bf16 / double
//     mean, rstd [rows] fp32 (or double): saved for backward
//     mean and variance are two passes over the row (more accurate than
//     one-pass moments; the row sits in L1 for the second pass).
//
//   layer_norm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
//     dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma,
//          xhat = (x - mean) * rstd                  (dx is overwritten)
//     dgamma += sum_rows dy * xhat, dbeta += sum_rows dy   (accumulated, fp32)
//     Deterministic for any thread count: rows are cut into chunks of a
//     fixed size, each chunk sums its rows in order into its own partials,
//     and the partials are added in chunk order.

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/simd.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {

inline constexpr float bert_layer_norm_eps = 1e-12f;

namespace detail {
inline constexpr std::size_t layer_norm_backward_chunk_rows = 32;

// Scalar reference for one row, in C (float, or double for the fp64 policy).
template <class C, class In, class Par, class Out>
void layer_norm_row_scalar(const In* x, const Par* gamma, const Par* beta, C eps, Out* y, std::size_t h, C& mean_out,
                           C& rstd_out) {
  C sum = 0;
  for (std::size_t j = 0; j < h; ++j) sum += static_cast<C>(to_float(x[j]));
  const C mean = sum / static_cast<C>(h);
  C sq = 0;
  for (std::size_t j = 0; j < h; ++j) {
    const C d = static_cast<C>(to_float(x[j])) - mean;
    sq += d * d;
  }
  const C rstd = C(1) / std::sqrt(sq / static_cast<C>(h) + eps);
  for (std::size_t j = 0; j < h; ++j) {
    const C xhat = (static_cast<C>(to_float(x[j])) - mean) * rstd;
    y[j] = static_cast<Out>(xhat * static_cast<C>(gamma[j]) + static_cast<C>(beta[j]));
  }
  mean_out = mean;
  rstd_out = rstd;
}

// One row of backward; adds this row's dgamma/dbeta terms into the chunk partials.
template <class C, class DY, class In, class Par, class DX>
void layer_norm_backward_row_scalar(const DY* dy, const In* x, const Par* gamma, C mean, C rstd, DX* dx, std::size_t h,
                                    C* dgamma_part, C* dbeta_part) {
  C sum_g = 0, sum_gx = 0;
  for (std::size_t j = 0; j < h; ++j) {
    const C d = static_cast<C>(to_float(dy[j]));
    const C xhat = (static_cast<C>(to_float(x[j])) - mean) * rstd;
    const C g = d * static_cast<C>(gamma[j]);
    sum_g += g;
    sum_gx += g * xhat;
    dgamma_part[j] += d * xhat;
    dbeta_part[j] += d;
  }
  const C mean_g = sum_g / static_cast<C>(h), mean_gx = sum_gx / static_cast<C>(h);
  for (std::size_t j = 0; j < h; ++j) {
    const C xhat = (static_cast<C>(to_float(x[j])) - mean) * rstd;
    const C g = static_cast<C>(to_float(dy[j])) * static_cast<C>(gamma[j]);
    dx[j] = static_cast<DX>(rstd * (g - mean_g - xhat * mean_gx));
  }
}

#if MPT_X86
// The same two rows, one body for both instruction sets (see simd.hpp).
#define MPT_LAYER_NORM_KERNELS(TARGET, ISA)                                                                      \
  namespace ISA {                                                                                                \
  template <class In, class Out>                                                                                 \
  TARGET void layer_norm_row(const In* x, const float* gamma, const float* beta, float eps, Out* y, std::size_t h, \
                             float& mean_out, float& rstd_out) {                                                 \
    vf vsum = zero();                                                                                            \
    for (std::size_t j = 0; j < h; j += lanes) vsum = vsum + (h - j >= lanes ? load(x + j) : load(x + j, h - j)); \
    const float mean = hsum(vsum) / static_cast<float>(h);                                                       \
    const vf m = set1(mean);                                                                                     \
    vf vsq = zero();                                                                                             \
    for (std::size_t j = 0; j < h; j += lanes) {                                                                 \
      const std::size_t n = h - j;                                                                               \
      const vf d = n >= lanes ? load(x + j) - m : first(load(x + j, n) - m, n);                                  \
      vsq = fmadd(d, d, vsq);                                                                                    \
    }                                                                                                            \
    const float rstd = 1.0f / std::sqrt(hsum(vsq) / static_cast<float>(h) + eps);                                \
    const vf r = set1(rstd);                                                                                     \
    for (std::size_t j = 0; j < h; j += lanes) {                                                                 \
      const std::size_t n = h - j;                                                                               \
      if (n >= lanes) {                                                                                          \
        store(y + j, fmadd((load(x + j) - m) * r, load(gamma + j), load(beta + j)));                             \
      } else {                                                                                                   \
        store(y + j, fmadd((load(x + j, n) - m) * r, load(gamma + j, n), load(beta + j, n)), n);                 \
      }                                                                                                          \
    }                                                                                                            \
    mean_out = mean;                                                                                             \
    rstd_out = rstd;                                                                                             \
  }                                                                                                              \
  template <class DY, class In, class DX>                                                                        \
  TARGET void layer_norm_backward_row(const DY* dy, const In* x, const float* gamma, float mean, float rstd,     \
                                      DX* dx, std::size_t h, float* dgamma_part, float* dbeta_part) {            \
    const vf m = set1(mean), r = set1(rstd);                                                                     \
    vf vg = zero(), vgx = zero();                                                                                \
    for (std::size_t j = 0; j < h; j += lanes) {                                                                 \
      const std::size_t n = h - j;                                                                               \
      const vf d = n >= lanes ? load(dy + j) : load(dy + j, n);                                                  \
      const vf xhat = first(((n >= lanes ? load(x + j) : load(x + j, n)) - m) * r, n);                           \
      const vf g = d * (n >= lanes ? load(gamma + j) : load(gamma + j, n));                                      \
      vg = vg + g;                                                                                               \
      vgx = fmadd(g, xhat, vgx);                                                                                 \
      if (n >= lanes) {                                                                                          \
        store(dgamma_part + j, fmadd(d, xhat, load(dgamma_part + j)));                                           \
        store(dbeta_part + j, load(dbeta_part + j) + d);                                                         \
      } else {                                                                                                   \
        store(dgamma_part + j, fmadd(d, xhat, load(dgamma_part + j, n)), n);                                     \
        store(dbeta_part + j, load(dbeta_part + j, n) + d, n);                                                   \
      }                                                                                                          \
    }                                                                                                            \
    const vf mean_g = set1(hsum(vg) / static_cast<float>(h)), mean_gx = set1(hsum(vgx) / static_cast<float>(h)); \
    for (std::size_t j = 0; j < h; j += lanes) {                                                                 \
      const std::size_t n = h - j;                                                                               \
      if (n >= lanes) {                                                                                          \
        const vf xhat = (load(x + j) - m) * r;                                                                   \
        const vf g = load(dy + j) * load(gamma + j);                                                             \
        store(dx + j, r * (g - mean_g - xhat * mean_gx));                                                        \
      } else {                                                                                                   \
        const vf xhat = (load(x + j, n) - m) * r;                                                                \
        const vf g = load(dy + j, n) * load(gamma + j, n);                                                       \
        store(dx + j, r * (g - mean_g - xhat * mean_gx), n);                                                     \
      }                                                                                                          \
    }                                                                                                            \
  }                                                                                                              \
  }  // namespace ISA
MPT_LAYER_NORM_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_LAYER_NORM_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_LAYER_NORM_KERNELS
#endif  // MPT_X86

}  // namespace detail

template <class In, class Par, class Out, class Stat>
void layer_norm_forward(TensorView<In> x, TensorView<Par> gamma, TensorView<Par> beta, double eps, TensorView<Out> y,
                        TensorView<Stat> mean, TensorView<Stat> rstd) {
  using I = std::remove_const_t<In>;
  using P = std::remove_const_t<Par>;
  using C = std::conditional_t<std::is_same_v<I, double> || std::is_same_v<Out, double>, double, float>;
  static_assert(std::is_same_v<Stat, C>, "layer_norm_forward: mean and rstd are fp32 (double when x or y is double)");
  if (x.rank() < 1) throw_error("layer_norm_forward: x must have at least one axis");
  const std::size_t h = static_cast<std::size_t>(x.dim(-1));
  const std::size_t rows = h == 0 ? 0 : x.size() / h;
  check_shape("layer_norm_forward", "y", y.shape(), x.shape());
  check_shape("layer_norm_forward", "gamma", gamma.shape(), Shape{std::int64_t(h)});
  check_shape("layer_norm_forward", "beta", beta.shape(), Shape{std::int64_t(h)});
  check_shape("layer_norm_forward", "mean", mean.shape(), Shape{std::int64_t(rows)});
  check_shape("layer_norm_forward", "rstd", rstd.shape(), Shape{std::int64_t(rows)});
  const Isa isa = detail::simd_isa_for<I, Out>();
  detail::for_each_row_chunk(rows, detail::rows_per_task(h * (sizeof(I) + sizeof(Out))), [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r) {
      const I* xr = x.data() + r * h;
      Out* yr = y.data() + r * h;
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<I> &&
                    detail::simd_storage<Out>) {
#if MPT_X86
        if (isa >= Isa::avx512) {
          detail::avx512::layer_norm_row(xr, gamma.data(), beta.data(), float(eps), yr, h, mean[r], rstd[r]);
          continue;
        }
        if (isa == Isa::avx2) {
          detail::avx2::layer_norm_row(xr, gamma.data(), beta.data(), float(eps), yr, h, mean[r], rstd[r]);
          continue;
        }
#endif
      }
      detail::layer_norm_row_scalar<C>(xr, gamma.data(), beta.data(), static_cast<C>(eps), yr, h, mean[r], rstd[r]);
    }
  });
}

template <class DY, class In, class Par, class Stat, class DX, class Grad>
void layer_norm_backward(TensorView<DY> dy, TensorView<In> x, TensorView<Par> gamma, TensorView<Stat> mean,
                         TensorView<Stat> rstd, TensorView<DX> dx, TensorView<Grad> dgamma, TensorView<Grad> dbeta) {
  using D = std::remove_const_t<DY>;
  using I = std::remove_const_t<In>;
  using P = std::remove_const_t<Par>;
  using S = std::remove_const_t<Stat>;
  using C = std::conditional_t<std::is_same_v<S, double>, double, float>;
  static_assert(std::is_same_v<Grad, C>, "layer_norm_backward: dgamma and dbeta must have the statistics' type");
  if (x.rank() < 1) throw_error("layer_norm_backward: x must have at least one axis");
  const std::size_t h = static_cast<std::size_t>(x.dim(-1));
  const std::size_t rows = h == 0 ? 0 : x.size() / h;
  check_shape("layer_norm_backward", "dy", dy.shape(), x.shape());
  check_shape("layer_norm_backward", "dx", dx.shape(), x.shape());
  check_shape("layer_norm_backward", "gamma", gamma.shape(), Shape{std::int64_t(h)});
  check_shape("layer_norm_backward", "dgamma", dgamma.shape(), Shape{std::int64_t(h)});
  check_shape("layer_norm_backward", "dbeta", dbeta.shape(), Shape{std::int64_t(h)});
  check_shape("layer_norm_backward", "mean", mean.shape(), Shape{std::int64_t(rows)});
  check_shape("layer_norm_backward", "rstd", rstd.shape(), Shape{std::int64_t(rows)});
  const std::size_t chunk = detail::layer_norm_backward_chunk_rows;
  const std::size_t chunks = (rows + chunk - 1) / chunk;
  std::vector<C> partials(chunks * 2 * h, C(0));  // per chunk: dgamma part, then dbeta part
  const Isa isa = detail::simd_isa_for<D, I, DX>();
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t b, std::size_t e) {
    C* dgamma_part = partials.data() + (b / chunk) * 2 * h;
    C* dbeta_part = dgamma_part + h;
    for (std::size_t r = b; r < e; ++r) {
      const D* dyr = dy.data() + r * h;
      const I* xr = x.data() + r * h;
      DX* dxr = dx.data() + r * h;
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<D> &&
                    detail::simd_storage<I> && detail::simd_storage<DX>) {
#if MPT_X86
        if (isa >= Isa::avx512) {
          detail::avx512::layer_norm_backward_row(dyr, xr, gamma.data(), mean[r], rstd[r], dxr, h, dgamma_part, dbeta_part);
          continue;
        }
        if (isa == Isa::avx2) {
          detail::avx2::layer_norm_backward_row(dyr, xr, gamma.data(), mean[r], rstd[r], dxr, h, dgamma_part, dbeta_part);
          continue;
        }
#endif
      }
      detail::layer_norm_backward_row_scalar<C>(dyr, xr, gamma.data(), static_cast<C>(mean[r]), static_cast<C>(rstd[r]),
                                                dxr, h, dgamma_part, dbeta_part);
    }
  });
  // Partials in chunk order, then into the gradients: the same bits for any thread count.
  for (std::size_t j = 0; j < h; ++j) {
    C sum_gamma = 0, sum_beta = 0;
    for (std::size_t c = 0; c < chunks; ++c) {
      sum_gamma += partials[c * 2 * h + j];
      sum_beta += partials[c * 2 * h + h + j];
    }
    dgamma[j] += sum_gamma;
    dbeta[j] += sum_beta;
  }
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
