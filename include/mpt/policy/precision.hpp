#pragma once
// Precision policies: one type names every precision decision, and every
// template in mpt takes it as its first parameter.
//
//   param_t       the compute copy of the weights that matmuls read
//   act_t         activations stored between layers
//   accum_t       accumulation inside matmuls and reductions; gradients
//   master_t      the weights the optimizer updates
//
// What runs in which type follows PyTorch's CPU autocast: matmuls take
// param_t/act_t inputs and accumulate in accum_t; LayerNorm statistics,
// softmax, the loss and every reduction work in accum_t.

#include <mpt/core/bf16.hpp>

#include <Eigen/Core>

#include <type_traits>

namespace mpt::precision {

namespace detail {
template <class T>
inline constexpr bool is_storage_type_v =
    std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, mpt::bf16> || std::is_same_v<T, Eigen::half>;
template <class T>
inline constexpr int bits_of_v = static_cast<int>(sizeof(T)) * 8;
}  // namespace detail

template <class Param, class Activation, class Accumulate = float, class Master = float>
struct precision_policy {
  static_assert(detail::is_storage_type_v<Param>, "precision_policy: Param must be double, float, mpt::bf16 or Eigen::half");
  static_assert(detail::is_storage_type_v<Activation>, "precision_policy: Activation must be double, float, mpt::bf16 or Eigen::half");
  static_assert(std::is_same_v<Accumulate, float> || std::is_same_v<Accumulate, double>,
                "precision_policy: Accumulate must be float or double; sums in 16 bits lose the gradient");
  static_assert(detail::is_storage_type_v<Master>, "precision_policy: Master must be double, float, mpt::bf16 or Eigen::half");
  static_assert(detail::bits_of_v<Accumulate> >= detail::bits_of_v<Param> && detail::bits_of_v<Accumulate> >= detail::bits_of_v<Activation>,
                "precision_policy: Accumulate must be at least as wide as Param and Activation");
  static_assert(detail::bits_of_v<Master> >= detail::bits_of_v<Param>,
                "precision_policy: Master must be at least as wide as Param: the optimizer cannot keep "
                "weights in fewer bits than the model computes with");
  static_assert(!std::is_same_v<Param, double> || std::is_same_v<Activation, double>,
                "precision_policy: fp64 weights with narrower activations make no sense; use fp64 throughout");

  using param_t = Param;
  using act_t = Activation;
  using accum_t = Accumulate;
  using grad_t = Accumulate;
  using master_t = Master;

  // The optimizer keeps a separate, wider copy of the weights.
  static constexpr bool has_master = !std::is_same_v<Param, Master>;
};

// fp32 everywhere: the reference.
using fp32 = precision_policy<float, float>;
// PyTorch CPU autocast: bf16 matmul inputs and stored activations, fp32
// accumulation and gradients, fp32 master weights.
using bf16_mixed = precision_policy<bf16, bf16>;
// fp64 everywhere: finite-difference gradient checks.
using fp64 = precision_policy<double, double, double, double>;
// bf16 weights with no fp32 master (stochastic rounding in the optimizer).
using bf16_pure = precision_policy<bf16, bf16, float, bf16>;
// fp16 storage (F16C conversions), fp32 compute, gradients and master: the
// narrow exponent range that dynamic loss scaling exists for.
using fp16_mixed = precision_policy<Eigen::half, Eigen::half>;

template <class T>
struct is_precision_policy : std::false_type {};
template <class Pa, class Ac, class Acc, class M>
struct is_precision_policy<precision_policy<Pa, Ac, Acc, M>> : std::true_type {};

}  // namespace mpt::precision

namespace mpt {
// Templates constrain their first parameter with this concept, so a wrong
// argument fails with "constraints not satisfied: PrecisionPolicy".
template <class P>
concept PrecisionPolicy = precision::is_precision_policy<P>::value;
}  // namespace mpt
