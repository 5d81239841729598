#pragma once
// Weight initialization as transformers' BertPreTrainedModel._init_weights does it:
// normal(0, initializer_range) for Linear and Embedding weights (the padding row of
// the word embeddings zeroed), zeros for biases, LayerNorm weight 1 and bias 0.
//
//   fill_normal(view, stddev, seed, name)        a deterministic function of (seed, name):
//                                                the same values for any thread count
//   initializer(Init::normal, stddev, seed, row) an io::Initializer for a slot the
//                                                checkpoint lacks
//   init_for_role(role)                          which Init a parameter's role takes
// Formats (io/) know nothing of this: a slot carries its initializer as a function.

#include <mpt/core/bf16.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/random.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/nn/parameters.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>
#include <type_traits>
#include <variant>

namespace mpt::nn {

enum class Init {
  normal,  // normal(0, initializer_range): Linear and Embedding weights
  zeros,   // biases, LayerNorm bias
  ones,    // LayerNorm weight
};

inline Init init_for_role(ParamRole role) noexcept {
  switch (role) {
    case ParamRole::linear_weight:
    case ParamRole::embedding:
      return Init::normal;
    case ParamRole::norm_weight:
      return Init::ones;
    case ParamRole::linear_bias:
    case ParamRole::norm_bias:
      return Init::zeros;
  }
  return Init::zeros;
}

namespace detail {
inline std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001B3ull;
  return h;
}
}  // namespace detail

// normal(0, stddev) by Box-Muller, a deterministic function of (seed, name).
template <class T>
void fill_normal(TensorView<T> out, double stddev, std::uint64_t seed, std::string_view name) {
  mpt::SplitMix64 rng{seed ^ detail::fnv1a(name)};
  for (std::size_t i = 0; i < out.size(); i += 2) {
    const double radius = stddev * std::sqrt(-2.0 * std::log(rng.uniform_open()));
    const double angle = 2.0 * std::numbers::pi * rng.uniform_open();
    const double pair[2] = {radius * std::cos(angle), radius * std::sin(angle)};
    for (std::size_t k = 0; k < 2 && i + k < out.size(); ++k) {
      if constexpr (std::is_same_v<T, bf16>)
        out[i + k] = to_bf16(static_cast<float>(pair[k]));
      else
        out[i + k] = static_cast<T>(pair[k]);
    }
  }
}

// The initializer of one slot. Init::normal draws from (seed, slot name) and then
// zeroes row `zero_row` when given (nn.Embedding's padding_idx).
inline io::Initializer initializer(Init kind, double stddev, std::uint64_t seed, std::int64_t zero_row = -1) {
  return [=](const io::ParameterSlot& slot) {
    std::visit(
        [&](auto view) {
          using T = typename decltype(view)::value_type;
          switch (kind) {
            case Init::normal:
              if (zero_row >= 0 && (view.shape().rank() != 2 || zero_row >= view.dim(0))) {
                throw_error("initializing parameter '", slot.name, "': row ", zero_row, " is to be zeroed but its shape ", view.shape(),
                            " does not have that row");
              }
              fill_normal(view, stddev, seed, slot.name);
              if (zero_row >= 0)
                for (std::int64_t c = 0; c < view.dim(1); ++c) view(zero_row, c) = T(0.0f);
              break;
            case Init::zeros:
              for (auto& v : view.span()) v = T(0.0f);
              break;
            case Init::ones:
              for (auto& v : view.span()) v = T(1.0f);
              break;
          }
        },
        slot.data);
  };
}

}  // namespace mpt::nn
