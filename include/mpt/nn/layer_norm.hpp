#pragma once
// LayerNorm<P>: torch.nn.LayerNorm over the hidden axis, in the accumulation
// type (fp32 under bf16_mixed, as autocast runs it), with the master copy of
// gamma and beta.
//
//   forward(ctx, x, y)     x, y [rows, H] accum_t; saves x (a view: the caller
//                          keeps it alive) and mean, rstd [rows] in activations
//   backward(ctx, dy, dx)  dx [rows, H] overwritten; dgamma, dbeta accumulate

#include <mpt/kernels/layer_norm.hpp>
#include <mpt/nn/context.hpp>

#include <string>

namespace mpt::nn {

template <PrecisionPolicy P>
class LayerNorm {
 public:
  using hidden_t = typename P::accum_t;
  static_assert(std::is_same_v<typename P::master_t, hidden_t>,
                "LayerNorm: gamma and beta are read from the master weights, which must be in the accumulation type "
                "(fp32, or fp64 for gradient checks)");

  LayerNorm() = default;
  LayerNorm(Parameters<P>& params, const std::string& name, std::int64_t hidden, double eps) : hidden_(hidden), eps_(eps) {
    gamma_ = params.declare(name + ".weight", Shape{hidden}, ParamRole::norm_weight);
    beta_ = params.declare(name + ".bias", Shape{hidden}, ParamRole::norm_bias);
  }

  // Bytes forward saves for `rows` rows.
  static std::size_t saved_bytes(std::int64_t rows) { return 2 * Arena::bytes_for<hidden_t>(static_cast<std::size_t>(rows)); }

  void forward(Context<P>& ctx, TensorView<const hidden_t> x, TensorView<hidden_t> y) {
    Arena& saved = ctx.activations;  // lives until backward
    x_ = x;
    const std::int64_t rows = static_cast<std::int64_t>(x.size()) / hidden_;
    mean_ = saved.allocate<hidden_t>(Shape{rows}, "LayerNorm mean");
    rstd_ = saved.allocate<hidden_t>(Shape{rows}, "LayerNorm rstd");
    kernels::layer_norm_forward(x, ctx.params.master(gamma_), ctx.params.master(beta_), eps_, y, mean_, rstd_);
  }

  void backward(Context<P>& ctx, TensorView<const hidden_t> dy, TensorView<hidden_t> dx) {
    kernels::layer_norm_backward(dy, x_, TensorView<const hidden_t>(ctx.params.master(gamma_)), TensorView<const hidden_t>(mean_),
                                 TensorView<const hidden_t>(rstd_), dx, ctx.params.grad(gamma_), ctx.params.grad(beta_));
  }

 private:
  std::int64_t hidden_ = 0;
  double eps_ = 1e-12;
  ParamId gamma_ = 0, beta_ = 0;
  TensorView<const hidden_t> x_;
  TensorView<hidden_t> mean_, rstd_;
};

}  // namespace mpt::nn
