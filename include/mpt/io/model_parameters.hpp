#pragma once
// Hugging Face folders in and out of a model's nn::Parameters<P>.
//
//   parameter_slots(params, pad_token_id)   slots over the master weights; a missing
//                                           tensor is initialized by its role
//   load_pretrained(dir, params, config)    load_parameters + the compute copy refreshed
//   save_pretrained(dir, config, params, dtype, vocab)   the master weights, HF names
//
// The master weights are what checkpoints hold (fp32 under bf16_mixed), so loading
// a bf16 model rounds once, from the file's values, exactly as autocast would.

#include <mpt/core/error.hpp>
#include <mpt/io/bert_config.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/io/save_pretrained.hpp>
#include <mpt/nn/parameters.hpp>
#include <mpt/policy/precision.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

namespace mpt::io {

// BERT's _init_weights by role: normal(0, initializer_range) for Linear and
// Embedding weights, zeros for biases, LayerNorm weight 1 and bias 0.
inline Init init_for_role(nn::ParamRole role) noexcept {
  switch (role) {
    case nn::ParamRole::linear_weight:
    case nn::ParamRole::embedding: return Init::normal;
    case nn::ParamRole::norm_weight: return Init::ones;
    case nn::ParamRole::linear_bias:
    case nn::ParamRole::norm_bias: return Init::zeros;
  }
  return Init::keep;
}

// One slot per parameter, over its master weights. The word-embedding table (the one
// nn.Embedding built with padding_idx) gets row `pad_token_id` zeroed when initialized.
template <PrecisionPolicy P>
std::vector<ParameterSlot> parameter_slots(nn::Parameters<P>& params, std::int64_t pad_token_id = -1) {
  std::vector<ParameterSlot> slots;
  slots.reserve(params.count());
  for (nn::ParamId id = 0; id < params.count(); ++id) {
    const nn::ParamEntry& e = params.entry(id);
    const bool padded = e.role == nn::ParamRole::embedding && std::string_view(e.name).ends_with("word_embeddings.weight");
    slots.push_back({e.name, params.master(id), init_for_role(e.role), padded ? pad_token_id : -1});
  }
  return slots;
}

// Loads a model folder into `params` (allocated), initializing what the checkpoint
// lacks with config.initializer_range, then refreshes the compute copy.
template <PrecisionPolicy P>
LoadReport load_pretrained(const std::filesystem::path& dir, nn::Parameters<P>& params, const BertConfig& config, LoadOptions options = {}) {
  options.initializer_range = config.initializer_range;
  const std::vector<ParameterSlot> slots = parameter_slots(params, config.pad_token_id);
  LoadReport report = load_parameters(dir, slots, options);
  params.sync_compute_copy();
  return report;
}

template <PrecisionPolicy P>
void save_pretrained(const std::filesystem::path& dir, const BertConfig& config, const nn::Parameters<P>& params, Dtype dtype = Dtype::f32,
                     const std::optional<std::filesystem::path>& vocab = std::nullopt) {
  std::vector<NamedTensor> tensors;
  tensors.reserve(params.count());
  for (nn::ParamId id = 0; id < params.count(); ++id) tensors.push_back({params.entry(id).name, params.master(id)});
  save_pretrained(dir, config, tensors, dtype, vocab);
}

}  // namespace mpt::io
