// nn::BertConfig: config.json as transformers reads and writes it for BERT: defaults,
// unknown keys kept, sorted keys, and validation errors that name the file and the key.
#include <doctest/doctest.h>
#include "temp_dir.hpp"
#include <mpt/mpt.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using mpt::nn::BertConfig;

namespace {

using mpt::test::TempDir;

const fs::path tiny = fs::path(MPT_TEST_DATA) / "bert_tiny";

}  // namespace

TEST_CASE("BertConfig reads the fixture's config.json") {
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  CHECK(c.vocab_size == 100);
  CHECK(c.hidden_size == 32);
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.head_dim() == 8);
  CHECK(c.intermediate_size == 64);
  CHECK(c.hidden_act == "gelu");
  CHECK(c.hidden_dropout_prob == 0.0);
  CHECK(c.attention_probs_dropout_prob == 0.0);
  CHECK(c.max_position_embeddings == 64);
  CHECK(c.type_vocab_size == 2);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(c.initializer_range == 0.02);
  CHECK(c.pad_token_id == 0);
  // Round trip through JSON keeps every field.
  const BertConfig again = BertConfig::from_json(c.to_json());
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("BertConfig keeps unknown keys and writes the QA architecture") {
  TempDir dir("config");
  const BertConfig legacy = BertConfig::from_json_file(tiny / "legacy_hub/config.json");
  CHECK(legacy.extra.at("transformers_version") == "4.6.0.dev0");
  const nlohmann::ordered_json j = legacy.to_json();
  CHECK(j.at("architectures") == nlohmann::ordered_json::array({"BertForQuestionAnswering"}));
  CHECK(j.at("model_type") == "bert");
  CHECK(j.at("position_embedding_type") == "absolute");
  CHECK(j.at("use_cache") == true);
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  legacy.save(dir / "config.json");
  const BertConfig reread = BertConfig::from_json_file(dir / "config.json");
  CHECK(reread.to_json() == j);
  // Missing keys take transformers' defaults.
  const BertConfig defaults = BertConfig::from_json(nlohmann::ordered_json::object());
  CHECK(defaults.vocab_size == 30522);
  CHECK(defaults.hidden_size == 768);
  CHECK(defaults.layer_norm_eps == 1e-12);
}

TEST_CASE("BertConfig validation names the file and the key") {
  TempDir dir("config_errors");
  const auto expect = [&](const std::string& text, const std::string& mention) {
    const fs::path p = dir / "config.json";
    mpt::io::write_file_atomic(p, text);
    INFO("config: ", text);
    CHECK_THROWS_WITH_AS(BertConfig::from_json_file(p), doctest::Contains(mention.c_str()), mpt::Error);
    CHECK_THROWS_WITH_AS(BertConfig::from_json_file(p), doctest::Contains(p.string().c_str()), mpt::Error);
  };
  expect(R"({"hidden_size": 30, "num_attention_heads": 4})", "not a multiple of num_attention_heads 4");
  expect(R"({"vocab_size": -5})", "vocab_size is -5");
  expect(R"({"num_hidden_layers": 0})", "num_hidden_layers is 0");
  expect(R"({"hidden_act": "relu"})", "hidden_act \"relu\"");
  expect(R"({"hidden_size": "768"})", "hidden_size is \"768\"");
  expect(R"({"hidden_size": 76.8})", "hidden_size is 76.8");
  expect(R"({"hidden_dropout_prob": 1.5})", "hidden_dropout_prob");
  expect(R"({"model_type": "gpt2"})", "model_type");
  expect(R"({"pad_token_id": 40000})", "pad_token_id");
  expect(R"([1, 2])", "JSON object");
  expect(R"({"vocab_size": )", "not valid JSON");
  CHECK_THROWS_WITH_AS(BertConfig::from_json_file(dir / "absent.json"), doctest::Contains("absent.json"), mpt::Error);
}
