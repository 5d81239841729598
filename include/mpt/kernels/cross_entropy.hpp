#pragma once
// Softmax cross-entropy with an ignore index, as torch.nn.CrossEntropyLoss
// (reduction='mean').
//
//   cross_entropy_forward(logits, targets, ignore_index) -> mean loss
//     logits [N, C] fp32 (bf16 widened; double for gradient checks), targets [N] int32; rows whose target is
//     ignore_index are skipped; the loss is the mean of
//     logsumexp(logits[i]) - logits[i][target] over the others, summed in row
//     order. If every target is ignored the result is NaN (0/0), as in PyTorch.
//   cross_entropy_backward(logits, targets, ignore_index, dloss, dlogits)
//     dlogits[i] = (softmax(logits[i]) - onehot(target)) * dloss / count,
//     zero rows for ignored targets (all zeros when everything is ignored).
// A target outside [0, C) that is not the ignore index is an mpt::Error.
// The work is N x C with N = 2 x batch for question answering: small, so this
// runs scalar in one thread (std::exp, the reference itself).

#include <mpt/core/bf16.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace mpt::kernels {
namespace detail {
template <class L, class Id>
void check_cross_entropy(const char* op, TensorView<L> logits, TensorView<Id> targets, std::int32_t ignore_index) {
  if (logits.rank() != 2) throw_error(op, ": logits must be [N, C] but have shape ", logits.shape());
  check_shape(op, "targets", targets.shape(), Shape{logits.dim(0)});
  const std::int64_t classes = logits.dim(1);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::int32_t t = targets[i];
    if (t != ignore_index && (t < 0 || t >= classes)) {
      throw_error(op, ": target ", t, " of row ", i, " is outside [0, ", classes, ") and is not the ignore index ", ignore_index,
                  "; clamp positions or set them to the ignore index");
    }
  }
}

// log(sum(exp(x))) of one row, max-shifted.
template <class C, class L>
C log_sum_exp(const L* x, std::size_t n) {
  C max = -std::numeric_limits<C>::infinity();
  for (std::size_t j = 0; j < n; ++j) max = static_cast<C>(to_float(x[j])) > max ? static_cast<C>(to_float(x[j])) : max;
  C sum = 0;
  for (std::size_t j = 0; j < n; ++j) sum += std::exp(static_cast<C>(to_float(x[j])) - max);
  return max + std::log(sum);
}
}  // namespace detail

// The loss type: double for double logits, else fp32 (bf16 logits are widened, as autocast does).
template <class L>
using cross_entropy_t = std::conditional_t<std::is_same_v<std::remove_const_t<L>, double>, double, float>;

template <class L, class Id>
cross_entropy_t<L> cross_entropy_forward(TensorView<L> logits, TensorView<Id> targets, std::int32_t ignore_index) {
  using LL = std::remove_const_t<L>;
  using C = cross_entropy_t<L>;
  static_assert(std::is_same_v<LL, float> || std::is_same_v<LL, double> || std::is_same_v<LL, bf16>,
                "cross_entropy_forward: logits are fp32, bf16 or double");
  static_assert(std::is_same_v<std::remove_const_t<Id>, std::int32_t>, "cross_entropy_forward: targets are int32");
  detail::check_cross_entropy("cross_entropy_forward", logits, targets, ignore_index);
  const std::size_t n = targets.size(), classes = static_cast<std::size_t>(logits.dim(1));
  C sum = 0;
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (targets[i] == ignore_index) continue;
    const LL* row = logits.data() + i * classes;
    sum += detail::log_sum_exp<C>(row, classes) - static_cast<C>(to_float(row[targets[i]]));
    ++count;
  }
  return sum / static_cast<C>(count);  // 0/0 = NaN when every target is ignored, as PyTorch
}

template <class L, class Id, class DL>
void cross_entropy_backward(TensorView<L> logits, TensorView<Id> targets, std::int32_t ignore_index, double dloss, TensorView<DL> dlogits) {
  using LL = std::remove_const_t<L>;
  using C = cross_entropy_t<L>;
  detail::check_cross_entropy("cross_entropy_backward", logits, targets, ignore_index);
  check_shape("cross_entropy_backward", "dlogits", dlogits.shape(), logits.shape());
  const std::size_t n = targets.size(), classes = static_cast<std::size_t>(logits.dim(1));
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) count += targets[i] != ignore_index;
  const C factor = count == 0 ? C(0) : static_cast<C>(dloss / static_cast<double>(count));
  for (std::size_t i = 0; i < n; ++i) {
    const LL* row = logits.data() + i * classes;
    DL* out = dlogits.data() + i * classes;
    if (targets[i] == ignore_index) {
      for (std::size_t j = 0; j < classes; ++j) out[j] = static_cast<DL>(0.0f);
      continue;
    }
    const C lse = detail::log_sum_exp<C>(row, classes);
    for (std::size_t j = 0; j < classes; ++j) {
      const C p = std::exp(static_cast<C>(to_float(row[j])) - lse);
      out[j] = static_cast<DL>((p - (static_cast<std::int64_t>(j) == targets[i] ? C(1) : C(0))) * factor);
    }
  }
}

}  // namespace mpt::kernels
