#pragma once
// Linear<P>: y = x Wᵀ + b, as torch.nn.Linear (W [out, in], b [out]).
//
//   forward(ctx, x, y)       x [rows, in] act_t; y [rows, out] act_t or accum_t,
//                            fp32 accumulation with the bias fused into the store.
//                            Keeps a view of x: the caller keeps x alive until backward.
//   backward(ctx, dy, dx, accumulate_dx)
//                            dW += dyᵀ x, db += Σ_rows dy (fp32 gradients);
//                            dx = dy W (or dx += dy W when accumulate_dx), dx of any
//                            storage type: fp32 when several paths meet (Q, K, V).

#include <mpt/core/profile.hpp>
#include <mpt/kernels/gemm.hpp>
#include <mpt/nn/context.hpp>

#include <string>
#include <type_traits>

namespace mpt::nn {

template <PrecisionPolicy P>
class Linear {
 public:
  using act_t = typename P::act_t;
  static_assert(std::is_same_v<typename P::param_t, act_t>,
                "Linear: the compute copy of the weights and the activations must share a type (matmul operands)");

  Linear() = default;
  Linear(Parameters<P>& params, const std::string& name, std::int64_t in_features, std::int64_t out_features) : in_(in_features), out_(out_features) {
    weight_ = params.declare(name + ".weight", Shape{out_features, in_features}, ParamRole::linear_weight);
    bias_ = params.declare(name + ".bias", Shape{out_features}, ParamRole::linear_bias);
  }

  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  ParamId weight_id() const noexcept { return weight_; }
  ParamId bias_id() const noexcept { return bias_; }

  template <class Out>
  void forward(Context<P>& ctx, TensorView<const act_t> x, TensorView<Out> y) {
    const MatrixView<const act_t> xm = as_matrix(x);
    check_shape("Linear::forward", "x", Shape{xm.rows, xm.cols}, Shape{xm.rows, in_});
    check_shape("Linear::forward", "y", Shape{as_matrix(y).rows, as_matrix(y).cols}, Shape{xm.rows, out_});
    x_ = xm;
    const auto w = ctx.params.compute(weight_);
    const auto b = ctx.params.compute(bias_);
    kernels::GemmEpilogue<act_t> epilogue;
    epilogue.bias = b.data();
    if (ctx.packed != nullptr) {  // the same bits as packing inside the call
      kernels::gemm(kernels::Trans::N, rows(), size(out_), size(in_), 1, x_.data, size(in_), ctx.packed->forward_weight(ctx.params, weight_), 0,
                    y.data(), size(out_), epilogue);
      return;
    }
    kernels::gemm(kernels::Trans::N, kernels::Trans::T, rows(), size(out_), size(in_), 1, x_.data, size(in_), w.data(), size(in_), 0, y.data(),
                  size(out_), epilogue);
  }

  template <class DX>
  void backward(Context<P>& ctx, TensorView<const act_t> dy, TensorView<DX> dx, bool accumulate_dx) {
    check_shape("Linear::backward", "dy", Shape{as_matrix(dy).rows, as_matrix(dy).cols}, Shape{x_.rows, out_});
    auto dw = ctx.params.grad(weight_);
    auto db = ctx.params.grad(bias_);
    // dW [out, in] += dyᵀ [out, rows] · x [rows, in], and db [out] += column sums of dy, in one pass over dy
    {
      MPT_PROFILE("weight gradient (GEMM)");
      kernels::linear_weight_grad(rows(), size(out_), size(in_), dy.data(), size(out_), x_.data, size(in_), dw.data(), size(in_), db.data());
    }
    if (dx.data() != nullptr) {
      check_shape("Linear::backward", "dx", Shape{as_matrix(dx).rows, as_matrix(dx).cols}, Shape{x_.rows, in_});
      const auto w = ctx.params.compute(weight_);
      MPT_PROFILE("input gradient (GEMM)");
      // dx [rows, in] (+)= dy [rows, out] · W [out, in]
      kernels::gemm(kernels::Trans::N, kernels::Trans::N, rows(), size(in_), size(out_), 1, dy.data(), size(out_), w.data(), size(in_),
                    accumulate_dx ? 1 : 0, dx.data(), size(in_));
    }
  }

 private:
  static std::size_t size(std::int64_t n) noexcept { return static_cast<std::size_t>(n); }
  std::size_t rows() const noexcept { return static_cast<std::size_t>(x_.rows); }

  std::int64_t in_ = 0, out_ = 0;
  ParamId weight_ = 0, bias_ = 0;
  MatrixView<const act_t> x_;  // saved input
};

}  // namespace mpt::nn
