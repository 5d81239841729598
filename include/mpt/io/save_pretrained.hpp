#pragma once
// save_pretrained: a model folder that transformers' from_pretrained loads.
//
//   <dir>/model.safetensors   the named tensors in F32 or BF16, __metadata__ {"format": "pt"}
//   <dir>/config.json         the model's config JSON, torch_dtype set to the saved dtype
//   <dir>/vocab.txt           copied when a vocabulary file is given
// Every file is written atomically; the folder is created when missing. The model
// supplies its config (nn::BertConfig::to_json()); this file knows no model.

#include <mpt/core/error.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/load_parameters.hpp>
#include <mpt/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace mpt::io {

// The parameters of a model as tensors to save (same names, read-only views).
inline std::vector<NamedTensor> named_tensors(std::span<const ParameterSlot> slots) {
  std::vector<NamedTensor> out;
  out.reserve(slots.size());
  for (const ParameterSlot& s : slots) {
    out.push_back({s.name, std::visit([](auto v) -> TensorSource { return TensorView<const typename decltype(v)::value_type>(v); }, s.data)});
  }
  return out;
}

inline void save_pretrained(const std::filesystem::path& dir, const nlohmann::ordered_json& config, std::span<const NamedTensor> tensors,
                            Dtype dtype = Dtype::f32, const std::optional<std::filesystem::path>& vocab = std::nullopt) {
  if (dtype != Dtype::f32 && dtype != Dtype::bf16) {
    throw_error("save_pretrained ", dir, ": dtype ", dtype_name(dtype), " is not offered; save F32 or BF16");
  }
  if (!config.is_object()) throw_error("save_pretrained ", dir, ": the config must be a JSON object, not ", config.type_name());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw_error("save_pretrained: cannot create the folder ", dir, ": ", ec.message());
  save_safetensors(dir / "model.safetensors", tensors, dtype, {{"format", "pt"}});
  nlohmann::ordered_json saved = config;
  saved["torch_dtype"] = dtype == Dtype::bf16 ? "bfloat16" : "float32";
  write_file_atomic(dir / "config.json", saved.dump(2) + "\n");
  if (vocab) {
    const std::vector<std::byte> bytes = read_file(*vocab);
    write_file_atomic(dir / "vocab.txt", bytes);
  }
}

}  // namespace mpt::io
