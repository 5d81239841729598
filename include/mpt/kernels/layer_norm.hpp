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
#include <mpt/kernels/detail/rows.hpp>
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
void layer_norm_row_scalar(const In* x, const Par* gamma, const Par* beta, C eps, Out* y, std::size_t h, C& mean_out, C& rstd_out) {
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
void layer_norm_backward_row_scalar(const DY* dy, const In* x, const Par* gamma, C mean, C rstd, DX* dx, std::size_t h, C* dgamma_part,
                                    C* dbeta_part) {
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
#define MPT_LAYER_NORM_KERNELS(TARGET, ISA)                                                                                                    \
  namespace ISA {                                                                                                                              \
  /* Row sums keep 4 partial accumulators so the adds overlap (a fixed order: deterministic). */                                               \
  template <class In, class Out>                                                                                                               \
  TARGET void layer_norm_row(const In* x, const float* gamma, const float* beta, float eps, Out* y, std::size_t h, float& mean_out,            \
                             float& rstd_out) {                                                                                                \
    vf acc[4] = {zero(), zero(), zero(), zero()};                                                                                              \
    std::size_t j = 0;                                                                                                                         \
    for (; j + 4 * lanes <= h; j += 4 * lanes)                                                                                                 \
      for (std::size_t u = 0; u < 4; ++u) acc[u] = acc[u] + load(x + j + u * lanes);                                                           \
    for (; j < h; j += lanes) acc[0] = acc[0] + load(x + j, h - j);                                                                            \
    const float mean = hsum((acc[0] + acc[1]) + (acc[2] + acc[3])) / static_cast<float>(h);                                                    \
    const vf m = set1(mean);                                                                                                                   \
    for (vf & a : acc) a = zero();                                                                                                             \
    for (j = 0; j + 4 * lanes <= h; j += 4 * lanes) {                                                                                          \
      for (std::size_t u = 0; u < 4; ++u) {                                                                                                    \
        const vf d = load(x + j + u * lanes) - m;                                                                                              \
        acc[u] = fmadd(d, d, acc[u]);                                                                                                          \
      }                                                                                                                                        \
    }                                                                                                                                          \
    for (; j < h; j += lanes) {                                                                                                                \
      const vf d = first(load(x + j, h - j) - m, h - j);                                                                                       \
      acc[0] = fmadd(d, d, acc[0]);                                                                                                            \
    }                                                                                                                                          \
    const float rstd = 1.0f / std::sqrt(hsum((acc[0] + acc[1]) + (acc[2] + acc[3])) / static_cast<float>(h) + eps);                            \
    const vf r = set1(rstd);                                                                                                                   \
    for (j = 0; j < h; j += lanes) {                                                                                                           \
      const std::size_t n = h - j;                                                                                                             \
      if (n >= lanes) {                                                                                                                        \
        store(y + j, fmadd((load(x + j) - m) * r, load(gamma + j), load(beta + j)));                                                           \
      } else {                                                                                                                                 \
        store(y + j, fmadd((load(x + j, n) - m) * r, load(gamma + j, n), load(beta + j, n)), n);                                               \
      }                                                                                                                                        \
    }                                                                                                                                          \
    mean_out = mean;                                                                                                                           \
    rstd_out = rstd;                                                                                                                           \
  }                                                                                                                                            \
  /* Pass 1: the row sums (vector k into accumulator k % 2) and this row's dgamma/dbeta terms;   */                                            \
  /* pass 2 recomputes xhat and g from the row (in L1 by then) rather than storing them. */                                                    \
  template <class DY, class In>                                                                                                                \
  TARGET inline void layer_norm_backward_step(const DY* dy, const In* x, const float* gamma, vf m, vf r, std::size_t n, float* dgamma_part,    \
                                              float* dbeta_part, vf& sum_g, vf& sum_gx) {                                                      \
    vf d, xhat, g;                                                                                                                             \
    if (n >= lanes) {                                                                                                                          \
      d = load(dy);                                                                                                                            \
      xhat = (load(x) - m) * r;                                                                                                                \
      g = d * load(gamma);                                                                                                                     \
      store(dgamma_part, fmadd(d, xhat, load(dgamma_part)));                                                                                   \
      store(dbeta_part, load(dbeta_part) + d);                                                                                                 \
    } else {                                                                                                                                   \
      d = load(dy, n);                                                                                                                         \
      xhat = first((load(x, n) - m) * r, n);                                                                                                   \
      g = d * load(gamma, n);                                                                                                                  \
      store(dgamma_part, fmadd(d, xhat, load(dgamma_part, n)), n);                                                                             \
      store(dbeta_part, load(dbeta_part, n) + d, n);                                                                                           \
    }                                                                                                                                          \
    sum_g = sum_g + g;                                                                                                                         \
    sum_gx = fmadd(g, xhat, sum_gx);                                                                                                           \
  }                                                                                                                                            \
  template <class DY, class In, class DX>                                                                                                      \
  TARGET void layer_norm_backward_row(const DY* dy, const In* x, const float* gamma, float mean, float rstd, DX* dx, std::size_t h,            \
                                      float* dgamma_part, float* dbeta_part) {                                                                 \
    const vf m = set1(mean), r = set1(rstd);                                                                                                   \
    /* Named accumulators: an array indexed at run time would live in memory. */                                                               \
    vf sum_g0 = zero(), sum_g1 = zero(), sum_gx0 = zero(), sum_gx1 = zero();                                                                   \
    std::size_t j = 0;                                                                                                                         \
    for (; j + 2 * lanes <= h; j += 2 * lanes) {                                                                                               \
      layer_norm_backward_step(dy + j, x + j, gamma + j, m, r, lanes, dgamma_part + j, dbeta_part + j, sum_g0, sum_gx0);                       \
      layer_norm_backward_step(dy + j + lanes, x + j + lanes, gamma + j + lanes, m, r, lanes, dgamma_part + j + lanes, dbeta_part + j + lanes, \
                               sum_g1, sum_gx1);                                                                                               \
    }                                                                                                                                          \
    if (j < h) {                                                                                                                               \
      layer_norm_backward_step(dy + j, x + j, gamma + j, m, r, h - j, dgamma_part + j, dbeta_part + j, sum_g0, sum_gx0);                       \
      j += lanes;                                                                                                                              \
    }                                                                                                                                          \
    if (j < h) layer_norm_backward_step(dy + j, x + j, gamma + j, m, r, h - j, dgamma_part + j, dbeta_part + j, sum_g1, sum_gx1);              \
    const vf mean_g = set1(hsum(sum_g0 + sum_g1) / static_cast<float>(h));                                                                     \
    const vf mean_gx = set1(hsum(sum_gx0 + sum_gx1) / static_cast<float>(h));                                                                  \
    for (j = 0; j + lanes <= h; j += lanes) {                                                                                                  \
      const vf xhat = (load(x + j) - m) * r, g = load(dy + j) * load(gamma + j);                                                               \
      store(dx + j, r * (g - mean_g - xhat * mean_gx));                                                                                        \
    }                                                                                                                                          \
    if (j < h) {                                                                                                                               \
      const std::size_t n = h - j;                                                                                                             \
      const vf xhat = (load(x + j, n) - m) * r, g = load(dy + j, n) * load(gamma + j, n);                                                      \
      store(dx + j, r * (g - mean_g - xhat * mean_gx), n);                                                                                     \
    }                                                                                                                                          \
  }                                                                                                                                            \
  }  // namespace ISA
MPT_LAYER_NORM_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_LAYER_NORM_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_LAYER_NORM_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_LAYER_NORM_KERNELS
#endif  // MPT_X86

}  // namespace detail

namespace detail {
// Rows [begin, end) of x [rows, h] on one thread.
template <class C, class I, class P, class Out, class Stat>
void layer_norm_rows(Isa isa, const I* x, const P* gamma, const P* beta, double eps, Out* y, Stat* mean, Stat* rstd, std::size_t h, std::size_t begin,
                     std::size_t end) {
  for (std::size_t r = begin; r < end; ++r) {
    const I* xr = x + r * h;
    Out* yr = y + r * h;
    prefetch(xr, h * sizeof(I), h * sizeof(I));  // the next row
    if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && simd_storage<I> && simd_storage<Out>) {
#if MPT_X86
      if (isa >= Isa::avx512_bf16) {
        avx512_bf16::layer_norm_row(xr, gamma, beta, float(eps), yr, h, mean[r], rstd[r]);
        continue;
      }
      if (isa >= Isa::avx512) {
        avx512::layer_norm_row(xr, gamma, beta, float(eps), yr, h, mean[r], rstd[r]);
        continue;
      }
      if (isa == Isa::avx2) {
        avx2::layer_norm_row(xr, gamma, beta, float(eps), yr, h, mean[r], rstd[r]);
        continue;
      }
#endif
    }
    layer_norm_row_scalar<C>(xr, gamma, beta, static_cast<C>(eps), yr, h, mean[r], rstd[r]);
  }
}

template <class In, class Par, class Out, class Stat>
std::size_t check_layer_norm_forward(const char* op, const TensorView<In>& x, const TensorView<Par>& gamma, const TensorView<Par>& beta,
                                     const TensorView<Out>& y, const TensorView<Stat>& mean, const TensorView<Stat>& rstd) {
  if (x.rank() < 1) throw_error(op, ": x must have at least one axis");
  const std::size_t h = static_cast<std::size_t>(x.dim(-1));
  const std::size_t rows = h == 0 ? 0 : x.size() / h;
  check_shape(op, "y", y.shape(), x.shape());
  check_shape(op, "gamma", gamma.shape(), Shape{std::int64_t(h)});
  check_shape(op, "beta", beta.shape(), Shape{std::int64_t(h)});
  check_shape(op, "mean", mean.shape(), Shape{std::int64_t(rows)});
  check_shape(op, "rstd", rstd.shape(), Shape{std::int64_t(rows)});
  return h;
}
}  // namespace detail

template <class In, class Par, class Out, class Stat>
void layer_norm_forward(TensorView<In> x, TensorView<Par> gamma, TensorView<Par> beta, double eps, TensorView<Out> y, TensorView<Stat> mean,
                        TensorView<Stat> rstd) {
  using I = std::remove_const_t<In>;
  using P = std::remove_const_t<Par>;
  using C = std::conditional_t<std::is_same_v<I, double> || std::is_same_v<Out, double>, double, float>;
  static_assert(std::is_same_v<Stat, C>, "layer_norm_forward: mean and rstd are fp32 (double when x or y is double)");
  const std::size_t h = detail::check_layer_norm_forward("layer_norm_forward", x, gamma, beta, y, mean, rstd);
  const std::size_t rows = h == 0 ? 0 : x.size() / h;
  const Isa isa = detail::simd_isa_for<I, Out>();
  detail::for_each_row_chunk(rows, detail::rows_per_task(h * (sizeof(I) + sizeof(Out))), [&](std::size_t b, std::size_t e) {
    detail::layer_norm_rows<C, I, P>(isa, x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(), rstd.data(), h, b, e);
  });
}

template <class DY, class In, class Par, class Stat, class DX, class Grad>
void layer_norm_backward(TensorView<DY> dy, TensorView<In> x, TensorView<Par> gamma, TensorView<Stat> mean, TensorView<Stat> rstd, TensorView<DX> dx,
                         TensorView<Grad> dgamma, TensorView<Grad> dbeta) {
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
  // Per chunk: dgamma part, then dbeta part.
  C* partials = detail::thread_scratch<C, detail::ScratchUse::partials>(chunks * 2 * h);
  std::fill(partials, partials + chunks * 2 * h, C(0));
  const Isa isa = detail::simd_isa_for<D, I, DX>();
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t b, std::size_t e) {
    C* dgamma_part = partials + (b / chunk) * 2 * h;
    C* dbeta_part = dgamma_part + h;
    for (std::size_t r = b; r < e; ++r) {
      const D* dyr = dy.data() + r * h;
      const I* xr = x.data() + r * h;
      DX* dxr = dx.data() + r * h;
      detail::prefetch(dyr, h * sizeof(D), h * sizeof(D));  // the next row
      detail::prefetch(xr, h * sizeof(I), h * sizeof(I));
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<D> && detail::simd_storage<I> &&
                    detail::simd_storage<DX>) {
#if MPT_X86
        if (isa >= Isa::avx512_bf16) {
          detail::avx512_bf16::layer_norm_backward_row(dyr, xr, gamma.data(), mean[r], rstd[r], dxr, h, dgamma_part, dbeta_part);
          continue;
        }
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
      detail::layer_norm_backward_row_scalar<C>(dyr, xr, gamma.data(), static_cast<C>(mean[r]), static_cast<C>(rstd[r]), dxr, h, dgamma_part,
                                                dbeta_part);
    }
  });
  // Partials in chunk order, then into the gradients: the same bits for any
  // thread count. Chunk 0's partials become the running sums (contiguous rows:
  // the compiler vectorizes the adds; each column is still summed in chunk order).
  C* sums = partials;
  for (std::size_t c = 1; c < chunks; ++c) {
    const C* part = partials + c * 2 * h;
    for (std::size_t j = 0; j < 2 * h; ++j) sums[j] += part[j];
  }
  for (std::size_t j = 0; j < h && chunks > 0; ++j) {
    dgamma[j] += sums[j];
    dbeta[j] += sums[h + j];
  }
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
