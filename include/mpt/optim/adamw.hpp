#pragma once
// AdamW with torch.optim.AdamW semantics (torch 1.13, the single-tensor path),
// over flat buffers, with a master-weight policy (optim/weights.hpp):
//
//   g  = grad * grad_multiplier                   (loss-scale unscaling, clipping)
//   w  = w * (1 - lr * weight_decay)              (decoupled; 0 for exempt ranges)
//   m  = fma(g, 1 - beta1, m * beta1)
//   v  = fma((1 - beta2) * g, g, v * beta2)
//   w  = w + (-(lr / (1 - beta1^t)) * m) / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// in that operation order (fma where torch's CPU kernels fuse), scalars in
// double then rounded to float, as PyTorch does: fp32 trajectories agree with
// torch to about an ulp (tests: < 1e-6 relative over 10 steps). The moments
// are fp32 (fp64 under precision::fp64) for every weight policy.
//
// The update rule of FlatOptimizer (optim/flat_optimizer.hpp: runs, dispatch,
// state); the AVX-512 (16 lanes, masked tails), AVX2 (8 lanes) and scalar
// reference loops give the same bits, for any thread count.
//
// Shapes: params [n] (P::param_t), grads [n] (P::grad_t), n = table.size().

#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>
#include <mpt/optim/detail/update_loop.hpp>
#include <mpt/optim/flat_optimizer.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>
#include <mpt/policy/precision.hpp>

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace mpt::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // transformers' Trainer default; BERT fine-tuning often uses 0.01
  std::uint64_t seed = 0;     // stochastic rounding only
};

namespace detail {

template <class T>
struct AdamWCoefficients {
  T decay_factor, grad_multiplier, beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, neg_step_size;
};

// Scalar reference. One element: returns the new weight, updates m and v.
template <class T>
inline T adamw_element(T w, T g, T& m, T& v, const AdamWCoefficients<T>& c) noexcept {
  w = keep_rounded(w * c.decay_factor);
  g = g * c.grad_multiplier;
  m = std::fma(g, c.one_minus_beta1, m * c.beta1);
  v = std::fma(c.one_minus_beta2 * g, g, v * c.beta2);
  const T denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
  return w + (c.neg_step_size * m) / denom;
}

// weights, m, v, grads: elements [begin, end).
template <class Store, class T>
void adamw_run_scalar(Store& weights, T* m, T* v, const T* grads, std::size_t begin, std::size_t end, const AdamWCoefficients<T>& c,
                      std::uint32_t key) noexcept {
  for (std::size_t i = begin; i < end; ++i) weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

#if MPT_X86
// The scalar reference compiled for AVX2 + FMA (fp64): std::fma becomes one
// instruction instead of a library call, and the bits stay the reference's.
template <class Store, class T>
MPT_TARGET_AVX2 void adamw_run_avx2_reference(Store& weights, T* m, T* v, const T* grads, std::size_t begin, std::size_t end,
                                              const AdamWCoefficients<T>& c, std::uint32_t key) noexcept {
  for (std::size_t i = begin; i < end; ++i) weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

// 8 lanes per block, the same operations as adamw_element; the tail runs the reference.
template <class Store>
MPT_TARGET_AVX2 void adamw_run_avx2(Store& weights, float* m, float* v, const float* grads, std::size_t begin, std::size_t end,
                                    const AdamWCoefficients<float>& c, std::uint32_t key) noexcept {
  const __m256 decay = _mm256_set1_ps(c.decay_factor), multiplier = _mm256_set1_ps(c.grad_multiplier);
  const __m256 beta1 = _mm256_set1_ps(c.beta1), one_minus_beta1 = _mm256_set1_ps(c.one_minus_beta1);
  const __m256 beta2 = _mm256_set1_ps(c.beta2), one_minus_beta2 = _mm256_set1_ps(c.one_minus_beta2);
  const __m256 bc2_sqrt = _mm256_set1_ps(c.bias_correction2_sqrt), eps = _mm256_set1_ps(c.eps);
  const __m256 neg_step_size = _mm256_set1_ps(c.neg_step_size);
  std::size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    if (((i - begin) & 15) == 0) {
      prefetch_ahead(i, grads, m, v);
      weights.prefetch(i + prefetch_elements);
    }
    __m256 w = _mm256_mul_ps(weights.load8(i), decay);
    __asm__("" : "+x"(w));  // keep the product rounded: no fma with the add below (see keep_rounded)
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grads + i), multiplier);
    const __m256 m1 = _mm256_fmadd_ps(g, one_minus_beta1, _mm256_mul_ps(_mm256_loadu_ps(m + i), beta1));
    const __m256 v1 = _mm256_fmadd_ps(_mm256_mul_ps(one_minus_beta2, g), g, _mm256_mul_ps(_mm256_loadu_ps(v + i), beta2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v1), bc2_sqrt), eps);
    const __m256 w1 = _mm256_add_ps(w, _mm256_div_ps(_mm256_mul_ps(neg_step_size, m1), denom));
    _mm256_storeu_ps(m + i, m1);
    _mm256_storeu_ps(v + i, v1);
    weights.store8(i, w1, key);
  }
  for (; i < end; ++i) weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

template <class Store>
MPT_TARGET_AVX512 void adamw_run_avx512(Store& weights, float* m, float* v, const float* grads, std::size_t begin, std::size_t end,
                                        const AdamWCoefficients<float>& c, std::uint32_t key) noexcept {
  const __m512 decay = _mm512_set1_ps(c.decay_factor), multiplier = _mm512_set1_ps(c.grad_multiplier);
  const __m512 beta1 = _mm512_set1_ps(c.beta1), one_minus_beta1 = _mm512_set1_ps(c.one_minus_beta1);
  const __m512 beta2 = _mm512_set1_ps(c.beta2), one_minus_beta2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 bc2_sqrt = _mm512_set1_ps(c.bias_correction2_sqrt), eps = _mm512_set1_ps(c.eps);
  const __m512 neg_step_size = _mm512_set1_ps(c.neg_step_size);
  for (std::size_t i = begin; i < end; i += 16) {
    const __mmask16 k = tail_mask(end - i);
    prefetch_ahead(i, grads, m, v);
    weights.prefetch(i + prefetch_elements);
    // mul_round: an intrinsic GCC cannot contract with the add below (see keep_rounded).
    const __m512 w = _mm512_mul_round_ps(weights.load16(i, k), decay, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grads + i), multiplier);
    const __m512 m1 = _mm512_fmadd_ps(g, one_minus_beta1, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, m + i), beta1));
    const __m512 v1 = _mm512_fmadd_ps(_mm512_mul_ps(one_minus_beta2, g), g, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), beta2));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v1), bc2_sqrt), eps);
    const __m512 w1 = _mm512_add_ps(w, _mm512_div_ps(_mm512_mul_ps(neg_step_size, m1), denom));
    _mm512_mask_storeu_ps(m + i, k, m1);
    _mm512_mask_storeu_ps(v + i, k, v1);
    weights.store16(i, k, w1, key);
  }
}
#endif

}  // namespace detail

namespace rules {

// torch.optim.AdamW's update (see the top of this header).
struct AdamW {
  using options = AdamWOptions;
  static constexpr const char* name = "AdamW";
  template <class T>
  using coefficients = detail::AdamWCoefficients<T>;

  static std::vector<const char*> state_names(const options&) { return {"exp_avg", "exp_avg_sq"}; }
  static void validate(const options& o) {
    if (!(o.beta1 >= 0.0 && o.beta1 < 1.0 && o.beta2 >= 0.0 && o.beta2 < 1.0 && o.eps >= 0.0 && o.weight_decay >= 0.0 && o.lr >= 0.0)) {
      throw_error("AdamW: invalid options (lr ", o.lr, ", betas (", o.beta1, ", ", o.beta2, "), eps ", o.eps, ", weight_decay ", o.weight_decay,
                  "): need 0 <= beta < 1 and non-negative lr, eps, weight_decay");
    }
  }
  // Scalars in double, then rounded to T, as PyTorch computes them.
  template <class T>
  static coefficients<T> prepare(const options& o, std::int64_t step, double lr, float grad_multiplier, bool decay) {
    const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
    coefficients<T> c{};
    c.decay_factor = decay ? static_cast<T>(1.0 - lr * o.weight_decay) : T(1);
    c.grad_multiplier = static_cast<T>(grad_multiplier);
    c.beta1 = static_cast<T>(o.beta1);
    c.one_minus_beta1 = static_cast<T>(1.0 - o.beta1);
    c.beta2 = static_cast<T>(o.beta2);
    c.one_minus_beta2 = static_cast<T>(1.0 - o.beta2);
    c.bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
    c.eps = static_cast<T>(o.eps);
    c.neg_step_size = static_cast<T>(-(lr / bias_correction1));
    return c;
  }
  template <class Store, class T>
  static void run_scalar(Store& w, T* const* s, const T* g, std::size_t b, std::size_t e, const coefficients<T>& c, std::uint32_t key) noexcept {
    detail::adamw_run_scalar(w, s[0], s[1], g, b, e, c, key);
  }
#if MPT_X86
  template <class Store, class T>
  static void run_avx2_reference(Store& w, T* const* s, const T* g, std::size_t b, std::size_t e, const coefficients<T>& c,
                                 std::uint32_t key) noexcept {
    detail::adamw_run_avx2_reference(w, s[0], s[1], g, b, e, c, key);
  }
  template <class Store>
  static void run_avx2(Store& w, float* const* s, const float* g, std::size_t b, std::size_t e, const coefficients<float>& c,
                       std::uint32_t key) noexcept {
    detail::adamw_run_avx2(w, s[0], s[1], g, b, e, c, key);
  }
  template <class Store>
  static void run_avx512(Store& w, float* const* s, const float* g, std::size_t b, std::size_t e, const coefficients<float>& c,
                         std::uint32_t key) noexcept {
    detail::adamw_run_avx512(w, s[0], s[1], g, b, e, c, key);
  }
#endif
  static nlohmann::json scalars(const options& o) {
    return {{"lr", o.lr}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"weight_decay", o.weight_decay}};
  }
  static void load_scalars(options& o, const nlohmann::json& j) {
    o.lr = j.at("lr").get<double>();
    o.beta1 = j.at("beta1").get<double>();
    o.beta2 = j.at("beta2").get<double>();
    o.eps = j.at("eps").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
  }
};

}  // namespace rules

template <PrecisionPolicy P, class Weights = default_weights_t<P>>
using AdamW = FlatOptimizer<P, rules::AdamW, Weights>;

}  // namespace mpt::optim

#pragma GCC diagnostic pop
