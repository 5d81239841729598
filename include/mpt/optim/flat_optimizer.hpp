#pragma once
// FlatOptimizer<P, Rule, Weights>: the one shell every update rule runs in
// (ensmallen's SGD<UpdatePolicy> shape). The shell owns what all optimizers
// share — the parameter table and its runs, the master-weight store, the state
// buffers, the step count, the dispatch to the AVX-512 / AVX2 / scalar loops,
// master I/O and the state-dict framing; a Rule holds only what makes an
// optimizer itself:
//
//   struct Rule {
//     using options = ...;                        // lr, betas, momentum, ...
//     static constexpr const char* name;          // "AdamW" (saved, and checked on load)
//     static std::vector<const char*> state_names(const options&);   // its per-parameter buffers
//     static void validate(const options&);
//     template <class T> struct coefficients;     // per-step constants
//     template <class T> static coefficients<T> prepare(const options&, std::int64_t step, double lr, float multiplier, bool decay);
//     template <class Store, class T> static void run_scalar(Store&, T* const* state, const T* grads,
//                                                            std::size_t begin, std::size_t end, const coefficients<T>&, std::uint32_t key);
//     ... run_avx2_reference (fp64 and non-vectorized stores), run_avx2, run_avx512 (fp32 stores)
//     static nlohmann::json scalars(const options&);                  // hyper-parameters in the state dict
//     static void load_scalars(options&, const nlohmann::json&);      // and back (refusing what cannot change)
//   };
//
//   using AdamW = FlatOptimizer<P, rules::AdamW, W>;  Sgd = FlatOptimizer<P, rules::Sgd, W>
//
// One fused pass, one parallel task per run of <= 32768 elements with one
// weight-decay decision; the vector and scalar loops give the same bits, for any
// thread count. Shapes: params [n] (P::param_t), grads [n] (P::grad_t), n = table.size().

#include <mpt/core/aligned.hpp>
#include <mpt/core/cpu.hpp>
#include <mpt/core/error.hpp>
#include <mpt/optim/detail/saved_state.hpp>
#include <mpt/optim/detail/update_loop.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>
#include <mpt/policy/precision.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace mpt::optim {

template <PrecisionPolicy P, class Rule, class Weights = default_weights_t<P>>
class FlatOptimizer {
 public:
  using policy = P;
  using rule = Rule;
  using weights_policy = Weights;
  using options_type = typename Rule::options;
  using param_t = typename P::param_t;
  using grad_t = typename P::grad_t;
  using weight_store = WeightStore<P, Weights>;
  using value_t = typename weight_store::value_t;
  static_assert(std::is_same_v<value_t, grad_t>,
                "optimizer: gradients must have the type the master weights are updated in (fp32, or fp64 under "
                "precision::fp64)");

  FlatOptimizer(std::span<param_t> params, ParameterTable table, options_type options = {})
      : FlatOptimizer(weight_store(params), params.size(), std::move(table), options) {}

  // With an fp32 master the model owns (nn::Parameters: matmul_compute(), matmul_master()).
  FlatOptimizer(std::span<param_t> params, std::span<value_t> master, ParameterTable table,
                options_type options = {}) requires std::is_same_v<Weights, weights::fp32_master>
      : FlatOptimizer(weight_store(params, master), params.size(), std::move(table), options) {}

 private:
  FlatOptimizer(weight_store&& store, std::size_t n, ParameterTable table, options_type options)
      : table_(std::move(table)), options_(options), weights_(std::move(store)) {
    table_.check_buffer(Rule::name, "the parameter buffer", n);
    Rule::validate(options);
    for (const char* state : Rule::state_names(options)) state_.push_back({state, AlignedBuffer<value_t>(n)});
    runs_ = detail::decay_runs(table_, detail::update_run_elements);
  }

 public:
  // One update with learning rate `lr`; gradients are multiplied by
  // grad_multiplier first (1/loss scale times the clipping coefficient).
  void step(std::span<const grad_t> grads, double lr, float grad_multiplier = 1.0f) {
    table_.check_buffer((std::string(Rule::name) + "::step").c_str(), "the gradient buffer", grads.size());
    ++steps_;
    std::array<value_t*, 4> state{};
    for (std::size_t k = 0; k < state_.size(); ++k) state[k] = state_[k].values.data();
    const std::uint32_t key = detail::rounding_key(options_.seed, steps_);
    const Isa isa = active_isa();
    const auto with_decay = Rule::template prepare<value_t>(options_, steps_, lr, grad_multiplier, true);
    const auto without_decay = Rule::template prepare<value_t>(options_, steps_, lr, grad_multiplier, false);
    detail::for_each_run(runs_, [&](const detail::DecayRun& run) {
      const auto& c = run.decay ? with_decay : without_decay;
#if MPT_X86
      if constexpr (weight_store::vectorized) {
        if (isa >= Isa::avx512) return Rule::run_avx512(weights_, state.data(), grads.data(), run.begin, run.end, c, key);
        if (isa >= Isa::avx2) return Rule::run_avx2(weights_, state.data(), grads.data(), run.begin, run.end, c, key);
      } else {
        if (isa >= Isa::avx2) {
          return Rule::run_avx2_reference(weights_, state.data(), grads.data(), run.begin, run.end, c, key);
        }
      }
#endif
      Rule::run_scalar(weights_, state.data(), grads.data(), run.begin, run.end, c, key);
    });
    (void)isa;
  }
  void step(std::span<const grad_t> grads) { step(grads, options_.lr); }

  std::int64_t steps() const noexcept { return steps_; }
  const options_type& options() const noexcept { return options_; }
  const ParameterTable& table() const noexcept { return table_; }
  const weight_store& weights() const noexcept { return weights_; }
  // A state buffer by name ("exp_avg", "momentum_buffer"); empty if the rule keeps none of that name.
  std::span<const value_t> state(std::string_view name) const noexcept {
    for (const auto& s : state_)
      if (name == s.name) return {s.values.data(), s.values.size()};
    return {};
  }

  // Starts the master from full-precision weights (e.g. the fp32 checkpoint the
  // model was loaded from) and writes the compute copy from it.
  void set_master_weights(std::span<const value_t> in) {
    table_.check_buffer("set_master_weights", "the input buffer", in.size());
    write_master(0, in);
  }
  // The weights the optimizer updates, widened to value_t: what a checkpoint of the
  // model saves (transformers saves fp32 weights after bf16 autocast training).
  void copy_master_weights(std::span<value_t> out) const {
    table_.check_buffer("copy_master_weights", "the output buffer", out.size());
    read_master(0, out);
  }
  // Master values of elements [first, first + out.size()).
  void read_master(std::size_t first, std::span<value_t> out) const {
    check_range("read_master", first, out.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = weights_.load(first + i);
  }
  // Sets master values of elements [first, first + in.size()), compute copy included.
  void write_master(std::size_t first, std::span<const value_t> in) {
    check_range("write_master", first, in.size());
    for (std::size_t i = 0; i < in.size(); ++i) weights_.assign(first + i, in[i]);
  }

  // Optimizer state bytes per parameter, the compute copy included.
  double bytes_per_parameter() const noexcept { return weight_store::bytes_per_parameter() + static_cast<double>(state_.size() * sizeof(value_t)); }

  StateDict state_dict() {
    StateDict s;
    for (auto& b : state_) s.add(b.name, b.values.data(), b.values.size());
    weights_.append_state(s);
    s.scalars = Rule::scalars(options_);
    s.scalars["optimizer"] = Rule::name;
    s.scalars["weights"] = Weights::name;
    s.scalars["step"] = steps_;
    s.scalars["seed"] = options_.seed;
    return s;
  }
  // Everything is read and checked before anything of this optimizer changes.
  void load_state_dict(const StateDict& saved) {
    detail::read_saved_state(mpt::detail::concat(Rule::name, "::load_state_dict"), [&] {
      if (saved.scalars.value("optimizer", "") != Rule::name || saved.scalars.value("weights", "") != Weights::name) {
        throw_error(Rule::name, "::load_state_dict: the saved state is from ", saved.scalars.value("optimizer", "?"), " with weights '",
                    saved.scalars.value("weights", "?"), "', not ", Rule::name, " with weights '", Weights::name, "'");
      }
      options_type loaded = options_;
      Rule::load_scalars(loaded, saved.scalars);  // may refuse (a state buffer it does not have)
      const auto step = saved.scalars.at("step").get<std::int64_t>();
      loaded.seed = saved.scalars.at("seed").get<std::uint64_t>();
      state_dict().copy_tensors_from(saved);
      options_ = loaded;
      steps_ = step;
    });
  }

 private:
  struct StateBuffer {
    const char* name;
    AlignedBuffer<value_t> values;
  };

  void check_range(const char* op, std::size_t first, std::size_t count) const {
    if (first > weights_.size() || count > weights_.size() - first) {
      throw_error(Rule::name, "::", op, ": elements [", first, ", ", first + count, ") are outside the ", weights_.size(), " parameters");
    }
  }

  ParameterTable table_;
  options_type options_;
  weight_store weights_;
  std::vector<StateBuffer> state_;
  std::vector<detail::DecayRun> runs_;
  std::int64_t steps_ = 0;
};

// What clip_and_step and the Trainer need of an optimizer.
template <class O>
concept Optimizer = requires(O o, const O co, std::span<const float> grads, double lr, float multiplier) {
  o.step(grads, lr, multiplier);
  { co.steps() } -> std::convertible_to<std::int64_t>;
  { o.state_dict() } -> std::same_as<StateDict>;
};

}  // namespace mpt::optim
