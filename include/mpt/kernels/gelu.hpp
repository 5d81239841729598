#pragma once
// GELU, erf form as torch.nn.functional.gelu(approximate='none'):
//   gelu(h) = 0.5 h (1 + erf(h / sqrt 2)),
//   gelu'(h) = 0.5 (1 + erf(h / sqrt 2)) + h exp(-h^2 / 2) / sqrt(2 pi).
//
//   gelu_bias_forward(x, bias, y, preact)
//     x [rows..., N] fp32 / bf16 / double (a GEMM output without its bias),
//     bias [N] fp32 (or double), or a default view {} for none; h = x + bias, rounded to y's type
//     (as a bf16 linear layer's output is under autocast), y = gelu(h).
//     preact (same shape, y's type) receives h for backward, or {} to skip.
//   gelu_forward(x, y)                     no bias, no saved pre-activation
//   gelu_backward(dy, preact, dx, dbias)
//     dx = dy * gelu'(preact); dbias [N] (fp32, or {} to skip) += sum_rows dx,
//     summed deterministically (fixed row chunks, partials in chunk order).

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
namespace detail {
inline constexpr double sqrt1_2 = 0.70710678118654752440;     // 1 / sqrt(2)
inline constexpr double inv_sqrt_2pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
inline constexpr std::size_t gelu_backward_chunk_rows = 32;

template <class C>
C gelu_reference(C h) {
  return C(0.5) * h * (C(1) + std::erf(h * C(sqrt1_2)));
}
template <class C>
C gelu_derivative_reference(C h) {
  return C(0.5) * (C(1) + std::erf(h * C(sqrt1_2))) + h * std::exp(C(-0.5) * h * h) * C(inv_sqrt_2pi);
}

// Scalar reference for one row of n.
template <class C, class In, class Par, class Out>
void gelu_row_scalar(const In* x, const Par* bias, Out* y, Out* preact, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    C h = static_cast<C>(to_float(x[j]));
    if (bias) h += static_cast<C>(bias[j]);
    if constexpr (std::is_same_v<C, float>) h = keep_as<Out>(h);
    if (preact) preact[j] = static_cast<Out>(h);
    y[j] = static_cast<Out>(gelu_reference(h));
  }
}

template <class C, class DY, class H, class DX>
void gelu_backward_row_scalar(const DY* dy, const H* h, DX* dx, std::size_t n, C* dbias_part) {
  for (std::size_t j = 0; j < n; ++j) {
    const C d = static_cast<C>(to_float(dy[j])) * gelu_derivative_reference(static_cast<C>(to_float(h[j])));
    dx[j] = static_cast<DX>(d);
    // The bias gradient sums dx as stored (bf16 under autocast), as PyTorch's linear backward does.
    if (dbias_part) dbias_part[j] += std::is_same_v<C, float> ? keep_as<DX>(float(d)) : d;
  }
}

#if MPT_X86
#define MPT_GELU_KERNELS(TARGET, ISA)                                                                 \
  namespace ISA {                                                                                     \
  /* gelu and gelu' of U vectors at once (see exp_n in simd.hpp). */                                  \
  template <std::size_t U>                                                                            \
  TARGET inline void gelu_n(vf (&h)[U]) noexcept {                                                    \
    vf e[U];                                                                                          \
    for (std::size_t u = 0; u < U; ++u) e[u] = h[u] * set1(float(sqrt1_2));                           \
    erf_n(e);                                                                                         \
    for (std::size_t u = 0; u < U; ++u) h[u] = set1(0.5f) * h[u] * (set1(1.0f) + e[u]);               \
  }                                                                                                   \
  template <std::size_t U>                                                                            \
  TARGET inline void gelu_derivative_n(vf (&h)[U]) noexcept {                                         \
    vf cdf[U], pdf[U];                                                                                \
    for (std::size_t u = 0; u < U; ++u) {                                                             \
      cdf[u] = h[u] * set1(float(sqrt1_2));                                                           \
      pdf[u] = set1(-0.5f) * h[u] * h[u];                                                             \
    }                                                                                                 \
    erf_n(cdf);                                                                                       \
    exp_n(pdf);                                                                                       \
    for (std::size_t u = 0; u < U; ++u) {                                                             \
      cdf[u] = set1(0.5f) * (set1(1.0f) + cdf[u]);                                                    \
      h[u] = fmadd(h[u], pdf[u] * set1(float(inv_sqrt_2pi)), cdf[u]);                                 \
    }                                                                                                 \
  }                                                                                                   \
  template <class In, class Out>                                                                      \
  TARGET void gelu_row(const In* x, const float* bias, Out* y, Out* preact, std::size_t n) {          \
    /* Two vectors per step: erf is a long dependency chain, two overlap. */                          \
    /* h = x + bias rounded to Out; bf16 x without bias is already exact. */                          \
    const bool round_h = std::is_same_v<Out, bf16> && !(std::is_same_v<In, bf16> && bias == nullptr); \
    std::size_t j = 0;                                                                                \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                      \
      vf h[2];                                                                                        \
      for (std::size_t u = 0; u < 2; ++u) {                                                           \
        h[u] = load(x + j + u * lanes);                                                               \
        if (bias) h[u] = h[u] + load(bias + j + u * lanes);                                           \
        if (round_h) h[u] = round_to_bf16(h[u]);                                                      \
        if (preact) store(preact + j + u * lanes, h[u]);                                              \
      }                                                                                               \
      gelu_n(h);                                                                                      \
      store(y + j, h[0]);                                                                             \
      store(y + j + lanes, h[1]);                                                                     \
    }                                                                                                 \
    for (; j < n; j += lanes) {                                                                       \
      const std::size_t m = n - j;                                                                    \
      vf h = load(x + j, m);                                                                          \
      if (bias) h = h + load(bias + j, m);                                                            \
      if (round_h) h = round_to_bf16(h);                                                              \
      if (preact) store(preact + j, h, m);                                                            \
      vf g[1] = {h};                                                                                  \
      gelu_n(g);                                                                                      \
      store(y + j, g[0], m);                                                                          \
    }                                                                                                 \
  }                                                                                                   \
  template <class T>                                                                                  \
  TARGET inline vf stored(vf v) noexcept {                                                            \
    if constexpr (std::is_same_v<T, bf16>) return round_to_bf16(v);                                   \
    else return v;                                                                                    \
  }                                                                                                   \
  template <class DY, class H, class DX>                                                              \
  TARGET void gelu_backward_row(const DY* dy, const H* h, DX* dx, std::size_t n, float* dbias_part) { \
    std::size_t j = 0;                                                                                \
    for (; j + 2 * lanes <= n; j += 2 * lanes) {                                                      \
      vf g[2] = {load(h + j), load(h + j + lanes)};                                                   \
      gelu_derivative_n(g);                                                                           \
      const vf d0 = load(dy + j) * g[0], d1 = load(dy + j + lanes) * g[1];                            \
      store(dx + j, d0);                                                                              \
      store(dx + j + lanes, d1);                                                                      \
      if (dbias_part) {                                                                               \
        store(dbias_part + j, load(dbias_part + j) + stored<DX>(d0));                                 \
        store(dbias_part + j + lanes, load(dbias_part + j + lanes) + stored<DX>(d1));                 \
      }                                                                                               \
    }                                                                                                 \
    for (; j < n; j += lanes) {                                                                       \
      const std::size_t m = n - j;                                                                    \
      vf g[1] = {load(h + j, m)};                                                                     \
      gelu_derivative_n(g);                                                                           \
      const vf d = load(dy + j, m) * g[0];                                                            \
      store(dx + j, d, m);                                                                            \
      if (dbias_part) store(dbias_part + j, load(dbias_part + j, m) + stored<DX>(d), m);              \
    }                                                                                                 \
  }                                                                                                   \
  }  // namespace ISA
MPT_GELU_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_GELU_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_GELU_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_GELU_KERNELS
#endif  // MPT_X86
}  // namespace detail

template <class In, class Par, class Out, class Pre>
void gelu_bias_forward(TensorView<In> x, TensorView<Par> bias, TensorView<Out> y, TensorView<Pre> preact) {
  using I = std::remove_const_t<In>;
  using P = std::remove_const_t<Par>;
  using C = std::conditional_t<std::is_same_v<I, double> || std::is_same_v<Out, double>, double, float>;
  static_assert(std::is_same_v<Pre, Out>, "gelu_bias_forward: the saved pre-activation has the output's type");
  if (x.rank() < 1) throw_error("gelu_bias_forward: x must have at least one axis");
  const std::size_t n = static_cast<std::size_t>(x.dim(-1));
  const std::size_t rows = n == 0 ? 0 : x.size() / n;
  check_shape("gelu_bias_forward", "y", y.shape(), x.shape());
  if (detail::present(bias)) check_shape("gelu_bias_forward", "bias", bias.shape(), Shape{std::int64_t(n)});
  if (detail::present(preact)) check_shape("gelu_bias_forward", "preact", preact.shape(), x.shape());
  const P* b = detail::present(bias) ? bias.data() : nullptr;
  const Isa isa = detail::simd_isa_for<I, Out>();
  detail::for_each_row_chunk(rows, detail::rows_per_task(n * (sizeof(I) + 2 * sizeof(Out))), [&](std::size_t rb, std::size_t re) {
    for (std::size_t r = rb; r < re; ++r) {
      const I* xr = x.data() + r * n;
      Out* yr = y.data() + r * n;
      Out* pr = detail::present(preact) ? preact.data() + r * n : nullptr;
      detail::prefetch(xr, n * sizeof(I), n * sizeof(I));  // the next row
      if constexpr (std::is_same_v<C, float> && std::is_same_v<P, float> && detail::simd_storage<I> &&
                    detail::simd_storage<Out>) {
#if MPT_X86
        if (isa == Isa::avx512_bf16) { detail::avx512_bf16::gelu_row(xr, b, yr, pr, n); continue; }
        if (isa >= Isa::avx512) { detail::avx512::gelu_row(xr, b, yr, pr, n); continue; }
        if (isa == Isa::avx2) { detail::avx2::gelu_row(xr, b, yr, pr, n); continue; }
#endif
      }
      detail::gelu_row_scalar<C>(xr, b, yr, pr, n);
    }
  });
}

template <class In, class Out>
void gelu_forward(TensorView<In> x, TensorView<Out> y) {
  using B = std::conditional_t<std::is_same_v<std::remove_const_t<In>, double> || std::is_same_v<Out, double>, double, float>;
  gelu_bias_forward(x, TensorView<const B>{}, y, TensorView<Out>{});
}

template <class DY, class H, class DX, class Grad>
void gelu_backward(TensorView<DY> dy, TensorView<H> preact, TensorView<DX> dx, TensorView<Grad> dbias) {
  using D = std::remove_const_t<DY>;
  using HH = std::remove_const_t<H>;
  using C = std::conditional_t<std::is_same_v<HH, double> || std::is_same_v<DX, double>, double, float>;
  static_assert(std::is_same_v<Grad, C>, "gelu_backward: dbias is fp32 (double when the pre-activation is double)");
  if (preact.rank() < 1) throw_error("gelu_backward: preact must have at least one axis");
  const std::size_t n = static_cast<std::size_t>(preact.dim(-1));
  const std::size_t rows = n == 0 ? 0 : preact.size() / n;
  check_shape("gelu_backward", "dy", dy.shape(), preact.shape());
  check_shape("gelu_backward", "dx", dx.shape(), preact.shape());
  const bool want_dbias = detail::present(dbias);
  if (want_dbias) check_shape("gelu_backward", "dbias", dbias.shape(), Shape{std::int64_t(n)});
  const std::size_t chunk = detail::gelu_backward_chunk_rows;
  const std::size_t chunks = (rows + chunk - 1) / chunk;
  C* partials = detail::thread_scratch<C, detail::ScratchUse::partials>(want_dbias ? chunks * n : 0);
  if (want_dbias) std::fill(partials, partials + chunks * n, C(0));
  const Isa isa = detail::simd_isa_for<D, HH, DX>();
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t rb, std::size_t re) {
    C* part = want_dbias ? partials + (rb / chunk) * n : nullptr;
    for (std::size_t r = rb; r < re; ++r) {
      const D* dyr = dy.data() + r * n;
      const HH* hr = preact.data() + r * n;
      DX* dxr = dx.data() + r * n;
      detail::prefetch(dyr, n * sizeof(D), n * sizeof(D));  // the next row
      detail::prefetch(hr, n * sizeof(HH), n * sizeof(HH));
      if constexpr (std::is_same_v<C, float> && detail::simd_storage<D> && detail::simd_storage<HH> &&
                    detail::simd_storage<DX>) {
#if MPT_X86
        if (isa == Isa::avx512_bf16) { detail::avx512_bf16::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
        if (isa >= Isa::avx512) { detail::avx512::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
        if (isa == Isa::avx2) { detail::avx2::gelu_backward_row(dyr, hr, dxr, n, part); continue; }
#endif
      }
      detail::gelu_backward_row_scalar<C>(dyr, hr, dxr, n, part);
    }
  });
  if (!want_dbias) return;
  // Chunk partials in chunk order (chunk 0 holds the running sums): thread-count independent.
  for (std::size_t c = 1; c < chunks; ++c)
    for (std::size_t j = 0; j < n; ++j) partials[j] += partials[c * n + j];
  for (std::size_t j = 0; j < n && chunks > 0; ++j) dbias[j] += partials[j];
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
