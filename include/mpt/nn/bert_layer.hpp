#pragma once
// BertLayer<P>: one transformer encoder block, as transformers' BertLayer.
//
//   x ─▶ self-attention ─▶ dense ─▶ dropout ─▶ (+x) ─▶ LayerNorm ─▶ h
//   h ─▶ intermediate dense + GELU ─▶ output dense ─▶ dropout ─▶ (+h) ─▶ LayerNorm ─▶ out
//
// x, h, out [B·S, H] are in the accumulation type (the residual stream: fp32
// under bf16_mixed, as autocast keeps it); each matmul reads an act_t copy.
// The block resets the workspace at the start of its forward and backward.

#include <mpt/core/bf16_convert.hpp>
#include <mpt/core/profile.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/kernels/gelu.hpp>
#include <mpt/nn/attention.hpp>
#include <mpt/nn/residual_norm.hpp>

#include <string>
#include <type_traits>

namespace mpt::nn {

namespace detail {
// dst = src in another storage type (round to nearest even into bf16).
template <class From, class To>
void convert_into(TensorView<const From> src, TensorView<To> dst) {
  if constexpr (std::is_same_v<From, float> && std::is_same_v<To, bf16>) {
    check_shape("convert_into", "dst", dst.shape(), src.shape());
    parallel_chunks(src.size(), std::size_t(1) << 16,
                    [&](std::size_t b, std::size_t e) { convert(src.span().subspan(b, e - b), dst.span().subspan(b, e - b)); });
  } else {
    for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<To>(src[i]);
  }
}

// `x` as act_t: the same memory when the types agree, else a converted copy in `arena`.
template <class Act, class Hidden>
TensorView<const Act> as_matmul_input(Arena& arena, TensorView<const Hidden> x, const char* what) {
  if constexpr (std::is_same_v<Act, Hidden>) {
    (void)arena;
    (void)what;
    return x;
  } else {
    MPT_PROFILE("hidden state to the matmul type");
    auto copy = arena.template allocate<Act>(x.shape(), what);
    convert_into(x, copy);
    return copy;
  }
}
template <class Act, class Hidden>
constexpr std::size_t matmul_input_bytes(std::size_t count) {
  return std::is_same_v<Act, Hidden> ? 0 : Arena::bytes_for<Act>(count);
}
}  // namespace detail

struct BertLayerConfig {
  std::int64_t hidden = 0, heads = 0, intermediate = 0;
  double hidden_dropout = 0.1, attention_dropout = 0.1, eps = 1e-12;
};

template <PrecisionPolicy P>
class BertLayer {
 public:
  using act_t = typename P::act_t;
  using hidden_t = typename P::accum_t;

  BertLayer() = default;
  // name: "bert.encoder.layer.3"; sites: this layer's dropout stream ids start at 3 * index + 1.
  BertLayer(Parameters<P>& params, const std::string& name, const BertLayerConfig& config, std::uint32_t index)
      : attention_(params, name + ".attention.self", config.hidden, config.heads, config.attention_dropout, 3 * index + 1),
        attention_output_(params, name + ".attention.output", config.hidden, config.hidden, config.hidden_dropout, config.eps, 3 * index + 2),
        intermediate_(params, name + ".intermediate.dense", config.hidden, config.intermediate),
        output_(params, name + ".output", config.intermediate, config.hidden, config.hidden_dropout, config.eps, 3 * index + 3),
        config_(config) {}

  // The first matmul parameter of the layer: layers declare their matmul parameters in
  // order, so from its offset on, the gradients of this and later layers lie together.
  ParamId first_weight_id() const noexcept { return attention_.first_weight_id(); }

  static std::size_t saved_bytes(const BertLayerConfig& s, std::int64_t batch, std::int64_t seq, bool training) {
    const std::int64_t rows = batch * seq;
    const auto th = static_cast<std::size_t>(rows * s.hidden);
    const auto ti = static_cast<std::size_t>(rows * s.intermediate);
    const AttentionDims d{batch, seq, s.hidden, s.heads};
    return 2 * detail::matmul_input_bytes<act_t, hidden_t>(th)                                                        // x and h as matmul inputs
           + BertSelfAttention<P>::saved_bytes(d, training && s.attention_dropout > 0) + Arena::bytes_for<act_t>(th)  // attention context
           + DenseResidualNorm<P>::saved_bytes(rows, s.hidden)                                                        // attention output
           + Arena::bytes_for<hidden_t>(th)                                                                           // h
           + 2 * Arena::bytes_for<act_t>(ti)                     // GELU pre-activation, intermediate
           + DenseResidualNorm<P>::saved_bytes(rows, s.hidden);  // output block
  }
  static std::size_t workspace_bytes(const BertLayerConfig& s, std::int64_t batch, std::int64_t seq) {
    const std::int64_t rows = batch * seq;
    const auto th = static_cast<std::size_t>(rows * s.hidden);
    const auto ti = static_cast<std::size_t>(rows * s.intermediate);
    const AttentionDims d{batch, seq, s.hidden, s.heads};
    const std::size_t forward = BertSelfAttention<P>::forward_workspace_bytes(d) + 2 * DenseResidualNorm<P>::forward_workspace_bytes(rows, s.hidden);
    const std::size_t backward = 2 * Arena::bytes_for<act_t>(ti)   // dintermediate, dpre-activation
                                 + Arena::bytes_for<hidden_t>(th)  // dh
                                 + Arena::bytes_for<act_t>(th)     // dcontext
                                 + 2 * DenseResidualNorm<P>::backward_workspace_bytes(rows, s.hidden) +
                                 BertSelfAttention<P>::backward_workspace_bytes(d, s.attention_dropout > 0);
    return std::max(forward, backward);
  }

  // x [B·S, H] kept alive by the caller; out [B·S, H].
  void forward(Context<P>& ctx, TensorView<const hidden_t> x, TensorView<const float> mask, std::int64_t batch, TensorView<hidden_t> out) {
    MPT_PROFILE("encoder layer");
    Arena& saved = ctx.activations;  // lives until backward
    ctx.workspace.reset();
    const Shape th = x.shape();
    const Shape ti{th[0], config_.intermediate};
    const auto x_in = detail::as_matmul_input<act_t>(saved, x, "layer input as matmul input");
    auto context = saved.allocate<act_t>(th, "attention context");
    attention_.forward(ctx, x_in, mask, batch, context);
    h_ = saved.allocate<hidden_t>(th, "attention block output");
    {
      MPT_PROFILE("attention output");
      attention_output_.forward(ctx, context, x, h_);
    }

    const auto h_in = detail::as_matmul_input<act_t>(saved, TensorView<const hidden_t>(h_), "h as matmul input");
    pre_ = saved.allocate<act_t>(ti, "GELU pre-activation");
    {
      MPT_PROFILE("FFN in: dense (GEMM)");
      intermediate_.forward(ctx, h_in, pre_);
    }
    inter_ = saved.allocate<act_t>(ti, "intermediate");
    {
      MPT_PROFILE("FFN GELU");
      kernels::gelu_forward(TensorView<const act_t>(pre_), inter_);
    }
    MPT_PROFILE("FFN out");
    output_.forward(ctx, inter_, h_, out);
  }

  // dout [B·S, H]; dx [B·S, H] (overwritten).
  void backward(Context<P>& ctx, TensorView<const hidden_t> dout, TensorView<hidden_t> dx) {
    MPT_PROFILE("encoder layer");
    Arena& scratch = ctx.workspace;  // this call only
    scratch.reset();
    const Shape th = dout.shape();
    const Shape ti{th[0], config_.intermediate};
    auto dinter = scratch.allocate<act_t>(ti, "dintermediate");
    auto dh = scratch.allocate<hidden_t>(th, "dh");
    {
      MPT_PROFILE("FFN out");
      output_.backward(ctx, dout, dinter, dh);
    }
    auto dpre = scratch.allocate<act_t>(ti, "dpre-activation");
    {
      MPT_PROFILE("FFN GELU");
      kernels::gelu_backward(TensorView<const act_t>(dinter), TensorView<const act_t>(pre_), dpre, TensorView<hidden_t>{});
    }
    {
      MPT_PROFILE("FFN in");
      intermediate_.backward(ctx, dpre, dh, true);  // dh += (the residual path wrote it)
    }

    auto dcontext = scratch.allocate<act_t>(th, "dcontext");
    {
      MPT_PROFILE("attention output");
      attention_output_.backward(ctx, dh, dcontext, dx);  // dx = (residual path)
    }
    attention_.backward(ctx, dcontext, dx);  // dx += (Q, K, V)
  }

 private:
  BertSelfAttention<P> attention_;
  DenseResidualNorm<P> attention_output_;
  Linear<P> intermediate_;
  DenseResidualNorm<P> output_;
  BertLayerConfig config_;
  TensorView<hidden_t> h_;
  TensorView<act_t> pre_, inter_;
};

}  // namespace mpt::nn
