#pragma once
// ModelOptimizer<Optimizer>: an optimizer over a model's nn::Parameters, composed
// so that every byte of a parameter has one owner (nn/parameters.hpp):
//
//   full-precision parameters  (embeddings, LayerNorm: the model reads their master)
//       updated in place in the master type (Optimizer's rule, weights::direct)
//   matmul parameters          (Linear weights and biases: the model reads the compute copy)
//       updated by Optimizer itself, with its master-weight policy:
//         fp32_master          master kept in Parameters, compute copy rewritten in the same pass
//         split_master         the compute copy is the master's top half; the optimizer
//                              owns the low halves; Parameters' fp32 copy is released
//         stochastic_rounding  the bf16 compute copy is the master; the fp32 copy is released
//
//   train::ModelOptimizer<optim::AdamW<precision::bf16_mixed, optim::weights::split_master>>
//       opt(model.parameters(), {.weight_decay = 0.01});
//   auto opt = train::make_adamw(model.parameters(), {.weight_decay = 0.01});   // the policy's default weights
//   optim::clip_and_step(opt, scaler, params.grad_flat(), lr, max_grad_norm);
//
// The optimizer only sees flat buffers and a parameter table per part; the two
// parts share the step count, learning rate and gradient multiplier, and an
// update is element-wise, so the result is the one pass of a single optimizer.
// Parameters::read_master / write_master reach the true master in every policy
// (a model folder is written from it; a checkpoint restores it exactly).

#include <mpt/nn/parameters.hpp>
#include <mpt/optim/adamw.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/sgd.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpt::train {

// The policy of parameters the model reads in full precision: the master type throughout.
template <PrecisionPolicy P>
using full_precision_policy = precision::precision_policy<typename P::master_t, typename P::master_t, typename P::accum_t, typename P::master_t>;

// The same rule with another policy and weight store: AdamW<bf16_mixed, split_master> -> AdamW<fp32, direct>.
template <class Optimizer, class P2, class W2>
struct rebind_optimizer {
  static_assert(sizeof(Optimizer) == 0,
                "rebind_optimizer: the optimizer must be an optim::FlatOptimizer, such as "
                "optim::AdamW<P, W> or optim::Sgd<P, W>");
};
template <PrecisionPolicy P, class Rule, class W, class P2, class W2>
struct rebind_optimizer<optim::FlatOptimizer<P, Rule, W>, P2, W2> {
  using type = optim::FlatOptimizer<P2, Rule, W2>;
};

// Name -> (offset, count, decay) for the parameters of one part, offsets relative to
// the part's first element, in buffer order (the model's roles decide weight decay).
template <PrecisionPolicy P>
optim::ParameterTable parameter_table(const nn::Parameters<P>& params, bool matmul) {
  const std::size_t begin = matmul ? params.full_count() : 0;
  const std::size_t end = matmul ? params.size() : params.full_count();
  std::vector<const nn::ParamEntry*> part;
  for (const nn::ParamEntry& e : params.entries())
    if (nn::reads_compute_copy(e.role) == matmul) part.push_back(&e);
  std::sort(part.begin(), part.end(), [](const auto* a, const auto* b) { return a->offset < b->offset; });
  optim::ParameterTable table;
  for (const nn::ParamEntry* e : part) table.add_at(e->name, e->offset - begin, e->size(), nn::weight_decay_applies(e->role));
  table.set_buffer_size(end - begin);
  return table;
}

template <class Optimizer>
class ModelOptimizer {
 public:
  using matmul_optimizer = Optimizer;
  using policy = typename Optimizer::policy;
  using weights_policy = typename Optimizer::weights_policy;
  using options_type = typename Optimizer::options_type;
  using grad_t = typename policy::grad_t;
  using master_t = typename policy::master_t;
  using full_optimizer = typename rebind_optimizer<Optimizer, full_precision_policy<policy>, optim::weights::direct>::type;
  static_assert(std::is_same_v<typename Optimizer::value_t, master_t>,
                "ModelOptimizer: the optimizer must update weights in the model's master type");

  // Takes over `params` (allocated, weights loaded): for split_master and
  // stochastic_rounding the matmul parameters' fp32 copy is released here.
  ModelOptimizer(nn::Parameters<policy>& params, options_type options = {})
      : params_(params), full_(params.full_precision_master(), parameter_table(params, false), options), matmul_(make_matmul(params, options)) {
    if constexpr (releases_master) {
      matmul_.set_master_weights(params.matmul_master());  // split: top half + low half of the exact fp32 value
      params.release_matmul_master({[this](std::size_t first, std::span<master_t> out) { matmul_.read_master(first, out); },
                                    [this](std::size_t first, std::span<const master_t> in) { matmul_.write_master(first, in); }});
    }
  }
  ModelOptimizer(const ModelOptimizer&) = delete;  // Parameters holds callbacks into this object
  ModelOptimizer& operator=(const ModelOptimizer&) = delete;
  ~ModelOptimizer() {
    // What is left without the optimizer's low halves is the compute copy.
    if constexpr (releases_master) params_.set_master_access({});
  }

  // One update of every parameter: gradients (the model's flat buffer) times
  // grad_multiplier, learning rate lr.
  void step(std::span<const grad_t> grads, double lr, float grad_multiplier = 1.0f) {
    if (grads.size() != params_.size()) {
      throw_error("ModelOptimizer::step: the gradient buffer has ", grads.size(), " elements but the model's has ", params_.size(),
                  "; pass parameters().grad_flat()");
    }
    const std::size_t f = params_.full_count();
    full_.step(grads.first(f), lr, grad_multiplier);
    matmul_.step(grads.subspan(f), lr, grad_multiplier);
    params_.mark_updated();
  }

  std::int64_t steps() const noexcept { return matmul_.steps(); }
  const options_type& options() const noexcept { return matmul_.options(); }
  const full_optimizer& full_precision_part() const noexcept { return full_; }
  const Optimizer& matmul_part() const noexcept { return matmul_; }

  // Bytes the optimizer owns (moments, and the split master's low halves).
  std::size_t state_bytes() {
    std::size_t bytes = 0;
    for (const optim::StateTensor& t : state_dict().tensors) bytes += t.bytes();
    return bytes;
  }

  // Both parts' state: tensors "full_precision.<name>" and "matmul.<name>",
  // scalars {"full_precision": ..., "matmul": ...}.
  optim::StateDict state_dict() {
    optim::StateDict merged;
    const optim::StateDict full = full_.state_dict(), matmul = matmul_.state_dict();  // views of the buffers
    for (const auto& [prefix, part] : {std::pair{"full_precision.", &full}, std::pair{"matmul.", &matmul}}) {
      for (optim::StateTensor t : part->tensors) {
        t.name = prefix + t.name;
        merged.tensors.push_back(std::move(t));
      }
    }
    merged.scalars = {{"full_precision", full.scalars}, {"matmul", matmul.scalars}};
    return merged;
  }
  void load_state_dict(const optim::StateDict& saved) {
    if (!saved.scalars.contains("full_precision") || !saved.scalars.contains("matmul")) {
      throw_error(
          "ModelOptimizer::load_state_dict: the saved state has no \"full_precision\" and \"matmul\" parts; it "
          "was not written by a ModelOptimizer");
    }
    for (const auto& [prefix, key] : {std::pair{"full_precision.", "full_precision"}, std::pair{"matmul.", "matmul"}}) {
      optim::StateDict part;
      part.scalars = saved.scalars.at(key);
      const std::string p = prefix;
      for (const optim::StateTensor& t : saved.tensors) {
        if (t.name.rfind(p, 0) == 0) part.tensors.push_back({t.name.substr(p.size()), t.dtype, t.count, t.data});
      }
      if (p == "matmul.") {
        matmul_.load_state_dict(part);
      } else {
        full_.load_state_dict(part);
      }
    }
  }

 private:
  static constexpr bool releases_master = nn::Parameters<policy>::separate_compute && !std::is_same_v<weights_policy, optim::weights::fp32_master>;

  static Optimizer make_matmul(nn::Parameters<policy>& params, const options_type& options) {
    auto table = parameter_table(params, true);
    if constexpr (std::is_same_v<weights_policy, optim::weights::fp32_master>) {
      return Optimizer(params.matmul_compute(), params.matmul_master(), std::move(table), options);
    } else {
      return Optimizer(params.matmul_compute(), std::move(table), options);
    }
  }

  nn::Parameters<policy>& params_;
  full_optimizer full_;
  Optimizer matmul_;
};

// AdamW / SGD over a model's parameters, weight policy W (default: the policy's own,
// fp32_master under bf16_mixed). Returned in place: ModelOptimizer does not move.
template <class W = void, PrecisionPolicy P>
ModelOptimizer<optim::AdamW<P, std::conditional_t<std::is_void_v<W>, optim::default_weights_t<P>, W>>> make_adamw(nn::Parameters<P>& params,
                                                                                                                  optim::AdamWOptions options = {}) {
  return {params, options};
}
template <class W = void, PrecisionPolicy P>
ModelOptimizer<optim::Sgd<P, std::conditional_t<std::is_void_v<W>, optim::default_weights_t<P>, W>>> make_sgd(nn::Parameters<P>& params,
                                                                                                              optim::SgdOptions options = {}) {
  return {params, options};
}

}  // namespace mpt::train
