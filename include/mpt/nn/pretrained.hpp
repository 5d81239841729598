#pragma once
// Hugging Face folders in and out of a model's Parameters<P>.
//
//   parameter_slots(params, pad_token_id)   slots over the master weights; a missing
//                                           tensor is initialized by its role
//   load_pretrained(dir, params, config)    load_parameters + the compute copy refreshed
//   master_tensors(params)                  the true master weights as tensors to write
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
#include <type_traits>
#include <vector>

namespace mpt::nn {

// BERT's _init_weights by role: normal(0, initializer_range) for Linear and
// Embedding weights, zeros for biases, LayerNorm weight 1 and bias 0.
inline io::Init init_for_role(ParamRole role) noexcept {
  switch (role) {
    case ParamRole::linear_weight:
    case ParamRole::embedding: return io::Init::normal;
    case ParamRole::norm_weight: return io::Init::ones;
    case ParamRole::linear_bias:
    case ParamRole::norm_bias: return io::Init::zeros;
  }
  return io::Init::keep;
}

// One slot per parameter, over its master weights. The word-embedding table (the one
// nn.Embedding built with padding_idx) gets row `pad_token_id` zeroed when initialized.
template <PrecisionPolicy P>
std::vector<io::ParameterSlot> parameter_slots(Parameters<P>& params, std::int64_t pad_token_id = -1) {
  if (params.matmul_master_released()) {
    throw_error("loading weights: the model's matmul masters belong to its optimizer now (split master or stochastic "
                "rounding); load the model folder before creating the optimizer or Trainer");
  }
  std::vector<io::ParameterSlot> slots;
  slots.reserve(params.count());
  for (ParamId id = 0; id < params.count(); ++id) {
    const ParamEntry& e = params.entry(id);
    const bool padded = e.role == ParamRole::embedding && std::string_view(e.name).ends_with("word_embeddings.weight");
    slots.push_back({e.name, params.master(id), init_for_role(e.role), padded ? pad_token_id : -1});
  }
  return slots;
}

// Loads a model folder into `params` (allocated), initializing what the checkpoint
// lacks with config.initializer_range, then refreshes the compute copy.
template <PrecisionPolicy P>
io::LoadReport load_pretrained(const std::filesystem::path& dir, Parameters<P>& params, const io::BertConfig& config, io::LoadOptions options = {}) {
  options.initializer_range = config.initializer_range;
  const std::vector<io::ParameterSlot> slots = parameter_slots(params, config.pad_token_id);
  io::LoadReport report = io::load_parameters(dir, slots, options);
  params.sync_compute_copy();
  return report;
}

// The true master weights of every parameter, in declaration order, as tensors to
// save: views where the master is kept here, values read slice by slice where the
// optimizer holds part of it (split master).
template <PrecisionPolicy P>
std::vector<io::NamedTensor> master_tensors(const Parameters<P>& params) {
  std::vector<io::NamedTensor> tensors;
  tensors.reserve(params.count());
  for (ParamId id = 0; id < params.count(); ++id) {
    const ParamEntry& e = params.entry(id);
    if (!params.is_matmul(id) || !params.matmul_master_released()) {
      tensors.push_back({e.name, params.master(id)});
    } else if constexpr (std::is_same_v<typename P::master_t, float>) {
      tensors.push_back({e.name, io::GeneratedTensor{e.shape, [&params, id](std::size_t first, std::span<float> out) {
                                                       params.read_master(id, first, out);
                                                     }}});
    }
  }
  return tensors;
}

template <PrecisionPolicy P>
void save_pretrained(const std::filesystem::path& dir, const io::BertConfig& config, const Parameters<P>& params, io::Dtype dtype = io::Dtype::f32,
                     const std::optional<std::filesystem::path>& vocab = std::nullopt) {
  io::save_pretrained(dir, config, master_tensors(params), dtype, vocab);
}

}  // namespace mpt::nn
