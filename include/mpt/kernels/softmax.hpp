#pragma once
// Masked, scaled softmax over the last axis (attention probabilities), fp32 math.
//
//   softmax_forward(scores, additive_mask, scale, probs)
//     scores [rows..., K] fp32 (or double), e.g. [batch, heads, q, K]
//     additive_mask [M, K] fp32, or TensorView<const float>{} for none: row r of scores uses mask row
//       r / (rows / M), e.g. [batch, K] (or [batch, 1, 1, K]) for HF's
//       extended attention mask (1 - mask) * finfo(float32).min
//     probs = softmax(scores * scale + mask) [same shape], fp32 or bf16
//     The scale is applied before the mask, each rounded as PyTorch's
//     `scores / sqrt(d) + mask` rounds them (mul then add, no fma); x * (1/8)
//     is x / 8 exactly (head_dim 64), other head sizes may differ by 1 ulp.
//     A row whose every entry is -Inf gives zeros (PyTorch gives NaN); a row
//     masked with finfo.min is uniform, as in PyTorch.
//
//   softmax_backward(probs, dprobs, scale, dscores)
//     dscores = probs * (dprobs - rowsum(dprobs * probs)) * scale
//     probs, dprobs fp32 or bf16 [rows..., K]; dscores fp32 or bf16.

#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/kernels/detail/rows.hpp>
#include <mpt/kernels/detail/simd.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::kernels {
namespace detail {

// Scalar reference: one row of K, computed in C (float, or double for the fp64 policy).
template <class C, class In, class Out>
void softmax_row_scalar(const In* x, const float* mask, C scale, Out* y, std::size_t k, C* z) {
  C max = -std::numeric_limits<C>::infinity();
  for (std::size_t j = 0; j < k; ++j) {
    z[j] = static_cast<C>(to_float(x[j])) * scale;
    if (mask) z[j] += static_cast<C>(mask[j]);
    max = z[j] > max ? z[j] : max;
  }
  if (max == -std::numeric_limits<C>::infinity()) {
    for (std::size_t j = 0; j < k; ++j) y[j] = static_cast<Out>(0.0f);
    return;
  }
  C sum = 0;
  for (std::size_t j = 0; j < k; ++j) {
    z[j] = std::exp(z[j] - max);
    sum += z[j];
  }
  const C inv = C(1) / sum;
  for (std::size_t j = 0; j < k; ++j) y[j] = static_cast<Out>(z[j] * inv);
}

template <class C, class P, class DP, class DS>
void softmax_backward_row_scalar(const P* p, const DP* dp, C scale, DS* ds, std::size_t k) {
  C dot = 0;
  for (std::size_t j = 0; j < k; ++j) dot += static_cast<C>(to_float(dp[j])) * static_cast<C>(to_float(p[j]));
  for (std::size_t j = 0; j < k; ++j) {
    const C pj = static_cast<C>(to_float(p[j]));
    ds[j] = static_cast<DS>(pj * (static_cast<C>(to_float(dp[j])) - dot) * scale);
  }
}

#if MPT_X86
// z: scratch of k rounded up to whole vectors.
#define MPT_SOFTMAX_KERNELS(TARGET, ISA)                                                                               \
  namespace ISA {                                                                                                      \
  /* Reductions keep 4 partial accumulators so the adds overlap (a fixed order: deterministic). */                     \
  template <class In, class Out>                                                                                       \
  TARGET void softmax_row(const In* x, const float* mask, float scale, Out* y, std::size_t k, float* z) {              \
    const vf s = set1(scale);                                                                                          \
    vf vmax[4];                                                                                                        \
    for (vf & m : vmax) m = set1(-std::numeric_limits<float>::infinity());                                             \
    /* Pass 1: z = x * scale + mask, and its maximum. */                                                               \
    std::size_t j = 0;                                                                                                 \
    for (; j + 4 * lanes <= k; j += 4 * lanes) {                                                                       \
      for (std::size_t u = 0; u < 4; ++u) {                                                                            \
        vf v = load(x + j + u * lanes) * s;                                                                            \
        if (mask) v = v + load(mask + j + u * lanes);                                                                  \
        store(z + j + u * lanes, v);                                                                                   \
        vmax[u] = max(vmax[u], v);                                                                                     \
      }                                                                                                                \
    }                                                                                                                  \
    for (; j < k; j += lanes) {                                                                                        \
      const std::size_t n = k - j;                                                                                     \
      vf v = (n >= lanes ? load(x + j) : load(x + j, n)) * s;                                                          \
      if (mask) v = v + (n >= lanes ? load(mask + j) : load(mask + j, n));                                             \
      store(z + j, v);                                                                                                 \
      if (n >= lanes) vmax[0] = max(vmax[0], v);                                                                       \
    }                                                                                                                  \
    /* The last partial vector: lanes past k become -Inf, then count in the maximum. */                                \
    const std::size_t padded = (k + lanes - 1) / lanes * lanes;                                                        \
    for (std::size_t i = k; i < padded; ++i) z[i] = -std::numeric_limits<float>::infinity();                           \
    if (padded != k) vmax[1] = max(vmax[1], load(z + padded - lanes));                                                 \
    const float row_max = hmax(max(max(vmax[0], vmax[1]), max(vmax[2], vmax[3])));                                     \
    if (row_max == -std::numeric_limits<float>::infinity()) {                                                          \
      for (std::size_t i = 0; i < k; i += lanes) store(y + i, zero(), k - i);                                          \
      return;                                                                                                          \
    }                                                                                                                  \
    /* Pass 2: e = exp(z - max) and its sum. Pass 3: y = e / sum. */                                                   \
    const vf m = set1(row_max);                                                                                        \
    vf vsum[4] = {zero(), zero(), zero(), zero()};                                                                     \
    for (j = 0; j + 4 * lanes <= padded; j += 4 * lanes) {                                                             \
      for (std::size_t u = 0; u < 4; ++u) {                                                                            \
        const vf e = exp_nonpositive(load(z + j + u * lanes) - m);                                                     \
        store(z + j + u * lanes, e);                                                                                   \
        vsum[u] = vsum[u] + e;                                                                                         \
      }                                                                                                                \
    }                                                                                                                  \
    for (; j < padded; j += lanes) {                                                                                   \
      const vf e = exp_nonpositive(load(z + j) - m);                                                                   \
      store(z + j, e);                                                                                                 \
      vsum[0] = vsum[0] + e;                                                                                           \
    }                                                                                                                  \
    const vf inv = set1(1.0f / hsum((vsum[0] + vsum[1]) + (vsum[2] + vsum[3])));                                       \
    for (j = 0; j < k; j += lanes) {                                                                                   \
      const std::size_t n = k - j;                                                                                     \
      if (n >= lanes)                                                                                                  \
        store(y + j, load(z + j) * inv);                                                                               \
      else                                                                                                             \
        store(y + j, load(z + j) * inv, n);                                                                            \
    }                                                                                                                  \
  }                                                                                                                    \
  template <class P, class DP, class DS>                                                                               \
  TARGET void softmax_backward_row(const P* p, const DP* dp, float scale, DS* ds, std::size_t k) {                     \
    vf vdot[4] = {zero(), zero(), zero(), zero()};                                                                     \
    std::size_t j = 0;                                                                                                 \
    for (; j + 4 * lanes <= k; j += 4 * lanes)                                                                         \
      for (std::size_t u = 0; u < 4; ++u) vdot[u] = fmadd(load(dp + j + u * lanes), load(p + j + u * lanes), vdot[u]); \
    for (; j < k; j += lanes) vdot[0] = fmadd(load(dp + j, k - j), load(p + j, k - j), vdot[0]);                       \
    const vf dot = set1(hsum((vdot[0] + vdot[1]) + (vdot[2] + vdot[3]))), s = set1(scale);                             \
    for (j = 0; j < k; j += lanes) {                                                                                   \
      const std::size_t n = k - j;                                                                                     \
      if (n >= lanes)                                                                                                  \
        store(ds + j, load(p + j) * (load(dp + j) - dot) * s);                                                         \
      else                                                                                                             \
        store(ds + j, load(p + j, n) * (load(dp + j, n) - dot) * s, n);                                                \
    }                                                                                                                  \
  }                                                                                                                    \
  }  // namespace ISA
MPT_SOFTMAX_KERNELS(MPT_TARGET_AVX512_BF16, avx512_bf16)
MPT_SOFTMAX_KERNELS(MPT_TARGET_AVX512, avx512)
MPT_SOFTMAX_KERNELS(MPT_TARGET_AVX2, avx2)
#undef MPT_SOFTMAX_KERNELS
#endif  // MPT_X86

template <class... T>
using compute_t = std::conditional_t<(std::is_same_v<std::remove_const_t<T>, double> || ...), double, float>;

}  // namespace detail

template <class In, class Out, class Mask = const float>
void softmax_forward(TensorView<In> scores, TensorView<Mask> additive_mask, double scale, TensorView<Out> probs) {
  using I = std::remove_const_t<In>;
  using C = detail::compute_t<In, Out>;
  static_assert(std::is_same_v<std::remove_const_t<Mask>, float>, "softmax_forward: the additive mask is fp32");
  check_shape("softmax_forward", "probs", probs.shape(), scores.shape());
  if (scores.rank() < 1) throw_error("softmax_forward: scores must have at least one axis");
  const std::size_t k = static_cast<std::size_t>(scores.dim(-1));
  if (k == 0) return;
  const std::size_t rows = scores.size() / k;
  const float* mask = detail::present(additive_mask) ? additive_mask.data() : nullptr;
  std::size_t rows_per_mask_row = rows;
  if (mask) {
    const std::size_t mask_rows = additive_mask.size() / k;
    if (additive_mask.dim(-1) != scores.dim(-1) || mask_rows == 0 || rows % mask_rows != 0) {
      throw_error("softmax_forward: additive_mask has shape ", additive_mask.shape(), " which does not fit scores ", scores.shape(),
                  ": give [batch, ", k, "] with batch dividing the ", rows, " rows");
    }
    rows_per_mask_row = rows / mask_rows;
  }
  const Isa isa = detail::simd_isa_for<I, Out>();
  const std::size_t chunk = detail::rows_per_task(k * (sizeof(I) + sizeof(Out)));
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t begin, std::size_t end) {
    C* z = detail::thread_scratch<C, detail::ScratchUse::row>(k + 16);
    const std::size_t ahead = detail::prefetch_rows_ahead(k * sizeof(I));
    for (std::size_t r = begin; r < end; ++r) {
      const I* x = scores.data() + r * k;
      const float* m = mask ? mask + (r / rows_per_mask_row) * k : nullptr;
      Out* y = probs.data() + r * k;
      detail::prefetch(x, ahead * k * sizeof(I), k * sizeof(I));
      if constexpr (std::is_same_v<C, float> && detail::simd_storage<I> && detail::simd_storage<Out>) {
#if MPT_X86
        if (isa >= Isa::avx512_bf16) {
          detail::avx512_bf16::softmax_row(x, m, float(scale), y, k, z);
          continue;
        }
        if (isa >= Isa::avx512) {
          detail::avx512::softmax_row(x, m, float(scale), y, k, z);
          continue;
        }
        if (isa == Isa::avx2) {
          detail::avx2::softmax_row(x, m, float(scale), y, k, z);
          continue;
        }
#endif
      }
      detail::softmax_row_scalar<C>(x, m, static_cast<C>(scale), y, k, z);
    }
  });
}

template <class P, class DP, class DS>
void softmax_backward(TensorView<P> probs, TensorView<DP> dprobs, double scale, TensorView<DS> dscores) {
  using PP = std::remove_const_t<P>;
  using DPP = std::remove_const_t<DP>;
  using C = detail::compute_t<P, DP, DS>;
  check_shape("softmax_backward", "dprobs", dprobs.shape(), probs.shape());
  check_shape("softmax_backward", "dscores", dscores.shape(), probs.shape());
  if (probs.rank() < 1) throw_error("softmax_backward: probs must have at least one axis");
  const std::size_t k = static_cast<std::size_t>(probs.dim(-1));
  if (k == 0) return;
  const std::size_t rows = probs.size() / k;
  const Isa isa = detail::simd_isa_for<PP, DPP, DS>();
  const std::size_t chunk = detail::rows_per_task(k * (sizeof(PP) + sizeof(DPP) + sizeof(DS)));
  detail::for_each_row_chunk(rows, chunk, [&](std::size_t begin, std::size_t end) {
    for (std::size_t r = begin; r < end; ++r) {
      const PP* p = probs.data() + r * k;
      const DPP* dp = dprobs.data() + r * k;
      DS* ds = dscores.data() + r * k;
      detail::prefetch(p, k * sizeof(PP), k * sizeof(PP));  // the next row
      detail::prefetch(dp, k * sizeof(DPP), k * sizeof(DPP));
      if constexpr (std::is_same_v<C, float> && detail::simd_storage<PP> && detail::simd_storage<DPP> && detail::simd_storage<DS>) {
#if MPT_X86
        if (isa >= Isa::avx512_bf16) {
          detail::avx512_bf16::softmax_backward_row(p, dp, float(scale), ds, k);
          continue;
        }
        if (isa >= Isa::avx512) {
          detail::avx512::softmax_backward_row(p, dp, float(scale), ds, k);
          continue;
        }
        if (isa == Isa::avx2) {
          detail::avx2::softmax_backward_row(p, dp, float(scale), ds, k);
          continue;
        }
#endif
      }
      detail::softmax_backward_row_scalar<C>(p, dp, static_cast<C>(scale), ds, k);
    }
  });
}

}  // namespace mpt::kernels

#pragma GCC diagnostic pop
