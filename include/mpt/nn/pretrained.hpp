#pragma once
// Hugging Face folders in and out of a model's Parameters<P>.
//
//   bert_qa_load_options()                  BertForQuestionAnswering's loading rules
//   parameter_slots(params, config, seed)   slots over the master weights; a missing
//                                           tensor is initialized by its role (nn/init.hpp)
//   init_weights(params, config, seed)      every parameter initialized, nothing loaded
//   load_pretrained(dir, params, config)    load_parameters + the compute copy refreshed
//   master_tensors(params)                  the true master weights as tensors to write
//   save_pretrained(dir, config, params, dtype, vocab)   the master weights, HF names
//
// The master weights are what checkpoints hold (fp32 under bf16_mixed), so loading
// a bf16 model rounds once, from the file's values, exactly as autocast would.

#include <mpt/core/error.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/nn/bert_config.hpp>
#include <mpt/nn/init.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors.hpp>
#include <mpt/io/save_pretrained.hpp>
#include <mpt/nn/parameters.hpp>
#include <mpt/policy/precision.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <filesystem>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

namespace mpt::nn {

// transformers' rules for BertForQuestionAnswering: base_model_prefix "bert", the
// pooler in _keys_to_ignore_on_load_unexpected, and the position_ids buffer older
// checkpoints carry. `warn` receives the two warnings (nullptr: quiet).
inline io::LoadOptions bert_qa_load_options(std::function<void(const std::string&)> warn = io::warn_to_stderr) {
  io::LoadOptions options;
  options.base_model_prefix = "bert";
  options.model_class = "BertForQuestionAnswering";
  options.expected_unused = {"pooler", "embeddings.position_ids"};
  options.warn = std::move(warn);
  return options;
}

// One slot per parameter, over its master weights, initialized by role with
// config.initializer_range from (seed, name). The word-embedding table (the one
// nn.Embedding built with padding_idx) gets row pad_token_id zeroed.
template <PrecisionPolicy P>
std::vector<io::ParameterSlot> parameter_slots(Parameters<P>& params, const BertConfig& config, std::uint64_t seed) {
  if (params.matmul_master_released()) {
    throw_error(
        "loading weights: the model's matmul masters belong to its optimizer now (split master or stochastic "
        "rounding); load the model folder before creating the optimizer or Trainer");
  }
  std::vector<io::ParameterSlot> slots;
  slots.reserve(params.count());
  for (ParamId id = 0; id < params.count(); ++id) {
    const ParamEntry& e = params.entry(id);
    const bool padded = e.role == ParamRole::embedding && std::string_view(e.name).ends_with("word_embeddings.weight");
    slots.push_back(
        {e.name, params.master(id), initializer(init_for_role(e.role), config.initializer_range, seed, padded ? config.pad_token_id : -1)});
  }
  return slots;
}

// Initializes every parameter as BertPreTrainedModel._init_weights does.
template <PrecisionPolicy P>
void init_weights(Parameters<P>& params, const BertConfig& config, std::uint64_t seed) {
  const std::vector<io::ParameterSlot> slots = parameter_slots(params, config, seed);
  parallel_for(slots.size(), [&](std::size_t k) { slots[k].initialize(slots[k]); });
  params.sync_compute_copy();
}

// Loads a model folder into `params` (allocated), initializing what the checkpoint
// lacks from `seed`, then refreshes the compute copy.
template <PrecisionPolicy P>
io::LoadReport load_pretrained(const std::filesystem::path& dir, Parameters<P>& params, const BertConfig& config,
                               const io::LoadOptions& options = bert_qa_load_options(), std::uint64_t seed = 42) {
  const std::vector<io::ParameterSlot> slots = parameter_slots(params, config, seed);
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
      tensors.push_back(
          {e.name, io::GeneratedTensor{e.shape, [&params, id](std::size_t first, std::span<float> out) { params.read_master(id, first, out); }}});
    }
  }
  return tensors;
}

template <PrecisionPolicy P>
void save_pretrained(const std::filesystem::path& dir, const BertConfig& config, const Parameters<P>& params, io::Dtype dtype = io::Dtype::f32,
                     const std::optional<std::filesystem::path>& vocab = std::nullopt) {
  config.validate("save_pretrained " + dir.string());
  BertConfig saved = config;  // torch_dtype among the sorted keys, as transformers writes it
  saved.extra["torch_dtype"] = dtype == io::Dtype::bf16 ? "bfloat16" : "float32";
  io::save_pretrained(dir, saved.to_json(), master_tensors(params), dtype, vocab);
}

}  // namespace mpt::nn
