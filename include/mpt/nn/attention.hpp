#pragma once
// BertSelfAttention<P>: multi-head scaled dot-product self-attention with a
// padding mask, as transformers' BertSelfAttention (absolute positions).
//
//   x [B·S, H] act_t ──query/key/value──▶ Q, K, V [B·S, H] act_t
//   per (batch b, head h), with Q_bh = Q[b·S .. b·S+S, h·d .. h·d+d]:
//     scores = Q_bh K_bhᵀ                       [S, S] act_t (workspace; bf16 as autocast's matmul)
//     probs  = softmax(scores / √d + mask_b)    [S, S] act_t (saved)
//     kept   = dropout(probs)                   [S, S] act_t (saved when dropout is on)
//     ctx_bh = kept V_bh                        [S, d] into ctx [B·S, H] act_t
//   mask [B, S] fp32 additive: 0 where attended, finfo(float32).min where padded.
//
// Backward, for dctx [B·S, H] act_t (dkept in act_t as autocast's bf16 matmul returns it, then
// the dropout gradient in fp32 as autocast runs dropout on softmax's fp32 output):
//   dkept = dctx_bh V_bhᵀ,  dV_bh = keptᵀ dctx_bh,  dprobs = dropout'(dkept),
//   dscores = softmax'(probs, dprobs) / √d,  dQ_bh = dscores K_bh,  dK_bh = dscoresᵀ Q_bh,
//   then the three projections' backward accumulate into dx [B·S, H] (fp32 hidden type).

#include <mpt/kernels/dropout.hpp>
#include <mpt/kernels/gemm.hpp>
#include <mpt/kernels/softmax.hpp>
#include <mpt/nn/context.hpp>
#include <mpt/nn/linear.hpp>

#include <cmath>
#include <string>
#include <type_traits>

namespace mpt::nn {

// The sizes one forward/backward works on.
struct AttentionDims {
  std::int64_t batch = 0, seq = 0, hidden = 0, heads = 0;
  std::int64_t head_dim() const noexcept { return hidden / heads; }
  std::int64_t tokens() const noexcept { return batch * seq; }
  std::size_t score_count() const noexcept { return static_cast<std::size_t>(batch * heads * seq * seq); }
};

template <PrecisionPolicy P>
class BertSelfAttention {
 public:
  using act_t = typename P::act_t;
  using hidden_t = typename P::accum_t;

  BertSelfAttention() = default;
  // name: "bert.encoder.layer.3.attention.self"; site: first of the dropout stream ids this layer uses.
  BertSelfAttention(Parameters<P>& params, const std::string& name, std::int64_t hidden, std::int64_t heads,
                    double dropout, std::uint32_t site)
      : query_(params, name + ".query", hidden, hidden),
        key_(params, name + ".key", hidden, hidden),
        value_(params, name + ".value", hidden, hidden),
        hidden_(hidden),
        heads_(heads),
        dropout_(static_cast<float>(dropout)),
        site_(site) {
    if (heads <= 0 || hidden % heads != 0) {
      throw_error(name, ": hidden size ", hidden, " is not a multiple of the ", heads, " attention heads");
    }
  }

  bool dropout_active(const Context<P>& ctx) const noexcept { return ctx.training && dropout_ > 0.0f; }

  // Bytes forward saves, and the workspace forward and backward need.
  // The first parameter this block declares (its query weight).
  ParamId first_weight_id() const noexcept { return query_.weight_id(); }

  static std::size_t saved_bytes(const AttentionDims& d, bool dropout) {
    const auto th = static_cast<std::size_t>(d.tokens() * d.hidden);
    return 3 * Arena::bytes_for<act_t>(th) + (dropout ? 2 : 1) * Arena::bytes_for<act_t>(d.score_count());
  }
  static std::size_t forward_workspace_bytes(const AttentionDims& d) { return Arena::bytes_for<act_t>(d.score_count()); }
  // (dropout: whether the layer has attention dropout, which backward runs in training.)
  static std::size_t backward_workspace_bytes(const AttentionDims& d, bool dropout) {
    const auto th = static_cast<std::size_t>(d.tokens() * d.hidden);
    const std::size_t dkept_dprobs = separate_dkept ? Arena::bytes_for<act_t>(d.score_count()) +
                                                          (dropout ? Arena::bytes_for<hidden_t>(d.score_count()) : 0)
                                                    : Arena::bytes_for<hidden_t>(d.score_count());
    return 3 * Arena::bytes_for<act_t>(th) + dkept_dprobs + Arena::bytes_for<act_t>(d.score_count());
  }

  // x [B·S, H] (kept alive by the caller), mask [B, S], ctx_out [B·S, H].
  void forward(Context<P>& ctx, TensorView<const act_t> x, TensorView<const float> mask, std::int64_t batch,
               TensorView<act_t> context_out) {
    dims_ = {batch, static_cast<std::int64_t>(x.size()) / (batch * hidden_), hidden_, heads_};
    const AttentionDims& d = dims_;
    check_shape("BertSelfAttention::forward", "mask", mask.shape(), Shape{d.batch, d.seq});
    const Shape th{d.tokens(), d.hidden};
    q_ = ctx.activations.template allocate<act_t>(th, "query");
    k_ = ctx.activations.template allocate<act_t>(th, "key");
    v_ = ctx.activations.template allocate<act_t>(th, "value");
    query_.forward(ctx, x, q_);
    key_.forward(ctx, x, k_);
    value_.forward(ctx, x, v_);

    const Shape scores_shape{d.batch, d.heads, d.seq, d.seq};
    // Scores in the activation type, as autocast's bf16 matmul returns them (the 1/√d
    // scaling is exact; the mask is added and softmax runs in fp32). Besides being what
    // transformers computes, it halves the bytes of this memory-bound product at S = 384.
    auto scores = ctx.workspace.template allocate<act_t>(scores_shape, "attention scores");
    for_each_batch([&](std::size_t b) {
      kernels::gemm_strided_batched(kernels::Trans::N, kernels::Trans::T, s(d.seq), s(d.seq), s(d.head_dim()), 1.0f, q_.data() + row0(b), s(d.hidden),
                           s(d.head_dim()), k_.data() + row0(b), s(d.hidden), s(d.head_dim()), 0.0f,
                           scores.data() + b * per_batch_scores(), s(d.seq), s(d.seq * d.seq), s(d.heads));
    });
    probs_ = ctx.activations.template allocate<act_t>(scores_shape, "attention probabilities");
    kernels::softmax_forward(TensorView<const act_t>(scores), mask, 1.0 / std::sqrt(static_cast<double>(d.head_dim())), probs_);
    kept_ = probs_;
    if (dropout_active(ctx)) {
      kept_ = ctx.activations.template allocate<act_t>(scores_shape, "attention probabilities after dropout");
      kernels::dropout_forward(TensorView<const act_t>(probs_), kept_, dropout_, ctx.dropout_key(site_));
    }
    for_each_batch([&](std::size_t b) {
      kernels::gemm_strided_batched(kernels::Trans::N, kernels::Trans::N, s(d.seq), s(d.head_dim()), s(d.seq), 1.0f,
                           kept_.data() + b * per_batch_scores(), s(d.seq), s(d.seq * d.seq), v_.data() + row0(b),
                           s(d.hidden), s(d.head_dim()), 0.0f, context_out.data() + row0(b), s(d.hidden),
                           s(d.head_dim()), s(d.heads));
    });
  }

  // dcontext [B·S, H] act_t; dx [B·S, H] hidden_t: += the input gradient of all three projections.
  void backward(Context<P>& ctx, TensorView<const act_t> dcontext, TensorView<hidden_t> dx) {
    const AttentionDims& d = dims_;
    const Shape scores_shape{d.batch, d.heads, d.seq, d.seq};
    const Shape th{d.tokens(), d.hidden};
    auto dq = ctx.workspace.template allocate<act_t>(th, "dquery");
    auto dk = ctx.workspace.template allocate<act_t>(th, "dkey");
    auto dv = ctx.workspace.template allocate<act_t>(th, "dvalue");
    auto dscores = ctx.workspace.template allocate<act_t>(scores_shape, "dscores");
    // dkept in act_t (bf16: half the bytes of this memory-bound product, and autocast's
    // rounding); with dropout its gradient goes to fp32 dprobs. Without dropout, or when
    // act_t is already fp32, dkept is dprobs.
    TensorView<act_t> dkept;
    TensorView<hidden_t> dprobs;
    if constexpr (separate_dkept) {
      dkept = ctx.workspace.template allocate<act_t>(scores_shape, "dkept");
      if (dropout_active(ctx)) dprobs = ctx.workspace.template allocate<hidden_t>(scores_shape, "dprobs");
    } else {
      dkept = dprobs = ctx.workspace.template allocate<hidden_t>(scores_shape, "dprobs");
    }
    for_each_batch([&](std::size_t b) {
      const std::size_t sc = b * per_batch_scores();
      // dkept [S, S] = dctx_bh [S, d] · V_bhᵀ
      kernels::gemm_strided_batched(kernels::Trans::N, kernels::Trans::T, s(d.seq), s(d.seq), s(d.head_dim()), 1.0f, dcontext.data() + row0(b),
                           s(d.hidden), s(d.head_dim()), v_.data() + row0(b), s(d.hidden), s(d.head_dim()), 0.0f,
                           dkept.data() + sc, s(d.seq), s(d.seq * d.seq), s(d.heads));
      // dV_bh [S, d] = keptᵀ [S, S] · dctx_bh [S, d]
      kernels::gemm_strided_batched(kernels::Trans::T, kernels::Trans::N, s(d.seq), s(d.head_dim()), s(d.seq), 1.0f, kept_.data() + sc, s(d.seq),
                           s(d.seq * d.seq), dcontext.data() + row0(b), s(d.hidden), s(d.head_dim()), 0.0f,
                           dv.data() + row0(b), s(d.hidden), s(d.head_dim()), s(d.heads));
    });
    const double scale = 1.0 / std::sqrt(static_cast<double>(d.head_dim()));
    if (dropout_active(ctx)) {
      kernels::dropout_backward(TensorView<const act_t>(dkept), dprobs, dropout_, ctx.dropout_key(site_));
      kernels::softmax_backward(TensorView<const act_t>(probs_), TensorView<const hidden_t>(dprobs), scale, dscores);
    } else {
      kernels::softmax_backward(TensorView<const act_t>(probs_), TensorView<const act_t>(dkept), scale, dscores);
    }
    for_each_batch([&](std::size_t b) {
      const std::size_t sc = b * per_batch_scores();
      // dQ_bh [S, d] = dscores [S, S] · K_bh [S, d]
      kernels::gemm_strided_batched(kernels::Trans::N, kernels::Trans::N, s(d.seq), s(d.head_dim()), s(d.seq), 1.0f, dscores.data() + sc, s(d.seq),
                           s(d.seq * d.seq), k_.data() + row0(b), s(d.hidden), s(d.head_dim()), 0.0f,
                           dq.data() + row0(b), s(d.hidden), s(d.head_dim()), s(d.heads));
      // dK_bh [S, d] = dscoresᵀ [S, S] · Q_bh [S, d]
      kernels::gemm_strided_batched(kernels::Trans::T, kernels::Trans::N, s(d.seq), s(d.head_dim()), s(d.seq), 1.0f, dscores.data() + sc, s(d.seq),
                           s(d.seq * d.seq), q_.data() + row0(b), s(d.hidden), s(d.head_dim()), 0.0f,
                           dk.data() + row0(b), s(d.hidden), s(d.head_dim()), s(d.heads));
    });
    query_.backward(ctx, TensorView<const act_t>(dq), dx, true);
    key_.backward(ctx, TensorView<const act_t>(dk), dx, true);
    value_.backward(ctx, TensorView<const act_t>(dv), dx, true);
  }

 private:
  static constexpr bool separate_dkept = !std::is_same_v<act_t, hidden_t>;
  static std::size_t s(std::int64_t n) noexcept { return static_cast<std::size_t>(n); }
  std::size_t row0(std::size_t b) const noexcept { return b * s(dims_.seq * dims_.hidden); }
  std::size_t per_batch_scores() const noexcept { return s(dims_.heads * dims_.seq * dims_.seq); }
  template <class F>
  void for_each_batch(F&& f) const {
    for (std::size_t b = 0; b < s(dims_.batch); ++b) f(b);
  }

  Linear<P> query_, key_, value_;
  std::int64_t hidden_ = 0, heads_ = 1;
  float dropout_ = 0.0f;
  std::uint32_t site_ = 0;
  AttentionDims dims_;
  TensorView<act_t> q_, k_, v_, probs_, kept_;
};

}  // namespace mpt::nn
