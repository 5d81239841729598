#pragma once
// SGD with momentum, dampening and Nesterov, torch.optim.SGD semantics
// (torch 1.13, single-tensor path), over flat buffers with a master-weight policy:
//
//   g   = grad * grad_multiplier
//   d   = fma(w, weight_decay, g)                  (L2 decay, coupled as in torch; 0 for exempt ranges)
//   buf = d on the first step, else fma(d, 1 - dampening, buf * momentum)
//   d   = nesterov ? fma(buf, momentum, d) : buf   (momentum > 0)
//   w   = fma(d, -lr, w)
//
// Shapes: params [n] (P::param_t), grads [n] (P::grad_t), n = table.size().
// Momentum buffer: fp32 (fp64 under precision::fp64), absent when momentum is 0.

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

struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  std::uint64_t seed = 0;  // stochastic rounding only
};

namespace detail {

template <class T>
struct SgdCoefficients {
  T grad_multiplier, weight_decay, momentum, one_minus_dampening, neg_lr;
  bool use_momentum, first_step, nesterov;
};

// Scalar reference. One element: returns the new weight, updates buf.
template <class T>
inline T sgd_element(T w, T g, T* buf, const SgdCoefficients<T>& c) noexcept {
  T d = g * c.grad_multiplier;
  if (c.weight_decay != T(0)) d = std::fma(w, c.weight_decay, d);
  if (c.use_momentum) {
    const T b = c.first_step ? d : std::fma(d, c.one_minus_dampening, *buf * c.momentum);
    *buf = b;
    d = c.nesterov ? std::fma(b, c.momentum, d) : b;
  }
  return std::fma(d, c.neg_lr, w);
}

template <class Store, class T>
void sgd_run_scalar(Store& weights, T* buf, const T* grads, std::size_t begin, std::size_t end, const SgdCoefficients<T>& c,
                    std::uint32_t key) noexcept {
  T unused = 0;
  for (std::size_t i = begin; i < end; ++i) {
    weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
  }
}

#if MPT_X86
// The scalar reference compiled for AVX2 + FMA (fp64; same bits, no fma library calls).
template <class Store, class T>
MPT_TARGET_AVX2 void sgd_run_avx2_reference(Store& weights, T* buf, const T* grads, std::size_t begin, std::size_t end, const SgdCoefficients<T>& c,
                                            std::uint32_t key) noexcept {
  T unused = 0;
  for (std::size_t i = begin; i < end; ++i) {
    weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
  }
}

// 8 lanes per block, the same operations as sgd_element; the tail runs the reference.
template <class Store>
MPT_TARGET_AVX2 void sgd_run_avx2(Store& weights, float* buf, const float* grads, std::size_t begin, std::size_t end, const SgdCoefficients<float>& c,
                                  std::uint32_t key) noexcept {
  const __m256 multiplier = _mm256_set1_ps(c.grad_multiplier), weight_decay = _mm256_set1_ps(c.weight_decay);
  const __m256 momentum = _mm256_set1_ps(c.momentum), one_minus_dampening = _mm256_set1_ps(c.one_minus_dampening);
  const __m256 neg_lr = _mm256_set1_ps(c.neg_lr);
  std::size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    if (((i - begin) & 15) == 0) {
      if (c.use_momentum)
        prefetch_ahead(i, grads, buf);
      else
        prefetch_ahead(i, grads);
      weights.prefetch(i + prefetch_elements);
    }
    const __m256 w = weights.load8(i);
    __m256 d = _mm256_mul_ps(_mm256_loadu_ps(grads + i), multiplier);
    if (c.weight_decay != 0.0f) d = _mm256_fmadd_ps(w, weight_decay, d);
    if (c.use_momentum) {
      const __m256 b = c.first_step ? d : _mm256_fmadd_ps(d, one_minus_dampening, _mm256_mul_ps(_mm256_loadu_ps(buf + i), momentum));
      _mm256_storeu_ps(buf + i, b);
      d = c.nesterov ? _mm256_fmadd_ps(b, momentum, d) : b;
    }
    weights.store8(i, _mm256_fmadd_ps(d, neg_lr, w), key);
  }
  float unused = 0;
  for (; i < end; ++i) weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
}

template <class Store>
MPT_TARGET_AVX512 void sgd_run_avx512(Store& weights, float* buf, const float* grads, std::size_t begin, std::size_t end,
                                      const SgdCoefficients<float>& c, std::uint32_t key) noexcept {
  const __m512 multiplier = _mm512_set1_ps(c.grad_multiplier), weight_decay = _mm512_set1_ps(c.weight_decay);
  const __m512 momentum = _mm512_set1_ps(c.momentum), one_minus_dampening = _mm512_set1_ps(c.one_minus_dampening);
  const __m512 neg_lr = _mm512_set1_ps(c.neg_lr);
  for (std::size_t i = begin; i < end; i += 16) {
    const __mmask16 k = tail_mask(end - i);
    if (c.use_momentum)
      prefetch_ahead(i, grads, buf);
    else
      prefetch_ahead(i, grads);
    weights.prefetch(i + prefetch_elements);
    const __m512 w = weights.load16(i, k);
    __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grads + i), multiplier);
    if (c.weight_decay != 0.0f) d = _mm512_fmadd_ps(w, weight_decay, d);
    if (c.use_momentum) {
      const __m512 b = c.first_step ? d : _mm512_fmadd_ps(d, one_minus_dampening, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, buf + i), momentum));
      _mm512_mask_storeu_ps(buf + i, k, b);
      d = c.nesterov ? _mm512_fmadd_ps(b, momentum, d) : b;
    }
    weights.store16(i, k, _mm512_fmadd_ps(d, neg_lr, w), key);
  }
}
#endif

}  // namespace detail

namespace rules {

// torch.optim.SGD's update (see the top of this header).
struct Sgd {
  using options = SgdOptions;
  static constexpr const char* name = "SGD";
  template <class T>
  using coefficients = detail::SgdCoefficients<T>;

  // The momentum buffer exists only with momentum.
  static std::vector<const char*> state_names(const options& o) {
    return o.momentum != 0.0 ? std::vector<const char*>{"momentum_buffer"} : std::vector<const char*>{};
  }
  static void validate(const options& o) {
    if (!(o.lr >= 0.0 && o.momentum >= 0.0 && o.weight_decay >= 0.0)) {
      throw_error("Sgd: invalid options (lr ", o.lr, ", momentum ", o.momentum, ", weight_decay ", o.weight_decay, "): all must be non-negative");
    }
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
      throw_error("Sgd: Nesterov momentum requires momentum > 0 and dampening 0 (got momentum ", o.momentum, ", dampening ", o.dampening, ")");
    }
  }
  template <class T>
  static coefficients<T> prepare(const options& o, std::int64_t step, double lr, float grad_multiplier, bool decay) {
    coefficients<T> c{};
    c.grad_multiplier = static_cast<T>(grad_multiplier);
    c.weight_decay = decay ? static_cast<T>(o.weight_decay) : T(0);
    c.momentum = static_cast<T>(o.momentum);
    c.one_minus_dampening = static_cast<T>(1.0 - o.dampening);
    c.neg_lr = static_cast<T>(-lr);
    c.use_momentum = o.momentum != 0.0;
    c.first_step = step == 1;
    c.nesterov = o.nesterov;
    return c;
  }
  template <class Store, class T>
  static void run_scalar(Store& w, T* const* s, const T* g, std::size_t b, std::size_t e, const coefficients<T>& c, std::uint32_t key) noexcept {
    detail::sgd_run_scalar(w, s[0], g, b, e, c, key);
  }
#if MPT_X86
  template <class Store, class T>
  static void run_avx2_reference(Store& w, T* const* s, const T* g, std::size_t b, std::size_t e, const coefficients<T>& c,
                                 std::uint32_t key) noexcept {
    detail::sgd_run_avx2_reference(w, s[0], g, b, e, c, key);
  }
  template <class Store>
  static void run_avx2(Store& w, float* const* s, const float* g, std::size_t b, std::size_t e, const coefficients<float>& c,
                       std::uint32_t key) noexcept {
    detail::sgd_run_avx2(w, s[0], g, b, e, c, key);
  }
  template <class Store>
  static void run_avx512(Store& w, float* const* s, const float* g, std::size_t b, std::size_t e, const coefficients<float>& c,
                         std::uint32_t key) noexcept {
    detail::sgd_run_avx512(w, s[0], g, b, e, c, key);
  }
#endif
  static nlohmann::json scalars(const options& o) {
    return {{"lr", o.lr}, {"momentum", o.momentum}, {"dampening", o.dampening}, {"weight_decay", o.weight_decay}, {"nesterov", o.nesterov}};
  }
  // The momentum decides which buffers exist: it cannot change on load.
  static void load_scalars(options& o, const nlohmann::json& j) {
    if (j.at("momentum").get<double>() != o.momentum) {
      throw_error("Sgd::load_state_dict: the saved momentum ", j.at("momentum").get<double>(), " differs from ", o.momentum,
                  "; construct the optimizer with the saved options");
    }
    o.lr = j.at("lr").get<double>();
    o.dampening = j.at("dampening").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
    o.nesterov = j.at("nesterov").get<bool>();
  }
};

}  // namespace rules

template <PrecisionPolicy P, class Weights = default_weights_t<P>>
using Sgd = FlatOptimizer<P, rules::Sgd, Weights>;

}  // namespace mpt::optim

#pragma GCC diagnostic pop
