#pragma once
// Context<P>: what every layer's forward and backward receive besides their
// tensors — the parameters, the memory of the step, and the dropout keys.
//
//   activations  what forward saves for backward; lives from the first
//                forward of a step to the last backward (reset per step)
//   workspace    temporaries of one layer call; a layer may reset it on entry,
//                so nothing allocated there survives the call that made it

#include <mpt/core/arena.hpp>
#include <mpt/kernels/dropout.hpp>
#include <mpt/nn/packed_weights.hpp>
#include <mpt/nn/parameters.hpp>

#include <cstdint>

namespace mpt::nn {

template <PrecisionPolicy P>
struct Context {
  Parameters<P>& params;
  Arena& activations;
  Arena& workspace;
  bool training = false;                   // dropout on
  std::uint64_t seed = 0;                  // dropout: with `forward_index` and the site id, keys the Philox stream
  std::uint32_t forward_index = 0;         // which forward of the run this is: every forward draws its own masks
  PackedWeightCache<P>* packed = nullptr;  // set: Linear layers reuse weights packed by an earlier batch

  // The dropout key of one dropout site (every site has its own stream id).
  kernels::DropoutKey dropout_key(std::uint32_t site) const noexcept { return {seed, site, forward_index}; }
};

}  // namespace mpt::nn
