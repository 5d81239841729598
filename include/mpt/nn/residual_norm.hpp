#pragma once
// DenseResidualNorm<P>: the "add & norm" block that closes both halves of a
// BERT layer (transformers' BertSelfOutput and BertOutput):
//
//   x [rows, in] act_t ──dense──▶ y [rows, H] ──dropout──▶ (+ residual) ──LayerNorm──▶ out [rows, H]
//
// y is act_t (a matmul output); the sum, the LayerNorm and out are in the
// accumulation type, as autocast promotes bf16 + fp32 to fp32.

#include <mpt/core/profile.hpp>
#include <mpt/kernels/dropout.hpp>
#include <mpt/nn/layer_norm.hpp>
#include <mpt/nn/linear.hpp>

#include <string>

namespace mpt::nn {

template <PrecisionPolicy P>
class DenseResidualNorm {
 public:
  using act_t = typename P::act_t;
  using hidden_t = typename P::accum_t;

  DenseResidualNorm() = default;
  // name: "bert.encoder.layer.3.attention.output" (declares .dense.* and .LayerNorm.*)
  DenseResidualNorm(Parameters<P>& params, const std::string& name, std::int64_t in, std::int64_t hidden, double dropout, double eps,
                    std::uint32_t site)
      : dense_(params, name + ".dense", in, hidden),
        norm_(params, name + ".LayerNorm", hidden, eps),
        hidden_(hidden),
        dropout_(static_cast<float>(dropout)),
        site_(site) {}

  static std::size_t saved_bytes(std::int64_t rows, std::int64_t hidden) {
    return Arena::bytes_for<hidden_t>(static_cast<std::size_t>(rows * hidden)) + LayerNorm<P>::saved_bytes(rows);
  }
  static std::size_t forward_workspace_bytes(std::int64_t rows, std::int64_t hidden) {
    return Arena::bytes_for<act_t>(static_cast<std::size_t>(rows * hidden));
  }
  static std::size_t backward_workspace_bytes(std::int64_t rows, std::int64_t hidden) { return forward_workspace_bytes(rows, hidden); }

  // x (kept alive by the caller), residual [rows, H], out [rows, H].
  void forward(Context<P>& ctx, TensorView<const act_t> x, TensorView<const hidden_t> residual, TensorView<hidden_t> out) {
    Arena& saved = ctx.activations;  // lives until backward
    Arena& scratch = ctx.workspace;  // this call only
    const Shape rh{static_cast<std::int64_t>(residual.size()) / hidden_, hidden_};
    auto y = scratch.allocate<act_t>(rh, "dense output");
    {
      MPT_PROFILE("dense (GEMM)");
      dense_.forward(ctx, x, y);
    }
    MPT_PROFILE("dropout + residual + LayerNorm");
    sum_ = saved.allocate<hidden_t>(rh, "residual sum");
    kernels::dropout_add_forward(TensorView<const act_t>(y), residual, sum_, rate(ctx), ctx.dropout_key(site_));
    norm_.forward(ctx, sum_, out);
  }

  // dout [rows, H]; dx [rows, in] act_t (overwritten); dresidual [rows, H] (overwritten:
  // the gradient of the sum, which the residual path receives unchanged).
  void backward(Context<P>& ctx, TensorView<const hidden_t> dout, TensorView<act_t> dx, TensorView<hidden_t> dresidual) {
    Arena& scratch = ctx.workspace;  // this call only
    auto dy = scratch.allocate<act_t>(dresidual.shape(), "ddense output");
    {
      MPT_PROFILE("LayerNorm + dropout backward");
      norm_.backward(ctx, dout, dresidual);
      kernels::dropout_backward(TensorView<const hidden_t>(dresidual), dy, rate(ctx), ctx.dropout_key(site_));
    }
    dense_.backward(ctx, dy, dx, false);
  }

 private:
  float rate(const Context<P>& ctx) const noexcept { return ctx.training ? dropout_ : 0.0f; }

  Linear<P> dense_;
  LayerNorm<P> norm_;
  std::int64_t hidden_ = 0;
  float dropout_ = 0.0f;
  std::uint32_t site_ = 0;
  TensorView<hidden_t> sum_;
};

}  // namespace mpt::nn
