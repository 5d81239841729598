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
// One fused pass, one parallel task per run of <= 32768 elements; the AVX-512
// (16 lanes, masked tails), AVX2 (8 lanes) and scalar reference paths give
// the same bits, for any thread count.
//
// Shapes: params [n] (P::param_t), grads [n] (P::grad_t), n = table.size().

#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>
#include <mpt/optim/detail/update_loop.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>
#include <mpt/policy/precision.hpp>

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

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
  T decay_factor, grad_multiplier, beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps,
      neg_step_size;
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
void adamw_run_scalar(Store& weights, T* m, T* v, const T* grads, std::size_t begin, std::size_t end,
                      const AdamWCoefficients<T>& c, std::uint32_t key) noexcept {
  for (std::size_t i = begin; i < end; ++i)
    weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

#if MPT_X86
// The scalar reference compiled for AVX2 + FMA (fp64): std::fma becomes one
// instruction instead of a library call, and the bits stay the reference's.
template <class Store, class T>
MPT_TARGET_AVX2 void adamw_run_avx2_reference(Store& weights, T* m, T* v, const T* grads, std::size_t begin,
                                              std::size_t end, const AdamWCoefficients<T>& c,
                                              std::uint32_t key) noexcept {
  for (std::size_t i = begin; i < end; ++i)
    weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

// 8 lanes per block, the same operations as adamw_element; the tail runs the reference.
template <class Store>
MPT_TARGET_AVX2 void adamw_run_avx2(Store& weights, float* m, float* v, const float* grads, std::size_t begin,
                                    std::size_t end, const AdamWCoefficients<float>& c, std::uint32_t key) noexcept {
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
    const __m256 v1 =
        _mm256_fmadd_ps(_mm256_mul_ps(one_minus_beta2, g), g, _mm256_mul_ps(_mm256_loadu_ps(v + i), beta2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v1), bc2_sqrt), eps);
    const __m256 w1 = _mm256_add_ps(w, _mm256_div_ps(_mm256_mul_ps(neg_step_size, m1), denom));
    _mm256_storeu_ps(m + i, m1);
    _mm256_storeu_ps(v + i, v1);
    weights.store8(i, w1, key);
  }
  for (; i < end; ++i) weights.store(i, adamw_element(weights.load(i), grads[i], m[i], v[i], c), key);
}

template <class Store>
MPT_TARGET_AVX512 void adamw_run_avx512(Store& weights, float* m, float* v, const float* grads, std::size_t begin,
                                        std::size_t end, const AdamWCoefficients<float>& c,
                                        std::uint32_t key) noexcept {
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
    const __m512 v1 =
        _mm512_fmadd_ps(_mm512_mul_ps(one_minus_beta2, g), g, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i), beta2));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v1), bc2_sqrt), eps);
    const __m512 w1 = _mm512_add_ps(w, _mm512_div_ps(_mm512_mul_ps(neg_step_size, m1), denom));
    _mm512_mask_storeu_ps(m + i, k, m1);
    _mm512_mask_storeu_ps(v + i, k, v1);
    weights.store16(i, k, w1, key);
  }
}
#endif

}  // namespace detail

template <PrecisionPolicy P, class Weights = default_weights_t<P>>
class AdamW {
 public:
  using policy = P;
  using weights_policy = Weights;
  using options_type = AdamWOptions;
  using param_t = typename P::param_t;
  using grad_t = typename P::grad_t;
  using weight_store = WeightStore<P, Weights>;
  using value_t = typename weight_store::value_t;
  static_assert(
      std::is_same_v<value_t, grad_t>,
      "AdamW: gradients must have the type the master weights are updated in (fp32, or fp64 under precision::fp64)");

  AdamW(std::span<param_t> params, ParameterTable table, AdamWOptions options = {})
      : AdamW(weight_store(params), params.size(), std::move(table), options) {}

  // With an fp32 master the model owns (nn::Parameters: matmul_compute(), matmul_master()).
  AdamW(std::span<param_t> params, std::span<value_t> master, ParameterTable table,
        AdamWOptions options = {}) requires std::is_same_v<Weights, weights::fp32_master>
      : AdamW(weight_store(params, master), params.size(), std::move(table), options) {}

 private:
  AdamW(weight_store&& store, std::size_t n, ParameterTable table, AdamWOptions options)
      : table_(std::move(table)), options_(options), weights_(std::move(store)), exp_avg_(n), exp_avg_sq_(n) {
    table_.check_buffer("AdamW", "the parameter buffer", n);
    if (!(options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 && options.beta2 < 1.0 &&
          options.eps >= 0.0 && options.weight_decay >= 0.0 && options.lr >= 0.0)) {
      throw_error("AdamW: invalid options (lr ", options.lr, ", betas (", options.beta1, ", ", options.beta2, "), eps ",
                  options.eps, ", weight_decay ", options.weight_decay,
                  "): need 0 <= beta < 1 and non-negative lr, eps, weight_decay");
    }
    runs_ = detail::decay_runs(table_, detail::update_run_elements);
  }

 public:
  // One update with learning rate `lr`; gradients are multiplied by
  // grad_multiplier first (1/loss scale times the clipping coefficient).
  void step(std::span<const grad_t> grads, double lr, float grad_multiplier = 1.0f) {
    table_.check_buffer("AdamW::step", "the gradient buffer", grads.size());
    ++steps_;
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
    detail::AdamWCoefficients<value_t> c{};
    c.grad_multiplier = static_cast<value_t>(grad_multiplier);
    c.beta1 = static_cast<value_t>(options_.beta1);
    c.one_minus_beta1 = static_cast<value_t>(1.0 - options_.beta1);
    c.beta2 = static_cast<value_t>(options_.beta2);
    c.one_minus_beta2 = static_cast<value_t>(1.0 - options_.beta2);
    c.bias_correction2_sqrt = static_cast<value_t>(std::sqrt(bias_correction2));
    c.eps = static_cast<value_t>(options_.eps);
    c.neg_step_size = static_cast<value_t>(-(lr / bias_correction1));
    const value_t decay_factor = static_cast<value_t>(1.0 - lr * options_.weight_decay);
    const std::uint32_t key = detail::rounding_key(options_.seed, steps_);
    const Isa isa = active_isa();
    detail::for_each_run(runs_, [&](const detail::DecayRun& run) {
      detail::AdamWCoefficients<value_t> rc = c;
      rc.decay_factor = run.decay ? decay_factor : value_t(1);
#if MPT_X86
      if constexpr (weight_store::vectorized) {
        if (isa >= Isa::avx512) {
          detail::adamw_run_avx512(weights_, exp_avg_.data(), exp_avg_sq_.data(), grads.data(), run.begin, run.end, rc,
                                   key);
          return;
        }
      }
      if (isa >= Isa::avx2) {
        if constexpr (weight_store::vectorized) {
          detail::adamw_run_avx2(weights_, exp_avg_.data(), exp_avg_sq_.data(), grads.data(), run.begin, run.end, rc,
                                 key);
        } else {
          detail::adamw_run_avx2_reference(weights_, exp_avg_.data(), exp_avg_sq_.data(), grads.data(), run.begin,
                                           run.end, rc, key);
        }
        return;
      }
#endif
      detail::adamw_run_scalar(weights_, exp_avg_.data(), exp_avg_sq_.data(), grads.data(), run.begin, run.end, rc,
                               key);
    });
    (void)isa;
  }
  void step(std::span<const grad_t> grads) { step(grads, options_.lr); }

  std::int64_t steps() const noexcept { return steps_; }
  const AdamWOptions& options() const noexcept { return options_; }
  const ParameterTable& table() const noexcept { return table_; }
  const weight_store& weights() const noexcept { return weights_; }
  // Starts the master from full-precision weights (e.g. the fp32 checkpoint
  // the model was loaded from) and writes the compute copy from it.
  void set_master_weights(std::span<const value_t> in) {
    table_.check_buffer("AdamW::set_master_weights", "the input buffer", in.size());
    for (std::size_t i = 0; i < in.size(); ++i) weights_.assign(i, in[i]);
  }
  // The weights the optimizer updates, widened to value_t: what a checkpoint
  // of the model saves (transformers saves fp32 weights after bf16 autocast training).
  // Master values of elements [first, first + out.size()) (what a model folder saves).
  void read_master(std::size_t first, std::span<value_t> out) const {
    check_range("AdamW::read_master", first, out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = weights_.load(first + i);
  }
  // Sets master values of elements [first, first + in.size()), compute copy included.
  void write_master(std::size_t first, std::span<const value_t> in) {
    check_range("AdamW::write_master", first, in.size());
    for (std::size_t i = 0; i < in.size(); ++i) weights_.assign(first + i, in[i]);
  }
  void copy_master_weights(std::span<value_t> out) const {
    table_.check_buffer("AdamW::copy_master_weights", "the output buffer", out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = weights_.load(i);
  }
  std::span<const value_t> exp_avg() const noexcept { return {exp_avg_.data(), exp_avg_.size()}; }
  std::span<const value_t> exp_avg_sq() const noexcept { return {exp_avg_sq_.data(), exp_avg_sq_.size()}; }

  // Optimizer state bytes per parameter, the compute copy included.
  static constexpr double bytes_per_parameter() noexcept {
    return weight_store::bytes_per_parameter() + 2 * sizeof(value_t);
  }

  StateDict state_dict() {
    StateDict s;
    s.add("exp_avg", exp_avg_.data(), exp_avg_.size());
    s.add("exp_avg_sq", exp_avg_sq_.data(), exp_avg_sq_.size());
    weights_.append_state(s);
    s.scalars = {{"optimizer", "AdamW"},    {"weights", Weights::name},
                 {"step", steps_},          {"lr", options_.lr},
                 {"beta1", options_.beta1}, {"beta2", options_.beta2},
                 {"eps", options_.eps},     {"weight_decay", options_.weight_decay},
                 {"seed", options_.seed}};
    return s;
  }
  void load_state_dict(const StateDict& saved) {
    if (saved.scalars.value("optimizer", "") != "AdamW" || saved.scalars.value("weights", "") != Weights::name) {
      throw_error("AdamW::load_state_dict: the saved state is from ", saved.scalars.value("optimizer", "?"),
                  " with weights '", saved.scalars.value("weights", "?"), "', not AdamW with weights '", Weights::name,
                  "'");
    }
    state_dict().copy_tensors_from(saved);
    steps_ = saved.scalars.at("step").get<std::int64_t>();
    options_.lr = saved.scalars.at("lr").get<double>();
    options_.beta1 = saved.scalars.at("beta1").get<double>();
    options_.beta2 = saved.scalars.at("beta2").get<double>();
    options_.eps = saved.scalars.at("eps").get<double>();
    options_.weight_decay = saved.scalars.at("weight_decay").get<double>();
    options_.seed = saved.scalars.at("seed").get<std::uint64_t>();
  }

 private:
  void check_range(const char* op, std::size_t first, std::size_t count) const {
    if (first > weights_.size() || count > weights_.size() - first) {
      throw_error(op, ": elements [", first, ", ", first + count, ") are outside the ", weights_.size(), " parameters");
    }
  }

  ParameterTable table_;
  AdamWOptions options_;
  weight_store weights_;
  AlignedBuffer<value_t> exp_avg_;
  AlignedBuffer<value_t> exp_avg_sq_;
  std::vector<detail::DecayRun> runs_;
  std::int64_t steps_ = 0;
};

// The common configurations by name.
template <PrecisionPolicy P>
using SplitMasterAdamW = AdamW<P, weights::split_master>;
using PureBf16AdamW = AdamW<precision::bf16_pure, weights::stochastic_rounding>;

}  // namespace mpt::optim

#pragma GCC diagnostic pop
