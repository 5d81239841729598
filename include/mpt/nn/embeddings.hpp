#pragma once
// BertEmbeddings<P>: word + token type + position embeddings, LayerNorm,
// dropout, as transformers' BertEmbeddings (absolute positions 0..S-1).
//
//   ids, token types [B, S] int32 ─▶ word[ids] + type[types] + position[s] ─▶ LayerNorm ─▶ dropout ─▶ out [B·S, H]
//
// Lookups read the master tables and everything runs in the accumulation type
// (autocast leaves embeddings and LayerNorm in fp32). As nn.Embedding with
// padding_idx, the padding token's row receives no gradient.

#include <mpt/kernels/dropout.hpp>
#include <mpt/kernels/embedding.hpp>
#include <mpt/kernels/residual.hpp>
#include <mpt/nn/layer_norm.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace mpt::nn {

struct EmbeddingConfig {
  std::int64_t vocab = 0, max_positions = 0, token_types = 0, hidden = 0, pad_token = 0;
  double dropout = 0.1, eps = 1e-12;
};

template <PrecisionPolicy P>
class BertEmbeddings {
 public:
  using hidden_t = typename P::accum_t;

  BertEmbeddings() = default;
  // name: "bert.embeddings"; dropout stream id 0.
  BertEmbeddings(Parameters<P>& params, const std::string& name, const EmbeddingConfig& config)
      : config_(config), pad_row_copy_(static_cast<std::size_t>(config.hidden)) {
    if (config.pad_token < 0 || config.pad_token >= config.vocab) {
      throw_error(name, ": pad_token_id ", config.pad_token, " is outside the vocabulary of ", config.vocab);
    }
    word_ = params.declare(name + ".word_embeddings.weight", Shape{config.vocab, config.hidden}, ParamRole::embedding);
    position_ = params.declare(name + ".position_embeddings.weight", Shape{config.max_positions, config.hidden}, ParamRole::embedding);
    token_type_ = params.declare(name + ".token_type_embeddings.weight", Shape{config.token_types, config.hidden}, ParamRole::embedding);
    norm_ = LayerNorm<P>(params, name + ".LayerNorm", config.hidden, config.eps);
  }

  ParamId word_id() const noexcept { return word_; }
  ParamId position_id() const noexcept { return position_; }
  ParamId token_type_id() const noexcept { return token_type_; }

  static std::size_t saved_bytes(std::int64_t batch, std::int64_t seq, std::int64_t hidden) {
    const auto t = static_cast<std::size_t>(batch * seq);
    return Arena::bytes_for<std::int32_t>(t) + Arena::bytes_for<hidden_t>(t * static_cast<std::size_t>(hidden)) +
           LayerNorm<P>::saved_bytes(batch * seq);
  }
  static std::size_t workspace_bytes(std::int64_t batch, std::int64_t seq, std::int64_t hidden) {
    return 2 * Arena::bytes_for<hidden_t>(static_cast<std::size_t>(batch * seq * hidden));
  }

  // ids, token_types [B, S]; out [B·S, H].
  void forward(Context<P>& ctx, TensorView<const std::int32_t> ids, TensorView<const std::int32_t> token_types, TensorView<hidden_t> out) {
    Arena& saved = ctx.activations;  // lives until backward
    Arena& scratch = ctx.workspace;  // this call only
    ctx.workspace.reset();
    const std::int64_t batch = ids.dim(0), seq = ids.dim(1);
    check_shape("BertEmbeddings::forward", "token_type_ids", token_types.shape(), ids.shape());
    if (seq > config_.max_positions) {
      throw_error("BertEmbeddings: sequence length ", seq, " exceeds max_position_embeddings ", config_.max_positions,
                  " of the model; use a max_seq_length of at most ", config_.max_positions);
    }
    ids_ = ids;
    token_types_ = token_types;
    positions_ = saved.allocate<std::int32_t>(Shape{batch, seq}, "position ids");
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t s = 0; s < seq; ++s) positions_(b, s) = static_cast<std::int32_t>(s);

    const Shape th{batch * seq, config_.hidden};
    sum_ = saved.allocate<hidden_t>(th, "embedding sum");
    auto part = scratch.allocate<hidden_t>(th, "embedding lookup");
    const auto& params = ctx.params;
    const Shape bsh{batch, seq, config_.hidden};  // the lookups' view of [B·S, H]
    kernels::embedding_forward(ids, params.master(word_), sum_.reshape(bsh));
    kernels::embedding_forward(token_types, params.master(token_type_), part.reshape(bsh));
    kernels::residual_add(TensorView<const hidden_t>(sum_), TensorView<const hidden_t>(part), sum_);
    kernels::embedding_forward(TensorView<const std::int32_t>(positions_), params.master(position_), part.reshape(bsh));
    kernels::residual_add(TensorView<const hidden_t>(sum_), TensorView<const hidden_t>(part), sum_);

    auto normed = scratch.allocate<hidden_t>(th, "embedding LayerNorm output");
    norm_.forward(ctx, sum_, normed);
    kernels::dropout_forward(TensorView<const hidden_t>(normed), out, rate(ctx), ctx.dropout_key(0));
  }

  void backward(Context<P>& ctx, TensorView<const hidden_t> dout) {
    Arena& scratch = ctx.workspace;  // this call only
    ctx.workspace.reset();
    auto dnormed = scratch.allocate<hidden_t>(dout.shape(), "dembedding LayerNorm output");
    kernels::dropout_backward(dout, dnormed, rate(ctx), ctx.dropout_key(0));
    auto dsum = scratch.allocate<hidden_t>(dout.shape(), "dembedding sum");
    norm_.backward(ctx, dnormed, dsum);

    // The padding row keeps its gradient unchanged (nn.Embedding(padding_idx)).
    auto dword = ctx.params.grad(word_);
    hidden_t* pad_row = dword.data() + config_.pad_token * config_.hidden;
    std::copy(pad_row, pad_row + config_.hidden, pad_row_copy_.begin());
    const Shape bsh{ids_.dim(0), ids_.dim(1), config_.hidden};
    const auto dsum_bsh = TensorView<const hidden_t>(dsum.reshape(bsh));
    kernels::embedding_backward(ids_, dsum_bsh, dword);
    std::copy(pad_row_copy_.begin(), pad_row_copy_.end(), pad_row);
    kernels::embedding_backward(token_types_, dsum_bsh, ctx.params.grad(token_type_));
    kernels::embedding_backward(TensorView<const std::int32_t>(positions_), dsum_bsh, ctx.params.grad(position_));
  }

 private:
  float rate(const Context<P>& ctx) const noexcept { return ctx.training ? static_cast<float>(config_.dropout) : 0.0f; }

  EmbeddingConfig config_;
  ParamId word_ = 0, position_ = 0, token_type_ = 0;
  LayerNorm<P> norm_;
  TensorView<const std::int32_t> ids_, token_types_;
  TensorView<std::int32_t> positions_;
  TensorView<hidden_t> sum_;
  std::vector<hidden_t> pad_row_copy_;  // sized once: no allocation in a step
};

}  // namespace mpt::nn
