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

#include <mpt/core/profile.hpp>
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
  BertSelfAttention(Parameters<P>& params, const std::string& name, std::int64_t hidden, std::int64_t heads, double dropout, std::uint32_t site)
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
    const std::size_t dkept_dprobs = separate_dkept
                                         ? Arena::bytes_for<act_t>(d.score_count()) + (dropout ? Arena::bytes_for<hidden_t>(d.score_count()) : 0)
                                         : Arena::bytes_for<hidden_t>(d.score_count());
    return 3 * Arena::bytes_for<act_t>(th) + dkept_dprobs + Arena::bytes_for<act_t>(d.score_count());
  }

  // x [B·S, H] (kept alive by the caller), mask [B, S], ctx_out [B·S, H].
  void forward(Context<P>& ctx, TensorView<const act_t> x, TensorView<const float> mask, std::int64_t batch, TensorView<act_t> context_out) {
    Arena& saved = ctx.activations;  // lives until backward
    Arena& scratch = ctx.workspace;  // this call only
    dims_ = {batch, static_cast<std::int64_t>(x.size()) / (batch * hidden_), hidden_, heads_};
    const AttentionDims& d = dims_;
    check_shape("BertSelfAttention::forward", "mask", mask.shape(), Shape{d.batch, d.seq});
    const Shape th{d.tokens(), d.hidden};
    q_ = saved.allocate<act_t>(th, "query");
    k_ = saved.allocate<act_t>(th, "key");
    v_ = saved.allocate<act_t>(th, "value");
    {
      MPT_PROFILE("attention QKV (GEMM)");
      query_.forward(ctx, x, q_);
      key_.forward(ctx, x, k_);
      value_.forward(ctx, x, v_);
    }

    const Shape scores_shape{d.batch, d.heads, d.seq, d.seq};
    // Scores in the activation type, as autocast's bf16 matmul returns them (the 1/√d
    // scaling is exact; the mask is added and softmax runs in fp32). Besides being what
    // transformers computes, it halves the bytes of this memory-bound product at S = 384.
    auto scores = scratch.allocate<act_t>(scores_shape, "attention scores");
    {
      MPT_PROFILE("attention scores QK^T (GEMM)");
      for_each_batch([&](std::size_t b) {
        // scores_bh [S, S] = Q_bh [S, d] · K_bhᵀ
        per_head(N, T, d.seq, d.seq, d.head_dim(), heads_of(q_, b), heads_of(k_, b), scores_of(scores, b));
      });
    }
    probs_ = saved.allocate<act_t>(scores_shape, "attention probabilities");
    {
      MPT_PROFILE("attention softmax + dropout");
      kernels::softmax_forward(TensorView<const act_t>(scores), mask, 1.0 / std::sqrt(static_cast<double>(d.head_dim())), probs_);
      kept_ = probs_;
      if (dropout_active(ctx)) {
        kept_ = saved.allocate<act_t>(scores_shape, "attention probabilities after dropout");
        kernels::dropout_forward(TensorView<const act_t>(probs_), kept_, dropout_, ctx.dropout_key(site_));
      }
    }
    MPT_PROFILE("attention context PV (GEMM)");
    for_each_batch([&](std::size_t b) {
      // ctx_bh [S, d] = kept_bh [S, S] · V_bh [S, d]
      per_head(N, N, d.seq, d.head_dim(), d.seq, scores_of(kept_, b), heads_of(v_, b), heads_of(context_out, b));
    });
  }

  // dcontext [B·S, H] act_t; dx [B·S, H] hidden_t: += the input gradient of all three projections.
  void backward(Context<P>& ctx, TensorView<const act_t> dcontext, TensorView<hidden_t> dx) {
    Arena& scratch = ctx.workspace;  // this call only
    const AttentionDims& d = dims_;
    const Shape scores_shape{d.batch, d.heads, d.seq, d.seq};
    const Shape th{d.tokens(), d.hidden};
    auto dq = scratch.allocate<act_t>(th, "dquery");
    auto dk = scratch.allocate<act_t>(th, "dkey");
    auto dv = scratch.allocate<act_t>(th, "dvalue");
    auto dscores = scratch.allocate<act_t>(scores_shape, "dscores");
    // dkept in act_t (bf16: half the bytes of this memory-bound product, and autocast's
    // rounding); with dropout its gradient goes to fp32 dprobs. Without dropout, or when
    // act_t is already fp32, dkept is dprobs.
    TensorView<act_t> dkept;
    TensorView<hidden_t> dprobs;
    if constexpr (separate_dkept) {
      dkept = scratch.allocate<act_t>(scores_shape, "dkept");
      if (dropout_active(ctx)) dprobs = scratch.allocate<hidden_t>(scores_shape, "dprobs");
    } else {
      dkept = dprobs = scratch.allocate<hidden_t>(scores_shape, "dprobs");
    }
    {
      MPT_PROFILE("attention dkept, dV (GEMM)");
      for_each_batch([&](std::size_t b) {
        // dkept_bh [S, S] = dctx_bh [S, d] · V_bhᵀ
        per_head(N, T, d.seq, d.seq, d.head_dim(), heads_of(dcontext, b), heads_of(v_, b), scores_of(dkept, b));
        // dV_bh [S, d] = kept_bhᵀ [S, S] · dctx_bh [S, d]
        per_head(T, N, d.seq, d.head_dim(), d.seq, scores_of(kept_, b), heads_of(dcontext, b), heads_of(dv, b));
      });
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(d.head_dim()));
    {
      MPT_PROFILE("attention softmax + dropout");
      if (dropout_active(ctx)) {
        kernels::dropout_backward(TensorView<const act_t>(dkept), dprobs, dropout_, ctx.dropout_key(site_));
        kernels::softmax_backward(TensorView<const act_t>(probs_), TensorView<const hidden_t>(dprobs), scale, dscores);
      } else {
        kernels::softmax_backward(TensorView<const act_t>(probs_), TensorView<const act_t>(dkept), scale, dscores);
      }
    }
    {
      MPT_PROFILE("attention dQ, dK (GEMM)");
      for_each_batch([&](std::size_t b) {
        // dQ_bh [S, d] = dscores_bh [S, S] · K_bh [S, d]
        per_head(N, N, d.seq, d.head_dim(), d.seq, scores_of(dscores, b), heads_of(k_, b), heads_of(dq, b));
        // dK_bh [S, d] = dscores_bhᵀ [S, S] · Q_bh [S, d]
        per_head(T, N, d.seq, d.head_dim(), d.seq, scores_of(dscores, b), heads_of(q_, b), heads_of(dk, b));
      });
    }
    MPT_PROFILE("attention QKV");
    query_.backward(ctx, dq, dx, true);
    key_.backward(ctx, dk, dx, true);
    value_.backward(ctx, dv, dx, true);
  }

 private:
  static constexpr bool separate_dkept = !std::is_same_v<act_t, hidden_t>;
  static constexpr kernels::Trans N = kernels::Trans::N, T = kernels::Trans::T;
  static std::size_t s(std::int64_t n) noexcept { return static_cast<std::size_t>(n); }

  // The `heads` matrices of one batch item, for one strided-batched GEMM: matrix h
  // starts at data + h * stride, with leading dimension ld.
  template <class E>
  struct Heads {
    E* data;
    std::size_t ld, stride;
  };
  // Item b of a [B·S, H] tensor: head h is the [S, d] block of columns h·d .. h·d+d.
  template <class E>
  Heads<E> heads_of(TensorView<E> t, std::size_t b) const noexcept {
    return {t.data() + b * s(dims_.seq * dims_.hidden), s(dims_.hidden), s(dims_.head_dim())};
  }
  // Item b of a [B, heads, S, S] tensor: head h is the [S, S] block h.
  template <class E>
  Heads<E> scores_of(TensorView<E> t, std::size_t b) const noexcept {
    return {t.data() + b * s(dims_.heads * dims_.seq * dims_.seq), s(dims_.seq), s(dims_.seq * dims_.seq)};
  }
  // C_h [m, n] = op(A_h) · op(B_h) for every head h of one item (C overwritten).
  template <class EA, class EB, class EC>
  void per_head(kernels::Trans ta, kernels::Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, Heads<EA> a, Heads<EB> b, Heads<EC> c) const {
    kernels::gemm_strided_batched(ta, tb, s(m), s(n), s(k), 1.0f, static_cast<const std::remove_const_t<EA>*>(a.data), a.ld, a.stride,
                                  static_cast<const std::remove_const_t<EB>*>(b.data), b.ld, b.stride, 0.0f, c.data, c.ld, c.stride, s(dims_.heads));
  }
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
