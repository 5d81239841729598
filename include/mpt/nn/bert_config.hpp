#pragma once
// BertConfig: the model hyper-parameters of a Hugging Face config.json.
//
//   BertConfig::from_json(json, source)   missing keys take transformers' defaults
//   BertConfig::from_json_text(text, source)   config.json's text; bad JSON is an mpt::Error
//   BertConfig::from_json_file(path)
//   config.validate(source)               positive sizes, heads divide hidden_size, known hidden_act
//   config.to_json()                      keys it does not know are kept from the file it was
//                                         read from; architectures/model_type say BERT-QA
//   config.save(path)                     atomic write

#include <mpt/core/error.hpp>
#include <mpt/io/file.hpp>
#include <mpt/io/json_depth.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mpt::nn {

struct BertConfig {
  // Defaults are BertConfig's in transformers (bert-base-uncased).
  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 768;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  std::int64_t pad_token_id = 0;
  // Every other key of the file it came from (transformers_version, position_embedding_type,
  // torch_dtype, ...), written back unchanged.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();

  std::int64_t head_dim() const noexcept { return num_attention_heads > 0 ? hidden_size / num_attention_heads : 0; }

  // `source` names the file (or "config") in error messages.
  static BertConfig from_json(const nlohmann::ordered_json& j, const std::string& source = "config") {
    if (!j.is_object()) throw_error(source, ": a BERT config must be a JSON object, not ", j.type_name());
    BertConfig c;
    for (const auto& [key, value] : j.items()) {
      if (key == "vocab_size")
        c.vocab_size = integer(value, source, key);
      else if (key == "hidden_size")
        c.hidden_size = integer(value, source, key);
      else if (key == "num_hidden_layers")
        c.num_hidden_layers = integer(value, source, key);
      else if (key == "num_attention_heads")
        c.num_attention_heads = integer(value, source, key);
      else if (key == "intermediate_size")
        c.intermediate_size = integer(value, source, key);
      else if (key == "max_position_embeddings")
        c.max_position_embeddings = integer(value, source, key);
      else if (key == "type_vocab_size")
        c.type_vocab_size = integer(value, source, key);
      else if (key == "pad_token_id")
        c.pad_token_id = integer(value, source, key);
      else if (key == "hidden_dropout_prob")
        c.hidden_dropout_prob = number(value, source, key);
      else if (key == "attention_probs_dropout_prob")
        c.attention_probs_dropout_prob = number(value, source, key);
      else if (key == "layer_norm_eps")
        c.layer_norm_eps = number(value, source, key);
      else if (key == "initializer_range")
        c.initializer_range = number(value, source, key);
      else if (key == "hidden_act") {
        if (!value.is_string()) throw_error(source, ": hidden_act is ", value.dump(), ", not a string such as \"gelu\"");
        c.hidden_act = value.get<std::string>();
      } else {
        c.extra[key] = value;
      }
    }
    if (c.extra.contains("model_type") && c.extra["model_type"] != "bert") {
      throw_error(source, ": model_type is ", c.extra["model_type"].dump(), " but mpt loads \"bert\" models");
    }
    c.validate(source);
    return c;
  }

  static BertConfig from_json_text(std::string_view text, const std::string& source = "config") {
    io::check_json_strings(text, source);
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw_error(source, ": not valid JSON (", e.what(), ")");
    }
    io::check_json_depth(text, source);
    return from_json(j, source);
  }

  static BertConfig from_json_file(const std::filesystem::path& path) {
    return from_json_text(io::read_text_file(path), "config file " + path.string());
  }

  void validate(const std::string& source = "config") const {
    const auto positive = [&](std::int64_t v, const char* key) {
      if (v <= 0) throw_error(source, ": ", key, " is ", v, " but must be positive");
    };
    positive(vocab_size, "vocab_size");
    positive(hidden_size, "hidden_size");
    positive(num_hidden_layers, "num_hidden_layers");
    positive(num_attention_heads, "num_attention_heads");
    positive(intermediate_size, "intermediate_size");
    positive(max_position_embeddings, "max_position_embeddings");
    positive(type_vocab_size, "type_vocab_size");
    if (hidden_size % num_attention_heads != 0) {
      throw_error(source, ": hidden_size ", hidden_size, " is not a multiple of num_attention_heads ", num_attention_heads,
                  "; choose a head count that divides it");
    }
    if (hidden_act != "gelu") {
      throw_error(source, ": hidden_act \"", hidden_act, "\" is not supported; mpt implements \"gelu\" (the exact erf form BERT uses)");
    }
    const auto probability = [&](double p, const char* key) {
      if (!(p >= 0.0 && p < 1.0)) throw_error(source, ": ", key, " is ", p, " but a dropout probability must lie in [0, 1)");
    };
    probability(hidden_dropout_prob, "hidden_dropout_prob");
    probability(attention_probs_dropout_prob, "attention_probs_dropout_prob");
    if (!(layer_norm_eps > 0.0)) throw_error(source, ": layer_norm_eps is ", layer_norm_eps, " but must be positive");
    if (!(initializer_range >= 0.0)) throw_error(source, ": initializer_range is ", initializer_range, " but must not be negative");
    if (pad_token_id < 0 || pad_token_id >= vocab_size) {
      throw_error(source, ": pad_token_id ", pad_token_id, " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }

  // The config as transformers writes it for BertForQuestionAnswering.
  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["architectures"] = {"BertForQuestionAnswering"};
    j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
    j["hidden_act"] = hidden_act;
    j["hidden_dropout_prob"] = hidden_dropout_prob;
    j["hidden_size"] = hidden_size;
    j["initializer_range"] = initializer_range;
    j["intermediate_size"] = intermediate_size;
    j["layer_norm_eps"] = layer_norm_eps;
    j["max_position_embeddings"] = max_position_embeddings;
    j["model_type"] = "bert";
    j["num_attention_heads"] = num_attention_heads;
    j["num_hidden_layers"] = num_hidden_layers;
    j["pad_token_id"] = pad_token_id;
    j["type_vocab_size"] = type_vocab_size;
    j["vocab_size"] = vocab_size;
    for (const auto& [key, value] : extra.items())
      if (key != "architectures" && key != "model_type") j[key] = value;
    // Keys in sorted order, as transformers writes them (json.dumps(sort_keys=True)).
    std::vector<std::string> keys;
    for (const auto& item : j.items()) keys.push_back(item.key());
    std::sort(keys.begin(), keys.end());
    nlohmann::ordered_json sorted = nlohmann::ordered_json::object();
    for (const std::string& key : keys) sorted[key] = j[key];
    return sorted;
  }

  void save(const std::filesystem::path& path) const { io::write_file_atomic(path, to_json().dump(2) + "\n"); }

 private:
  static std::int64_t integer(const nlohmann::ordered_json& v, const std::string& source, const std::string& key) {
    if (!v.is_number_integer()) throw_error(source, ": ", key, " is ", v.dump(), " but must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
      throw_error(source, ": ", key, " is ", v.dump(), ", beyond 64-bit integers");
    }
    return v.get<std::int64_t>();
  }
  static double number(const nlohmann::ordered_json& v, const std::string& source, const std::string& key) {
    if (!v.is_number()) throw_error(source, ": ", key, " is ", v.dump(), " but must be a number");
    return v.get<double>();
  }
};

}  // namespace mpt::nn
