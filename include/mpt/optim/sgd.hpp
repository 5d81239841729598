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
void sgd_run_scalar(Store& weights, T* buf, const T* grads, std::size_t begin, std::size_t end,
                    const SgdCoefficients<T>& c, std::uint32_t key) noexcept {
  T unused = 0;
  for (std::size_t i = begin; i < end; ++i) {
    weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
  }
}

#if MPT_X86
// The scalar reference compiled for AVX2 + FMA (fp64; same bits, no fma library calls).
template <class Store, class T>
MPT_TARGET_AVX2 void sgd_run_avx2_reference(Store& weights, T* buf, const T* grads, std::size_t begin, std::size_t end,
                                            const SgdCoefficients<T>& c, std::uint32_t key) noexcept {
  T unused = 0;
  for (std::size_t i = begin; i < end; ++i) {
    weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
  }
}

// 8 lanes per block, the same operations as sgd_element; the tail runs the reference.
template <class Store>
MPT_TARGET_AVX2 void sgd_run_avx2(Store& weights, float* buf, const float* grads, std::size_t begin, std::size_t end,
                                  const SgdCoefficients<float>& c, std::uint32_t key) noexcept {
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
      const __m256 b =
          c.first_step ? d : _mm256_fmadd_ps(d, one_minus_dampening, _mm256_mul_ps(_mm256_loadu_ps(buf + i), momentum));
      _mm256_storeu_ps(buf + i, b);
      d = c.nesterov ? _mm256_fmadd_ps(b, momentum, d) : b;
    }
    weights.store8(i, _mm256_fmadd_ps(d, neg_lr, w), key);
  }
  float unused = 0;
  for (; i < end; ++i)
    weights.store(i, sgd_element(weights.load(i), grads[i], c.use_momentum ? buf + i : &unused, c), key);
}

template <class Store>
MPT_TARGET_AVX512 void sgd_run_avx512(Store& weights, float* buf, const float* grads, std::size_t begin,
                                      std::size_t end, const SgdCoefficients<float>& c, std::uint32_t key) noexcept {
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
      const __m512 b = c.first_step ? d
                                    : _mm512_fmadd_ps(d, one_minus_dampening,
                                                      _mm512_mul_ps(_mm512_maskz_loadu_ps(k, buf + i), momentum));
      _mm512_mask_storeu_ps(buf + i, k, b);
      d = c.nesterov ? _mm512_fmadd_ps(b, momentum, d) : b;
    }
    weights.store16(i, k, _mm512_fmadd_ps(d, neg_lr, w), key);
  }
}
#endif

}  // namespace detail

template <PrecisionPolicy P, class Weights = default_weights_t<P>>
class Sgd {
 public:
  using policy = P;
  using weights_policy = Weights;
  using options_type = SgdOptions;
  using param_t = typename P::param_t;
  using grad_t = typename P::grad_t;
  using weight_store = WeightStore<P, Weights>;
  using value_t = typename weight_store::value_t;
  static_assert(
      std::is_same_v<value_t, grad_t>,
      "Sgd: gradients must have the type the master weights are updated in (fp32, or fp64 under precision::fp64)");

  Sgd(std::span<param_t> params, ParameterTable table, SgdOptions options = {})
      : Sgd(weight_store(params), params.size(), std::move(table), options) {}

  // With an fp32 master the model owns (nn::Parameters: matmul_compute(), matmul_master()).
  Sgd(std::span<param_t> params, std::span<value_t> master, ParameterTable table,
      SgdOptions options = {}) requires std::is_same_v<Weights, weights::fp32_master>
      : Sgd(weight_store(params, master), params.size(), std::move(table), options) {}

 private:
  Sgd(weight_store&& store, std::size_t n, ParameterTable table, SgdOptions options)
      : table_(std::move(table)),
        options_(options),
        weights_(std::move(store)),
        momentum_(options.momentum != 0.0 ? n : 0) {
    table_.check_buffer("Sgd", "the parameter buffer", n);
    if (!(options.lr >= 0.0 && options.momentum >= 0.0 && options.weight_decay >= 0.0)) {
      throw_error("Sgd: invalid options (lr ", options.lr, ", momentum ", options.momentum, ", weight_decay ",
                  options.weight_decay, "): all must be non-negative");
    }
    if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
      throw_error("Sgd: Nesterov momentum requires momentum > 0 and dampening 0 (got momentum ", options.momentum,
                  ", dampening ", options.dampening, ")");
    }
    runs_ = detail::decay_runs(table_, detail::update_run_elements);
  }

 public:
  void step(std::span<const grad_t> grads, double lr, float grad_multiplier = 1.0f) {
    table_.check_buffer("Sgd::step", "the gradient buffer", grads.size());
    ++steps_;
    detail::SgdCoefficients<value_t> c{};
    c.grad_multiplier = static_cast<value_t>(grad_multiplier);
    c.momentum = static_cast<value_t>(options_.momentum);
    c.one_minus_dampening = static_cast<value_t>(1.0 - options_.dampening);
    c.neg_lr = static_cast<value_t>(-lr);
    c.use_momentum = options_.momentum != 0.0;
    c.first_step = steps_ == 1;
    c.nesterov = options_.nesterov;
    const std::uint32_t key = detail::rounding_key(options_.seed, steps_);
    const Isa isa = active_isa();
    detail::for_each_run(runs_, [&](const detail::DecayRun& run) {
      detail::SgdCoefficients<value_t> rc = c;
      rc.weight_decay = run.decay ? static_cast<value_t>(options_.weight_decay) : value_t(0);
#if MPT_X86
      if constexpr (weight_store::vectorized) {
        if (isa >= Isa::avx512) {
          detail::sgd_run_avx512(weights_, momentum_.data(), grads.data(), run.begin, run.end, rc, key);
          return;
        }
      }
      if (isa >= Isa::avx2) {
        if constexpr (weight_store::vectorized) {
          detail::sgd_run_avx2(weights_, momentum_.data(), grads.data(), run.begin, run.end, rc, key);
        } else {
          detail::sgd_run_avx2_reference(weights_, momentum_.data(), grads.data(), run.begin, run.end, rc, key);
        }
        return;
      }
#endif
      detail::sgd_run_scalar(weights_, momentum_.data(), grads.data(), run.begin, run.end, rc, key);
    });
    (void)isa;
  }
  void step(std::span<const grad_t> grads) { step(grads, options_.lr); }

  std::int64_t steps() const noexcept { return steps_; }
  const SgdOptions& options() const noexcept { return options_; }
  const weight_store& weights() const noexcept { return weights_; }
  // Starts the master from full-precision weights (e.g. the fp32 checkpoint
  // the model was loaded from) and writes the compute copy from it.
  void set_master_weights(std::span<const value_t> in) {
    table_.check_buffer("Sgd::set_master_weights", "the input buffer", in.size());
    for (std::size_t i = 0; i < in.size(); ++i) weights_.assign(i, in[i]);
  }
  // The weights the optimizer updates, widened to value_t: what a checkpoint
  // of the model saves (transformers saves fp32 weights after bf16 autocast training).
  // Master values of elements [first, first + out.size()) (what a model folder saves).
  void read_master(std::size_t first, std::span<value_t> out) const {
    check_range("Sgd::read_master", first, out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = weights_.load(first + i);
  }
  // Sets master values of elements [first, first + in.size()), compute copy included.
  void write_master(std::size_t first, std::span<const value_t> in) {
    check_range("Sgd::write_master", first, in.size());
    for (std::size_t i = 0; i < in.size(); ++i) weights_.assign(first + i, in[i]);
  }
  void copy_master_weights(std::span<value_t> out) const {
    table_.check_buffer("Sgd::copy_master_weights", "the output buffer", out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = weights_.load(i);
  }
  double bytes_per_parameter() const noexcept {
    return weight_store::bytes_per_parameter() + (options_.momentum != 0.0 ? sizeof(value_t) : 0);
  }

  StateDict state_dict() {
    StateDict s;
    if (momentum_.size() != 0) s.add("momentum_buffer", momentum_.data(), momentum_.size());
    weights_.append_state(s);
    s.scalars = {{"optimizer", "SGD"},
                 {"weights", Weights::name},
                 {"step", steps_},
                 {"lr", options_.lr},
                 {"momentum", options_.momentum},
                 {"dampening", options_.dampening},
                 {"weight_decay", options_.weight_decay},
                 {"nesterov", options_.nesterov},
                 {"seed", options_.seed}};
    return s;
  }
  void load_state_dict(const StateDict& saved) {
    if (saved.scalars.value("optimizer", "") != "SGD" || saved.scalars.value("weights", "") != Weights::name) {
      throw_error("Sgd::load_state_dict: the saved state is from ", saved.scalars.value("optimizer", "?"),
                  " with weights '", saved.scalars.value("weights", "?"), "', not SGD with weights '", Weights::name,
                  "'");
    }
    if (saved.scalars.at("momentum").get<double>() != options_.momentum) {
      throw_error("Sgd::load_state_dict: the saved momentum ", saved.scalars.at("momentum").get<double>(),
                  " differs from ", options_.momentum, "; construct the optimizer with the saved options");
    }
    state_dict().copy_tensors_from(saved);
    steps_ = saved.scalars.at("step").get<std::int64_t>();
    options_.lr = saved.scalars.at("lr").get<double>();
    options_.dampening = saved.scalars.at("dampening").get<double>();
    options_.weight_decay = saved.scalars.at("weight_decay").get<double>();
    options_.nesterov = saved.scalars.at("nesterov").get<bool>();
    options_.seed = saved.scalars.at("seed").get<std::uint64_t>();
  }

 private:
  void check_range(const char* op, std::size_t first, std::size_t count) const {
    if (first > weights_.size() || count > weights_.size() - first) {
      throw_error(op, ": elements [", first, ", ", first + count, ") are outside the ", weights_.size(), " parameters");
    }
  }

  ParameterTable table_;
  SgdOptions options_;
  weight_store weights_;
  AlignedBuffer<value_t> momentum_;
  std::vector<detail::DecayRun> runs_;
  std::int64_t steps_ = 0;
};

}  // namespace mpt::optim

#pragma GCC diagnostic pop
