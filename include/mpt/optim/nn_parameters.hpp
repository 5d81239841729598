#pragma once
// The optimizer over a model's nn::Parameters: the offset table (with its
// alignment padding) and the weight-decay decisions come from the model's
// parameter roles; under bf16_mixed the optimizer updates the model's own
// fp32 master buffer and writes its bf16 compute copy in the same pass.

#include <mpt/nn/parameters.hpp>
#include <mpt/optim/adamw.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/sgd.hpp>

#include <type_traits>

namespace mpt::optim {

// Name -> (offset, count, decay) for every parameter of the model, in buffer order.
template <PrecisionPolicy P>
ParameterTable parameter_table(const nn::Parameters<P>& parameters) {
  ParameterTable table;
  for (const auto& e : parameters.entries()) {
    table.add_at(e.name, e.offset, e.size(), nn::weight_decay_applies(e.role));
  }
  table.set_buffer_size(parameters.grad_flat().size());
  return table;
}

// AdamW over the model's buffers: the model's fp32 master (fp32_master), or
// its compute copy alone (direct, split_master, rounding policies; with
// split_master the model's master buffer is not used: read the weights with
// copy_master_weights).
template <class W = void, PrecisionPolicy P>
auto make_adamw(nn::Parameters<P>& parameters, AdamWOptions options = {}) {
  using Weights = std::conditional_t<std::is_void_v<W>, default_weights_t<P>, W>;
  if constexpr (std::is_same_v<Weights, weights::fp32_master>) {
    return AdamW<P, Weights>(parameters.compute_flat(), parameters.master_flat(), parameter_table(parameters), options);
  } else {
    return AdamW<P, Weights>(parameters.compute_flat(), parameter_table(parameters), options);
  }
}

// SGD over the model's buffers, as make_adamw.
template <class W = void, PrecisionPolicy P>
auto make_sgd(nn::Parameters<P>& parameters, SgdOptions options = {}) {
  using Weights = std::conditional_t<std::is_void_v<W>, default_weights_t<P>, W>;
  if constexpr (std::is_same_v<Weights, weights::fp32_master>) {
    return Sgd<P, Weights>(parameters.compute_flat(), parameters.master_flat(), parameter_table(parameters), options);
  } else {
    return Sgd<P, Weights>(parameters.compute_flat(), parameter_table(parameters), options);
  }
}

}  // namespace mpt::optim
