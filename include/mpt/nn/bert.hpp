#pragma once
// BertModel<P> (embeddings + N encoder layers, no pooler) and
// BertForQuestionAnswering<P> (qa_outputs → start/end logits, span loss),
// as transformers defines them, under a precision policy:
//
//   fp32        the reference; matches PyTorch fp32 to summation order
//   bf16_mixed  torch.autocast("cpu", bfloat16): bf16 matmul operands, fp32
//               accumulation, residual stream, LayerNorm, softmax math and loss
//   fp64        the same code in double, for finite-difference gradient checks
//
// Parameters carry Hugging Face names and live in one Parameters<P>; one
// step's activations live in two arenas sized by reserve(batch, seq), so a
// training step allocates nothing.
//
//   BertForQuestionAnswering<P> model(config);
//   model.load_pretrained("bert-base-uncased/");      // or init_weights(seed)
//   model.reserve(batch, seq, /*training=*/true);
//   QaOutput out = model.forward(batch_tensors, {.training = true, .seed = 42, .forward_index = 0});
//   model.backward();                                  // grads += d loss / d params

#include <mpt/core/profile.hpp>
#include <mpt/core/system_memory.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/save_pretrained.hpp>
#include <mpt/kernels/cross_entropy.hpp>
#include <mpt/nn/bert_config.hpp>
#include <mpt/nn/bert_layer.hpp>
#include <mpt/nn/embeddings.hpp>
#include <mpt/nn/pretrained.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mpt::nn {

// One batch of question-answering features, int32 as the tokenizer makes them.
struct QaBatch {
  TensorView<const std::int32_t> input_ids;        // [B, S]
  TensorView<const std::int32_t> token_type_ids;   // [B, S]
  TensorView<const std::int32_t> attention_mask;   // [B, S], 1 = token, 0 = padding
  TensorView<const std::int32_t> start_positions;  // [B], or empty: no loss
  TensorView<const std::int32_t> end_positions;    // [B], or empty
  bool has_labels() const noexcept { return start_positions.data() != nullptr; }
};

struct StepOptions {
  bool training = false;   // dropout on
  std::uint64_t seed = 0;  // dropout stream
  // Counts the forwards of a run (every micro-batch of a step is one): each forward
  // draws its own dropout masks, and backward regenerates that forward's masks.
  // The Trainer keeps this counter and saves it in checkpoints.
  std::uint32_t forward_index = 0;
  // Inference over many batches with unchanged weights (evaluation): pack each Linear
  // weight once and reuse it (release_packed_weights() frees the copies).
  bool reuse_packed_weights = false;
};

template <class T>
struct QaOutput {
  TensorView<const T> start_logits;                        // [B, S]
  TensorView<const T> end_logits;                          // [B, S]
  double loss = std::numeric_limits<double>::quiet_NaN();  // NaN without labels
};

struct MemoryReport {
  std::size_t parameters = 0;  // master (+ compute copy) bytes
  std::size_t gradients = 0;
  std::size_t activations = 0;  // saved activations + workspace for the reserved shape
};

template <PrecisionPolicy P>
class BertForQuestionAnswering {
 public:
  using policy = P;
  using act_t = typename P::act_t;
  using hidden_t = typename P::accum_t;
  static_assert(!std::is_same_v<typename P::param_t, Eigen::half>,
                "BertForQuestionAnswering<fp16_mixed> is not available: mpt's GEMM has fp32, bf16 and fp64 kernels and no fp16 "
                "ones; train with precision::bf16_mixed (same memory, fp32's range, no loss scaling)");
  static_assert(std::is_same_v<typename P::master_t, hidden_t>,
                "BertForQuestionAnswering runs under precision::fp32, bf16_mixed or fp64: the master weights must be in "
                "the accumulation type (pure bf16 training without masters is not wired into the model yet)");

  explicit BertForQuestionAnswering(const BertConfig& config) : config_(config) {
    config_.validate("BertForQuestionAnswering");
    if (config_.hidden_act != "gelu") {
      throw_error("BertForQuestionAnswering: hidden_act \"", config_.hidden_act, "\" is not supported; mpt implements \"gelu\" (erf)");
    }
    embeddings_ = BertEmbeddings<P>(params_, "bert.embeddings",
                                    {config_.vocab_size, config_.max_position_embeddings, config_.type_vocab_size, config_.hidden_size,
                                     config_.pad_token_id, config_.hidden_dropout_prob, config_.layer_norm_eps});
    layers_.reserve(static_cast<std::size_t>(config_.num_hidden_layers));
    for (std::int64_t l = 0; l < config_.num_hidden_layers; ++l) {
      layers_.emplace_back(params_, "bert.encoder.layer." + std::to_string(l), layer_config(), static_cast<std::uint32_t>(l));
    }
    qa_outputs_ = Linear<P>(params_, "qa_outputs", config_.hidden_size, 2);
    params_.allocate();
  }

  const BertConfig& config() const noexcept { return config_; }
  Parameters<P>& parameters() noexcept { return params_; }
  const Parameters<P>& parameters() const noexcept { return params_; }

  // ---- weights -----------------------------------------------------------

  // Every parameter as a slot for io::load_parameters, pointing at the master
  // weights, with BERT's initialization.
  std::vector<io::ParameterSlot> parameter_slots(std::uint64_t seed = 42) { return nn::parameter_slots(params_, config_, seed); }

  // Loads a Hugging Face model folder, as from_pretrained: legacy names, the
  // base-model prefix rule, missing tensors initialized as BERT does, both
  // lists reported (the pooler is expected to be unused, as transformers says) to
  // `warn` (nullptr: quiet); the new tensors are drawn from `seed`.
  io::LoadReport load_pretrained(const std::filesystem::path& folder, std::function<void(const std::string&)> warn = io::warn_to_stderr,
                                 std::uint64_t seed = 42) {
    return nn::load_pretrained(folder, params_, config_, bert_qa_load_options(std::move(warn)), seed);
  }

  // Initializes every parameter as BertPreTrainedModel._init_weights does.
  void init_weights(std::uint64_t seed) { nn::init_weights(params_, config_, seed); }

  // Writes model.safetensors + config.json (+ vocab.txt) that transformers loads.
  void save_pretrained(const std::filesystem::path& folder, io::Dtype dtype = io::Dtype::f32,
                       const std::optional<std::filesystem::path>& vocab = std::nullopt) const {
    nn::save_pretrained(folder, config_, params_, dtype, vocab);
  }

  // ---- memory --------------------------------------------------------------

  std::size_t activation_bytes(std::int64_t batch, std::int64_t seq, bool training) const {
    const std::int64_t t = batch * seq;
    const auto th = static_cast<std::size_t>(t * config_.hidden_size);
    std::size_t bytes = Arena::bytes_for<float>(static_cast<std::size_t>(t))  // additive mask
                        + BertEmbeddings<P>::saved_bytes(batch, seq, config_.hidden_size) +
                        Arena::bytes_for<hidden_t>(th) * static_cast<std::size_t>(1 + config_.num_hidden_layers);
    bytes += static_cast<std::size_t>(config_.num_hidden_layers) * BertLayer<P>::saved_bytes(layer_config(), batch, seq, training);
    bytes += detail::matmul_input_bytes<act_t, hidden_t>(th)                        // last hidden as qa_outputs input
             + Arena::bytes_for<hidden_t>(static_cast<std::size_t>(2 * t))          // logits
             + 2 * Arena::bytes_for<hidden_t>(static_cast<std::size_t>(t))          // start, end logits
             + 2 * Arena::bytes_for<std::int32_t>(static_cast<std::size_t>(batch))  // clamped positions
             + 2 * Arena::bytes_for<hidden_t>(th);                                  // hidden gradients (ping-pong)
    return bytes;
  }
  std::size_t workspace_bytes(std::int64_t batch, std::int64_t seq) const {
    const std::int64_t t = batch * seq;
    const std::size_t head = Arena::bytes_for<act_t>(static_cast<std::size_t>(2 * t)) + 2 * Arena::bytes_for<hidden_t>(static_cast<std::size_t>(t));
    return std::max(
        {BertEmbeddings<P>::workspace_bytes(batch, seq, config_.hidden_size), BertLayer<P>::workspace_bytes(layer_config(), batch, seq), head});
  }

  // Sizes the arenas for batches up to [batch, seq]; call before the loop. A shape whose
  // arenas cannot fit in the memory left is refused here, before anything is allocated
  // (a grown arena is allocated before the smaller one is freed).
  void reserve(std::int64_t batch, std::int64_t seq, bool training) {
    const std::size_t activations = activation_bytes(batch, seq, training), workspace = workspace_bytes(batch, seq);
    const std::size_t more = (activations > activations_.capacity() ? activations : 0) + (workspace > workspace_.capacity() ? workspace : 0);
    if (more > 0) {
      check_memory_fits(more,
                        "BertForQuestionAnswering: a " + std::string(training ? "training" : "inference") + " step on batch " +
                            std::to_string(batch) + " x sequence " + std::to_string(seq) + " (saved activations " + human_bytes_gib(activations) +
                            ", workspace " + human_bytes_gib(workspace) + ")",
                        "lower the batch size or the sequence length (gradient accumulation keeps the effective batch)");
    }
    activations_.reserve(activations);
    workspace_.reserve(workspace);
  }

  MemoryReport memory() const {
    return {params_.master_bytes() + params_.compute_bytes(), params_.grad_bytes(), activations_.capacity() + workspace_.capacity()};
  }
  const Arena& activation_arena() const noexcept { return activations_; }
  const Arena& workspace_arena() const noexcept { return workspace_; }

  // ---- forward / backward -----------------------------------------------

  QaOutput<hidden_t> forward(const QaBatch& batch, const StepOptions& options) {
    const std::int64_t b = batch.input_ids.dim(0), s = batch.input_ids.dim(1), h = config_.hidden_size;
    check_shape("BertForQuestionAnswering::forward", "attention_mask", batch.attention_mask.shape(), Shape{b, s});
    if (activations_.capacity() < activation_bytes(b, s, options.training) || workspace_.capacity() < workspace_bytes(b, s)) {
      reserve(b, s, options.training);  // first call, or a larger batch than reserved
    }
    activations_.reset();
    workspace_.reset();
    ctx_.emplace(Context<P>{params_, activations_, workspace_, options.training, options.seed, options.forward_index,
                            options.reuse_packed_weights ? &packed_ : nullptr});
    Context<P>& ctx = *ctx_;
    batch_ = b;
    seq_ = s;

    // (1 - mask) * finfo(float32).min, as transformers' extended attention mask.
    mask_ = activations_.allocate<float>(Shape{b, s}, "additive attention mask");
    for (std::size_t i = 0; i < mask_.size(); ++i) {
      mask_[i] = batch.attention_mask[i] != 0 ? 0.0f : std::numeric_limits<float>::lowest();
    }
    const Shape th{b * s, h};
    hidden_.assign(1, activations_.allocate<hidden_t>(th, "embeddings output"));
    {
      MPT_PROFILE("embeddings + LayerNorm");
      embeddings_.forward(ctx, batch.input_ids, batch.token_type_ids, hidden_[0]);
    }
    for (auto& layer : layers_) {
      hidden_.push_back(activations_.allocate<hidden_t>(th, "encoder layer output"));
      layer.forward(ctx, hidden_[hidden_.size() - 2], mask_, b, hidden_.back());
    }

    // qa_outputs: logits [B·S, 2] → start [B, S], end [B, S].
    MPT_PROFILE("QA head + loss");
    workspace_.reset();
    const auto last = detail::as_matmul_input<act_t>(activations_, TensorView<const hidden_t>(hidden_.back()), "last hidden state as matmul input");
    auto logits = activations_.allocate<hidden_t>(Shape{b * s, 2}, "qa logits");
    qa_outputs_.forward(ctx, last, logits);
    start_ = activations_.allocate<hidden_t>(Shape{b, s}, "start logits");
    end_ = activations_.allocate<hidden_t>(Shape{b, s}, "end logits");
    for (std::size_t t = 0; t < start_.size(); ++t) {
      start_[t] = logits[2 * t];
      end_[t] = logits[2 * t + 1];
    }
    mpt::detail::equalize_scratch();  // every arena slot holds the largest kernel scratch now: later steps allocate nothing
    QaOutput<hidden_t> out{start_, end_};
    has_labels_ = batch.has_labels();
    if (has_labels_) {
      check_shape("BertForQuestionAnswering::forward", "start_positions", batch.start_positions.shape(), Shape{b});
      check_shape("BertForQuestionAnswering::forward", "end_positions", batch.end_positions.shape(), Shape{b});
      // Positions outside the sequence are clamped to S and ignored, as transformers does.
      start_targets_ = activations_.allocate<std::int32_t>(Shape{b}, "start targets");
      end_targets_ = activations_.allocate<std::int32_t>(Shape{b}, "end targets");
      const auto clamp = [s](std::int32_t p) { return std::clamp<std::int32_t>(p, 0, static_cast<std::int32_t>(s)); };
      for (std::int64_t i = 0; i < b; ++i) {
        start_targets_[static_cast<std::size_t>(i)] = clamp(batch.start_positions[static_cast<std::size_t>(i)]);
        end_targets_[static_cast<std::size_t>(i)] = clamp(batch.end_positions[static_cast<std::size_t>(i)]);
      }
      const auto ignore = static_cast<std::int32_t>(s);
      const double start_loss = static_cast<double>(
          kernels::cross_entropy_forward(TensorView<const hidden_t>(start_), TensorView<const std::int32_t>(start_targets_), ignore));
      const double end_loss =
          static_cast<double>(kernels::cross_entropy_forward(TensorView<const hidden_t>(end_), TensorView<const std::int32_t>(end_targets_), ignore));
      out.loss = (start_loss + end_loss) / 2;
    }
    return out;
  }

  // Backward of the last forward's loss times `loss_multiplier`: every gradient +=
  // loss_multiplier * d loss / d parameter. The multiplier carries what scales the
  // loss before backward: 1/n for n accumulated micro-batches, a loss scale.
  void backward(double loss_multiplier = 1.0) {
    if (!ctx_ || !has_labels_) {
      throw_error("BertForQuestionAnswering::backward: call forward with start_positions and end_positions first");
    }
    Context<P>& ctx = *ctx_;
    const std::int64_t b = batch_, s = seq_, h = config_.hidden_size;
    const auto ignore = static_cast<std::int32_t>(s);
    profile::Region head_region("QA head + loss");
    workspace_.reset();
    auto dstart = workspace_.allocate<hidden_t>(Shape{b, s}, "dstart logits");
    auto dend = workspace_.allocate<hidden_t>(Shape{b, s}, "dend logits");
    // loss = (start + end) / 2
    const double dloss = 0.5 * loss_multiplier;
    kernels::cross_entropy_backward(TensorView<const hidden_t>(start_), TensorView<const std::int32_t>(start_targets_), ignore, dloss, dstart);
    kernels::cross_entropy_backward(TensorView<const hidden_t>(end_), TensorView<const std::int32_t>(end_targets_), ignore, dloss, dend);
    auto dlogits = workspace_.allocate<act_t>(Shape{b * s, 2}, "dlogits");
    for (std::size_t t = 0; t < dstart.size(); ++t) {
      dlogits[2 * t] = static_cast<act_t>(dstart[t]);
      dlogits[2 * t + 1] = static_cast<act_t>(dend[t]);
    }
    const Shape th{b * s, h};
    // Two buffers in turn: the gradient of a layer's output, and of its input.
    TensorView<hidden_t> dout = activations_.allocate<hidden_t>(th, "hidden gradient");
    TensorView<hidden_t> din = activations_.allocate<hidden_t>(th, "hidden gradient");
    qa_outputs_.backward(ctx, dlogits, dout, false);
    gradients_ready(qa_outputs_.weight_id());
    head_region.end();
    for (std::size_t l = layers_.size(); l-- > 0;) {
      layers_[l].backward(ctx, dout, din);
      gradients_ready(layers_[l].first_weight_id());
      std::swap(dout, din);
    }
    {
      MPT_PROFILE("embeddings + LayerNorm");
      embeddings_.backward(ctx, dout);
    }
    mpt::detail::equalize_scratch();
  }

  // Called during backward with an offset of the flat gradient buffer: the gradients at
  // and after it are final for this backward (the matmul parameters of the layers done
  // so far). Data-parallel training starts their all-reduce while backward goes on.
  void on_gradients_ready(std::function<void(std::size_t offset)> callback) { gradients_ready_ = std::move(callback); }

  // Frees the weights packed for reuse_packed_weights.
  void release_packed_weights() { packed_.clear(); }

  // Hidden states of the last forward: [0] the embeddings output, [l] layer l's output.
  std::span<const TensorView<hidden_t>> hidden_states() const noexcept { return hidden_; }

 private:
  void gradients_ready(ParamId first_final) {
    if (gradients_ready_) gradients_ready_(params_.entry(first_final).offset);
  }

  BertLayerConfig layer_config() const noexcept {
    return {config_.hidden_size,         config_.num_attention_heads,          config_.intermediate_size,
            config_.hidden_dropout_prob, config_.attention_probs_dropout_prob, config_.layer_norm_eps};
  }

  BertConfig config_;
  Parameters<P> params_;
  BertEmbeddings<P> embeddings_;
  std::vector<BertLayer<P>> layers_;
  Linear<P> qa_outputs_;

  Arena activations_, workspace_;
  PackedWeightCache<P> packed_;
  std::function<void(std::size_t)> gradients_ready_;
  std::optional<Context<P>> ctx_;
  std::int64_t batch_ = 0, seq_ = 0;
  bool has_labels_ = false;
  TensorView<float> mask_;
  std::vector<TensorView<hidden_t>> hidden_;
  TensorView<hidden_t> start_, end_;
  TensorView<std::int32_t> start_targets_, end_targets_;
};

}  // namespace mpt::nn
