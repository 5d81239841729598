// The README's example: build BERT-QA under a precision policy, load a
// Hugging Face model folder, run forward and backward on one batch, read the
// loss and the gradients, and take an AdamW step on them.
//
//   bert_forward_backward MODEL_FOLDER      (config.json + model.safetensors)
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL_FOLDER\n", argv[0]);
    return 2;
  }
  try {
    using Policy = mpt::precision::bf16_mixed;  // or fp32, fp64
    const auto config = mpt::nn::BertConfig::from_json_file(std::filesystem::path(argv[1]) / "config.json");
    mpt::nn::BertForQuestionAnswering<Policy> model(config);
    model.load_pretrained(argv[1]);  // warns about unused / newly initialized tensors, as transformers does

    // One batch of 2 features of 8 tokens: [CLS] question [SEP] context [SEP] [PAD]...
    constexpr std::int64_t batch = 2, seq = 8;
    mpt::Tensor<std::int32_t> input_ids(mpt::Shape{batch, seq}), token_type_ids(mpt::Shape{batch, seq}), attention_mask(mpt::Shape{batch, seq}),
        start_positions(mpt::Shape{batch}), end_positions(mpt::Shape{batch});
    const std::int32_t ids[batch][seq] = {{2, 40, 41, 3, 50, 51, 52, 3}, {2, 42, 3, 60, 61, 3, 0, 0}};
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t s = 0; s < seq; ++s) {
        input_ids(b, s) = ids[b][s];
        attention_mask(b, s) = ids[b][s] != 0;
        token_type_ids(b, s) = s >= (b == 0 ? 4 : 3) && ids[b][s] != 0;
      }
    }
    start_positions[0] = 4, end_positions[0] = 5;  // the answer spans context tokens 4..5
    start_positions[1] = 3, end_positions[1] = 4;
    const mpt::nn::QaBatch inputs{input_ids.view(), token_type_ids.view(), attention_mask.view(), start_positions.view(), end_positions.view()};

    model.reserve(batch, seq, /*training=*/true);  // sizes the activation arenas once
    const auto out = model.forward(inputs, {.training = true, .seed = 42, .forward_index = 0});
    model.backward();  // accumulates d loss / d parameter into the fp32 gradients

    auto& params = model.parameters();
    double norm2 = 0;
    for (float g : params.grad_flat()) norm2 += double(g) * double(g);
    const auto* qa = params.find("qa_outputs.weight");
    std::printf("loss %.6f, start logit [0][4] %.4f, gradient L2 norm %.6f over %zu tensors (%zu values)\n", out.loss,
                static_cast<double>(out.start_logits(0, 4)), std::sqrt(norm2), params.count(), params.numel());
    std::printf("qa_outputs.weight %s, first gradient %.6e\n", qa->shape.to_string().c_str(), static_cast<double>(params.grad_flat()[qa->offset]));
    // One optimizer step: AdamW over the model's flat buffers (fp32 master, bf16 copy
    // rewritten in the same pass), gradients clipped to norm 1, as transformers' Trainer.
    auto adamw = mpt::train::make_adamw(params, {.lr = 1e-3, .weight_decay = 0.01});
    mpt::optim::NoLossScaling no_scaling;  // bf16 needs none
    const auto step = mpt::optim::clip_and_step(adamw, no_scaling, params.grad_flat(), 1e-3, 1.0);
    params.zero_grad();
    const auto after = model.forward(inputs, {.training = false});
    std::printf("AdamW step: gradient norm %.4f, loss %.6f -> %.6f\n", step.grad_norm, out.loss, after.loss);

    const auto mem = model.memory();
    std::printf("memory: parameters %zu B, gradients %zu B, activations %zu B\n", mem.parameters, mem.gradients, mem.activations);
    return std::isfinite(out.loss) && after.loss < out.loss ? 0 : 1;
  } catch (const mpt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
