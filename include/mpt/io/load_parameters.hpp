#pragma once
// Loading a Hugging Face checkpoint into a model's parameters, as
// `from_pretrained` does.
//
// The model lists its parameters as slots named as in transformers
// ("bert.encoder.layer.0.attention.self.query.weight", "qa_outputs.bias") and
// load_parameters fills them from a model folder (model.safetensors, or
// model.safetensors.index.json and its shards) or from open safetensors files:
//   - legacy names match: "LayerNorm.gamma" / "LayerNorm.beta" are "LayerNorm.weight" / ".bias";
//   - a checkpoint of the base model (names without "bert.") loads into a model that
//     has the prefix, and the other way round (transformers' base_model_prefix rule);
//   - tensors convert from the file dtype (F32, BF16, F16, F64) to the slot's;
//   - a shape mismatch is an error naming the tensor and both shapes;
//   - slots the checkpoint lacks run their initializer (the model's rule: for BERT,
//     nn/init.hpp) or keep their values, and are reported as missing;
//   - checkpoint tensors no slot takes (a BERT checkpoint's pre-training heads) are
//     reported as unused; both lists are printed as transformers words them. Those the
//     model expects to skip (LoadOptions::expected_unused) are reported apart, unprinted;
//   - every check runs before any copy; the copies then run on all of mpt's threads.
// This file knows no model: names, prefixes and initializers all come from the caller.

#include <mpt/core/bf16.hpp>
#include <mpt/core/error.hpp>
#include <mpt/core/tensor.hpp>
#include <mpt/core/threads.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace mpt::io {

// A parameter's storage, in whichever element type the precision policy keeps it.
using ParameterView = std::variant<TensorView<float>, TensorView<bf16>, TensorView<double>>;

inline const Shape& parameter_shape(const ParameterView& p) {
  return std::visit([](const auto& v) -> const Shape& { return v.shape(); }, p);
}

struct ParameterSlot;

// Where loading warnings go unless the caller says otherwise.
inline void warn_to_stderr(const std::string& message) { std::cerr << message << '\n'; }

// Fills a slot the checkpoint does not hold. It may run on any of mpt's threads,
// concurrently with other slots' work.
using Initializer = std::function<void(const ParameterSlot&)>;

struct ParameterSlot {
  std::string name;  // the name in the model being loaded, as its checkpoints spell it
  ParameterView data;
  Initializer initialize = nullptr;  // nullptr: a missing slot keeps its values
};

struct LoadOptions {
  // transformers' base_model_prefix ("bert"): names with and without it match each other.
  std::string base_model_prefix;
  std::string model_class = "the model";  // in warnings ("BertForQuestionAnswering")
  // Unused checkpoint tensors whose names contain one of these are expected and not
  // warned about (the model's _keys_to_ignore_on_load_unexpected).
  std::vector<std::string> expected_unused;
  // Receives the two transformers-style warnings; nullptr keeps quiet. Default: std::cerr.
  std::function<void(const std::string&)> warn = warn_to_stderr;
};

struct RenamedTensor {
  std::string checkpoint_name;
  std::string model_name;
};

struct LoadReport {
  std::vector<std::string> loaded;           // model names filled from the checkpoint
  std::vector<RenamedTensor> renamed;        // loaded under another name (legacy or prefix)
  std::vector<std::string> missing;          // model names newly initialized
  std::vector<std::string> unused;           // checkpoint names no slot took
  std::vector<std::string> expected_unused;  // checkpoint names no slot took, matching LoadOptions::expected_unused
};

namespace detail {

// "a.LayerNorm.gamma" -> "a.LayerNorm.weight", "a.LayerNorm.beta" -> "a.LayerNorm.bias".
inline std::string modern_parameter_name(std::string_view name) {
  const auto ends_with = [&](std::string_view suffix) { return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix; };
  if (ends_with(".gamma")) return std::string(name.substr(0, name.size() - 6)) + ".weight";
  if (ends_with(".beta")) return std::string(name.substr(0, name.size() - 5)) + ".bias";
  if (name == "gamma") return "weight";
  if (name == "beta") return "bias";
  return std::string(name);
}

inline std::string python_list(const std::vector<std::string>& names) {
  std::string s = "[";
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", '" : "'") + names[i] + "'";
  return s + "]";
}

}  // namespace detail

namespace detail {

// One tensor of the checkpoint and the file (shard) holding it.
struct LocatedTensor {
  const SafetensorsFile* file;
  const SafetensorsEntry* entry;
};

// transformers' base_model_prefix rule: names with and without "<prefix>." match, the
// prefix being stripped from whichever side has it when the other has none.
struct PrefixRule {
  std::string prefix;  // "bert." or empty
  bool strip_from_model = false, strip_from_checkpoint = false;
  bool has_prefix(std::string_view n) const { return !prefix.empty() && n.substr(0, prefix.size()) == prefix; }
  std::string model_key(const std::string& name) const { return strip_from_model && has_prefix(name) ? name.substr(prefix.size()) : name; }
};

inline PrefixRule prefix_rule(const LoadOptions& options, std::span<const LocatedTensor> all, std::span<const ParameterSlot> slots) {
  PrefixRule rule;
  rule.prefix = options.base_model_prefix.empty() ? std::string() : options.base_model_prefix + ".";
  bool checkpoint_has = false, model_has = false;
  for (const LocatedTensor& t : all) checkpoint_has = checkpoint_has || rule.has_prefix(t.entry->name);
  for (const ParameterSlot& s : slots) model_has = model_has || rule.has_prefix(s.name);
  rule.strip_from_model = model_has && !checkpoint_has;
  rule.strip_from_checkpoint = checkpoint_has && !model_has;
  return rule;
}

// Canonical name (modern, prefix rule applied) -> index in `all`; two tensors with
// one canonical name are an error naming both (and their shards).
inline std::unordered_map<std::string, std::size_t> index_by_canonical_name(std::span<const LocatedTensor> all, const PrefixRule& rule, bool sharded,
                                                                            const std::string& checkpoint) {
  std::unordered_map<std::string, std::size_t> by_key;
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string key = modern_parameter_name(all[i].entry->name);
    if (rule.strip_from_checkpoint && rule.has_prefix(key)) key = key.substr(rule.prefix.size());
    const auto [it, inserted] = by_key.emplace(key, i);
    if (!inserted) {
      const auto where = [&](const LocatedTensor& t) { return sharded ? " (in " + t.file->path().filename().string() + ")" : std::string(); };
      const LocatedTensor& first = all[it->second];
      throw_error("checkpoint ", checkpoint, ": tensors '", first.entry->name, "'", where(first), " and '", all[i].entry->name, "'", where(all[i]),
                  " both provide '", key, "'; remove one of them");
    }
  }
  return by_key;
}

// Fills every slot: from its tensor (big tensors in slices) or by its initializer, on
// all threads. Each element is written once, by whichever thread: the result does not
// depend on the thread count.
inline void fill_slots(std::span<const ParameterSlot> slots, std::span<const LocatedTensor* const> source) {
  struct Task {
    std::size_t slot, first, count;
  };
  constexpr std::size_t slice = std::size_t{1} << 20;
  std::vector<Task> tasks;
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const std::size_t n = parameter_shape(slots[k].data).numel();
    if (source[k] == nullptr)
      tasks.push_back({k, 0, n});  // initializing draws one sequence: one task
    else
      for (std::size_t first = 0; first < n; first += slice) tasks.push_back({k, first, std::min(slice, n - first)});
  }
  parallel_for(tasks.size(), [&](std::size_t t) {
    const Task& task = tasks[t];
    const ParameterSlot& slot = slots[task.slot];
    if (source[task.slot] == nullptr) {
      if (slot.initialize) slot.initialize(slot);
      return;
    }
    const LocatedTensor& from = *source[task.slot];
    std::visit([&](auto view) { from.file->read_elements(*from.entry, task.first, task.count, view.data()); }, slot.data);
  });
}

// transformers' two warnings, word for word.
inline void warn_as_transformers(const LoadOptions& options, const LoadReport& report, const std::string& checkpoint) {
  if (!options.warn) return;
  const std::string& model = options.model_class;
  if (!report.unused.empty()) {
    options.warn("Some weights of the model checkpoint at " + checkpoint + " were not used when initializing " + model + ": " +
                 python_list(report.unused) + "\n- This IS expected if you are initializing " + model +
                 " from the checkpoint of a model trained on another task or with another architecture (e.g. initializing a "
                 "BertForSequenceClassification model from a BertForPreTraining model).\n- This IS NOT expected if you are initializing " +
                 model +
                 " from the checkpoint of a model that you expect to be exactly identical (initializing a "
                 "BertForSequenceClassification model from a BertForSequenceClassification model).");
  }
  if (!report.missing.empty()) {
    options.warn("Some weights of " + model + " were not initialized from the model checkpoint at " + checkpoint +
                 " and are newly initialized: " + python_list(report.missing) +
                 "\nYou should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.");
  }
}

}  // namespace detail

// Fills `slots` from `files` (one file, or the shards of one checkpoint); see the top
// of this header. `checkpoint` names the checkpoint in warnings (transformers prints
// the folder).
inline LoadReport load_parameters(std::span<const SafetensorsFile> files, std::span<const ParameterSlot> slots, const LoadOptions& options,
                                  std::string checkpoint) {
  std::vector<detail::LocatedTensor> all;
  for (const SafetensorsFile& f : files)
    for (const SafetensorsEntry& e : f.tensors()) all.push_back({&f, &e});
  std::unordered_map<std::string_view, bool> slot_names;
  for (const ParameterSlot& slot : slots) {
    if (!slot_names.emplace(slot.name, true).second) throw_error("load_parameters: the model lists parameter '", slot.name, "' twice");
  }
  const detail::PrefixRule rule = detail::prefix_rule(options, all, slots);
  const auto by_key = detail::index_by_canonical_name(all, rule, files.size() > 1, checkpoint);

  // Match and check everything first, so that an error leaves no slot half loaded
  // and the first mismatch reported is the first in the model's order.
  LoadReport report;
  std::vector<bool> taken(all.size(), false);
  std::vector<const detail::LocatedTensor*> source(slots.size(), nullptr);
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const ParameterSlot& slot = slots[k];
    const auto it = by_key.find(rule.model_key(slot.name));
    if (it == by_key.end()) {
      report.missing.push_back(slot.name);
      continue;
    }
    const detail::LocatedTensor& located = all[it->second];
    const SafetensorsEntry& entry = *located.entry;
    const Shape& needed = parameter_shape(slot.data);
    if (!entry.has_shape(needed)) {
      throw_error("checkpoint ", located.file->path(), ": tensor '", entry.name, "' has shape ", entry.shape_string(), " but ", options.model_class,
                  " parameter '", slot.name, "' has shape ", needed, "; the checkpoint was saved from a model of another size (check config.json)");
    }
    if (!is_convertible_dtype(entry.dtype)) {
      throw_error("checkpoint ", located.file->path(), ": tensor '", entry.name, "' has dtype ", dtype_name(entry.dtype),
                  "; parameters load from F32, BF16, F16 or F64");
    }
    source[k] = &located;
    taken[it->second] = true;
    report.loaded.push_back(slot.name);
    if (entry.name != slot.name) report.renamed.push_back({entry.name, slot.name});
  }

  detail::fill_slots(slots, source);

  for (std::size_t i = 0; i < all.size(); ++i) {
    if (taken[i]) continue;
    const std::string& name = all[i].entry->name;
    bool expected = false;
    for (const std::string& pattern : options.expected_unused) expected = expected || name.find(pattern) != std::string::npos;
    (expected ? report.expected_unused : report.unused).push_back(name);
  }
  detail::warn_as_transformers(options, report, checkpoint);
  return report;
}

// One safetensors file; `checkpoint` names it in warnings (default: its path).
inline LoadReport load_parameters(const SafetensorsFile& file, std::span<const ParameterSlot> slots, const LoadOptions& options = {},
                                  std::string checkpoint = {}) {
  if (checkpoint.empty()) checkpoint = file.path().string();
  return load_parameters(std::span<const SafetensorsFile>(&file, 1), slots, options, checkpoint);
}

// The shards a model.safetensors.index.json names ({"weight_map": {tensor: file}}),
// opened and checked: each named tensor is in its shard.
inline std::vector<SafetensorsFile> open_sharded_checkpoint(const std::filesystem::path& index_path) {
  const std::string source = "checkpoint index " + index_path.string();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(index_path));
  } catch (const nlohmann::json::exception& e) {
    throw_error(source, ": not valid JSON (", e.what(), ")");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw_error(source, ": no \"weight_map\" object of tensor names to shard files");
  }
  std::vector<std::string> shard_names;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw_error(source, ": tensor '", tensor, "' maps to ", shard.dump(), ", not a file name");
    const std::string name = shard.get<std::string>();
    // A shard is a file next to the index, never a path elsewhere.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
      throw_error(source, ": tensor '", tensor, "' maps to \"", name, "\", which is not a file name in the same folder");
    }
    if (std::find(shard_names.begin(), shard_names.end(), name) == shard_names.end()) shard_names.push_back(name);
  }
  std::vector<SafetensorsFile> shards;
  for (const std::string& name : shard_names) shards.push_back(SafetensorsFile::open(index_path.parent_path() / name));
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    const std::size_t k = static_cast<std::size_t>(std::find(shard_names.begin(), shard_names.end(), shard.get<std::string>()) - shard_names.begin());
    if (!shards[k].contains(tensor)) throw_error(source, ": tensor '", tensor, "' is not in its shard ", shards[k].path());
  }
  return shards;
}

// From a model folder (model.safetensors, or model.safetensors.index.json and its
// shards, as save_pretrained writes big models) or from one .safetensors file.
inline LoadReport load_parameters(const std::filesystem::path& path, std::span<const ParameterSlot> slots, const LoadOptions& options = {}) {
  if (!std::filesystem::is_directory(path)) return load_parameters(SafetensorsFile::open(path), slots, options);
  const std::filesystem::path single = path / "model.safetensors";
  const std::filesystem::path index = path / "model.safetensors.index.json";
  if (std::filesystem::exists(single)) return load_parameters(SafetensorsFile::open(single), slots, options, path.string());
  if (std::filesystem::exists(index)) return load_parameters(open_sharded_checkpoint(index), slots, options, path.string());
  throw_error("model folder ", path,
              " has neither model.safetensors nor model.safetensors.index.json (mpt reads safetensors checkpoints "
              "only; convert pytorch_model.bin with transformers' save_pretrained(safe_serialization=True))");
}

}  // namespace mpt::io
