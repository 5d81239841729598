#pragma once
// PackedWeightCache<P>: Linear weights packed for the forward GEMM once and reused
// by every batch until the weights change (Parameters::version). Evaluation and
// prediction run hundreds of batches over the same weights; training changes them
// every step, so it packs inside each GEMM as before.
//
//   model.forward(batch, {.training = false, .reuse_packed_weights = true});   // packs on first use
//   model.release_packed_weights();                                             // frees the copies

#include <mpt/core/cpu.hpp>
#include <mpt/kernels/gemm.hpp>
#include <mpt/nn/parameters.hpp>

#include <cstdint>
#include <optional>
#include <vector>

namespace mpt::nn {

template <PrecisionPolicy P>
class PackedWeightCache {
 public:
  using param_t = typename P::param_t;

  // op(B) = Wᵀ [in x out] of the Linear weight `weight` ([out, in]), packed for the active ISA.
  const kernels::PackedB<param_t>& forward_weight(const Parameters<P>& params, ParamId weight) {
    if (version_ != params.version() || isa_ != active_isa()) {
      clear();
      version_ = params.version();
      isa_ = active_isa();
    }
    if (packed_.size() < params.count()) packed_.resize(params.count());
    std::optional<kernels::PackedB<param_t>>& slot = packed_[weight];
    if (!slot) {
      const auto w = params.compute(weight);
      const auto out = static_cast<std::size_t>(w.dim(0)), in = static_cast<std::size_t>(w.dim(1));
      slot.emplace(kernels::Trans::T, in, out, w.data(), in);
    }
    return *slot;
  }

  void clear() {
    packed_.clear();
    packed_.shrink_to_fit();
  }

 private:
  std::vector<std::optional<kernels::PackedB<param_t>>> packed_;
  std::uint64_t version_ = ~std::uint64_t{0};
  Isa isa_ = Isa::scalar;
};

}  // namespace mpt::nn
