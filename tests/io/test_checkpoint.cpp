// Model folders: loading a checkpoint into named parameter slots (modern and legacy
// Hub layouts, with and without the "bert." prefix, shards), and save_pretrained.
// BERT's own rules (nn/init.hpp, nn::bert_qa_load_options) are the oracle here: what
// transformers does for BertForQuestionAnswering. Uses the PyTorch-made fixture in
// data/bert_tiny; config.json's tests are in tests/nn/test_bert_config.cpp.
#include <doctest/doctest.h>
#include "temp_dir.hpp"
#include <mpt/mpt.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mpt::bf16;
using mpt::Shape;
using mpt::Tensor;
using mpt::io::Dtype;
using mpt::io::ParameterSlot;
using mpt::nn::BertConfig;
using mpt::nn::Init;

namespace {

using mpt::test::TempDir;

const fs::path tiny = fs::path(MPT_TEST_DATA) / "bert_tiny";

struct ParameterSpec {
  std::string name;
  Shape shape;
  Init init;
  std::int64_t zero_row = -1;
};

// BertForQuestionAnswering's parameters in PyTorch's named_parameters() order, as the
// model will list them.
std::vector<ParameterSpec> bert_qa_parameters(const BertConfig& c, const std::string& prefix = "bert.") {
  const std::int64_t h = c.hidden_size, i = c.intermediate_size;
  std::vector<ParameterSpec> p = {
      {prefix + "embeddings.word_embeddings.weight", Shape{c.vocab_size, h}, Init::normal, c.pad_token_id},
      {prefix + "embeddings.position_embeddings.weight", Shape{c.max_position_embeddings, h}, Init::normal},
      {prefix + "embeddings.token_type_embeddings.weight", Shape{c.type_vocab_size, h}, Init::normal},
      {prefix + "embeddings.LayerNorm.weight", Shape{h}, Init::ones},
      {prefix + "embeddings.LayerNorm.bias", Shape{h}, Init::zeros},
  };
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string at = prefix + "encoder.layer." + std::to_string(l) + ".";
    const auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in) {
      p.push_back({at + name + ".weight", Shape{out, in}, Init::normal});
      p.push_back({at + name + ".bias", Shape{out}, Init::zeros});
    };
    const auto layer_norm = [&](const std::string& name) {
      p.push_back({at + name + ".weight", Shape{h}, Init::ones});
      p.push_back({at + name + ".bias", Shape{h}, Init::zeros});
    };
    linear("attention.self.query", h, h);
    linear("attention.self.key", h, h);
    linear("attention.self.value", h, h);
    linear("attention.output.dense", h, h);
    layer_norm("attention.output.LayerNorm");
    linear("intermediate.dense", i, h);
    linear("output.dense", h, i);
    layer_norm("output.LayerNorm");
  }
  p.push_back({"qa_outputs.weight", Shape{2, h}, Init::normal});
  p.push_back({"qa_outputs.bias", Shape{2}, Init::zeros});
  return p;
}

// Parameters of element type T, stored apart, with the slots that point at them.
template <class T>
struct Parameters {
  std::vector<std::unique_ptr<Tensor<T>>> storage;
  std::vector<ParameterSlot> slots;
  explicit Parameters(const std::vector<ParameterSpec>& specs, float fill = 7.0f) {
    for (const ParameterSpec& s : specs) {
      storage.push_back(std::make_unique<Tensor<T>>(s.shape));
      for (auto& v : storage.back()->span()) v = T(fill);  // sentinel: every slot must be written
      slots.push_back({s.name, storage.back()->view(), mpt::nn::initializer(s.init, 0.02, 42, s.zero_row)});
    }
  }
  const Tensor<T>& operator[](const std::string& name) const {
    for (std::size_t k = 0; k < slots.size(); ++k)
      if (slots[k].name == name) return *storage[k];
    throw mpt::Error("no parameter " + name);
  }
};

template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t k = 0; k < a.size(); ++k) m = std::max(m, std::abs(static_cast<double>(mpt::to_float(a[k])) - b[k]));
  return m;
}

// Largest difference between the model's T parameters named in `loaded` and the fp32
// reference file (model names map to file names through `to_file`).
template <class T, class Map>
double max_diff_to_reference(const Parameters<T>& params, const std::vector<std::string>& loaded, Map to_file) {
  const auto ref = mpt::io::SafetensorsFile::open(tiny / "model.safetensors");
  double m = 0;
  for (const std::string& name : loaded) m = std::max(m, max_abs_diff(params[name], ref.read<float>(to_file(name))));
  return m;
}

// The bf16 rounding of values of magnitude < 2 is at most 2^-8; others load exactly.
template <class T>
double load_tolerance() {
  return std::is_same_v<T, bf16> ? 1.0 / 128 : 0.0;
}

// BertForQuestionAnswering's rules (prefix "bert", pooler expected unused), warnings kept or dropped.
mpt::io::LoadOptions quiet_options(std::vector<std::string>* warnings = nullptr) {
  return mpt::nn::bert_qa_load_options(
      warnings ? std::function<void(const std::string&)>([warnings](const std::string& m) { warnings->push_back(m); }) : nullptr);
}

std::string same_name(const std::string& n) { return n; }

}  // namespace

TEST_CASE("the fixture's safetensors holds exactly BertForQuestionAnswering's parameters") {
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  const auto specs = bert_qa_parameters(c);
  const auto file = mpt::io::SafetensorsFile::open(tiny / "model.safetensors");
  CHECK(file.metadata().at("format") == "pt");
  REQUIRE(file.size() == specs.size());
  for (std::size_t k = 0; k < specs.size(); ++k) {
    CAPTURE(specs[k].name);
    // Written in named_parameters() order, so the data order is the model's order.
    CHECK(file.tensors()[k].name == specs[k].name);
    CHECK(file.tensors()[k].dtype == Dtype::f32);
    CHECK(file.tensors()[k].shape() == specs[k].shape);
  }
  // The PyTorch outputs carry one gradient per parameter, with its shape.
  for (const char* expected : {"expected_fp32.safetensors", "expected_bf16_autocast.safetensors"}) {
    const auto e = mpt::io::SafetensorsFile::open(tiny / expected);
    CHECK(e.at("loss").dims.empty());
    CHECK(e.at("start_logits").shape() == Shape{3, 16});
    CHECK(e.at("end_logits").shape() == Shape{3, 16});
    CHECK(e.at("hidden_states.2").shape() == Shape{3, 16, 32});
    for (const auto& s : specs) CHECK(e.at("grad." + s.name).shape() == s.shape);
  }
  // The padding row of the word embeddings is zero, as nn.Embedding(padding_idx) keeps it.
  const auto words = file.read<float>("bert.embeddings.word_embeddings.weight");
  for (std::int64_t col = 0; col < c.hidden_size; ++col) CHECK(words(c.pad_token_id, col) == 0.0f);
}

TEST_CASE_TEMPLATE("load_parameters fills every slot of the modern layout", P, mpt::precision::fp32, mpt::precision::bf16_mixed,
                   mpt::precision::fp64) {
  using T = typename P::param_t;
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  Parameters<T> params(bert_qa_parameters(c));
  std::vector<std::string> warnings;
  const auto report = mpt::io::load_parameters(tiny, params.slots, quiet_options(&warnings));
  CHECK(report.loaded.size() == params.slots.size());
  CHECK(report.missing.empty());
  CHECK(report.unused.empty());
  CHECK(report.renamed.empty());
  CHECK(warnings.empty());
  const double diff = max_diff_to_reference(params, report.loaded, same_name);
  INFO("max |loaded - file| = ", diff);
  CHECK(diff <= load_tolerance<T>());
  if constexpr (std::is_same_v<T, bf16>) {
    // bf16 slots hold exactly the round-to-nearest-even of the fp32 file.
    const auto ref = mpt::io::SafetensorsFile::open(tiny / "model.safetensors").read<float>("qa_outputs.weight");
    const auto& got = params["qa_outputs.weight"];
    for (std::size_t k = 0; k < ref.size(); ++k) CHECK(mpt::bf16_bits(got[k]) == mpt::float_to_bf16_bits(ref[k]));
  }
}

TEST_CASE_TEMPLATE("load_parameters reads the legacy Hub layout and initializes the QA head", P, mpt::precision::fp32, mpt::precision::bf16_mixed) {
  using T = typename P::param_t;
  const BertConfig c = BertConfig::from_json_file(tiny / "legacy_hub/config.json");
  Parameters<T> params(bert_qa_parameters(c));
  std::vector<std::string> warnings;
  const auto report = mpt::io::load_parameters(tiny / "legacy_hub", params.slots, quiet_options(&warnings));

  CHECK(report.missing == std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"});
  CHECK(report.loaded.size() == params.slots.size() - 2);
  const std::vector<std::string> cls = {"cls.predictions.bias",
                                        "cls.predictions.transform.LayerNorm.beta",
                                        "cls.predictions.transform.LayerNorm.gamma",
                                        "cls.predictions.transform.dense.bias",
                                        "cls.predictions.transform.dense.weight",
                                        "cls.seq_relationship.bias",
                                        "cls.seq_relationship.weight"};
  std::vector<std::string> unused = report.unused;
  std::sort(unused.begin(), unused.end());
  CHECK(unused == cls);
  std::vector<std::string> pooler = report.expected_unused;
  std::sort(pooler.begin(), pooler.end());
  CHECK(pooler == std::vector<std::string>{"bert.embeddings.position_ids", "bert.pooler.dense.bias", "bert.pooler.dense.weight"});
  // Every LayerNorm came in under its legacy name: 1 embedding + 2 per layer, weight and bias.
  CHECK(report.renamed.size() == static_cast<std::size_t>(2 * (1 + 2 * c.num_hidden_layers)));
  for (const auto& r : report.renamed) {
    const bool gamma = r.checkpoint_name.ends_with(".LayerNorm.gamma") && r.model_name.ends_with(".LayerNorm.weight");
    const bool beta = r.checkpoint_name.ends_with(".LayerNorm.beta") && r.model_name.ends_with(".LayerNorm.bias");
    CHECK((gamma || beta));
  }
  // The encoder equals the modern file's.
  CHECK(max_diff_to_reference(params, report.loaded, same_name) <= load_tolerance<T>());
  // The new head is initialized as BERT does: normal(0, initializer_range) weight, zero bias.
  const auto& w = params["qa_outputs.weight"];
  double sum = 0, sum_sq = 0;
  for (std::size_t k = 0; k < w.size(); ++k) {
    const double v = mpt::to_float(w[k]);
    sum += v;
    sum_sq += v * v;
  }
  const double mean = sum / static_cast<double>(w.size()), sd = std::sqrt(sum_sq / static_cast<double>(w.size()) - mean * mean);
  INFO("qa_outputs.weight: mean ", mean, " sd ", sd, " (64 draws of normal(0, 0.02))");
  CHECK(std::abs(mean) < 0.01);
  CHECK(sd > 0.013);
  CHECK(sd < 0.027);
  for (std::size_t k = 0; k < 2; ++k) CHECK(mpt::to_float(params["qa_outputs.bias"][k]) == 0.0f);
  // Initialization is a function of (seed, name): the same on every load, for any thread count.
  Parameters<T> again(bert_qa_parameters(c));
  {
    mpt::ScopedNumThreads one_thread(1);
    mpt::io::load_parameters(tiny / "legacy_hub", again.slots, quiet_options());
  }
  std::size_t differ = 0;
  for (std::size_t s = 0; s < params.slots.size(); ++s)
    for (std::size_t k = 0; k < params.storage[s]->size(); ++k)
      differ += mpt::to_float((*again.storage[s])[k]) != mpt::to_float((*params.storage[s])[k]);
  CHECK(differ == 0);

  // The two warnings, worded as transformers words them.
  REQUIRE(warnings.size() == 2);
  const std::string at = (tiny / "legacy_hub").string();
  CHECK(
      warnings[0].starts_with("Some weights of the model checkpoint at " + at + " were not used when initializing BertForQuestionAnswering: ['cls."));
  CHECK(warnings[0].find("pooler") == std::string::npos);
  CHECK(warnings[1].starts_with("Some weights of BertForQuestionAnswering were not initialized from the model checkpoint at " + at +
                                " and are newly initialized: ['qa_outputs.weight', 'qa_outputs.bias']"));
}

TEST_CASE("load_parameters initializes missing LayerNorm and embedding slots as BERT does") {
  TempDir dir("init");
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  // A checkpoint with nothing in it: every slot is new.
  mpt::io::save_safetensors(dir / "empty.safetensors", std::span<const mpt::io::NamedTensor>(), Dtype::f32);
  Parameters<float> params(bert_qa_parameters(c));
  const auto report = mpt::io::load_parameters(dir / "empty.safetensors", params.slots, quiet_options());
  CHECK(report.missing.size() == params.slots.size());
  const auto& gamma = params["bert.encoder.layer.1.output.LayerNorm.weight"];
  const auto& beta = params["bert.encoder.layer.1.output.LayerNorm.bias"];
  for (std::size_t k = 0; k < gamma.size(); ++k) {
    CHECK(gamma[k] == 1.0f);
    CHECK(beta[k] == 0.0f);
  }
  const auto& words = params["bert.embeddings.word_embeddings.weight"];
  for (std::int64_t col = 0; col < c.hidden_size; ++col) CHECK(words(c.pad_token_id, col) == 0.0f);
  CHECK(words(1, 0) != 0.0f);
  CHECK(words(1, 0) != 7.0f);
  // A custom initializer is the model's own choice.
  Tensor<float> t(Shape{3});
  std::vector<ParameterSlot> custom = {{"x", t.view(), [](const ParameterSlot& s) {
                                          for (auto& v : std::get<mpt::TensorView<float>>(s.data).span()) v = 0.5f;
                                        }}};
  mpt::io::load_parameters(dir / "empty.safetensors", custom, quiet_options());
  CHECK(t[2] == 0.5f);
  // Without an initializer a missing slot keeps its values, and is still reported.
  t[2] = 0.25f;
  std::vector<ParameterSlot> keep = {{"x", t.view()}};
  CHECK(mpt::io::load_parameters(dir / "empty.safetensors", keep, quiet_options()).missing == std::vector<std::string>{"x"});
  CHECK(t[2] == 0.25f);
  std::vector<ParameterSlot> bad_row = {{"x", t.view(), mpt::nn::initializer(Init::normal, 0.02, 42, 3)}};
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir / "empty.safetensors", bad_row, quiet_options()),
                       doctest::Contains("row 3 is to be zeroed but its shape [3]"), mpt::Error);
}

TEST_CASE("load_parameters: base-model checkpoints without the 'bert.' prefix, and the reverse") {
  TempDir dir("prefix");
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  const auto qa_file = mpt::io::SafetensorsFile::open(tiny / "model.safetensors");
  // A BertModel checkpoint: names without "bert.", no qa_outputs.
  std::vector<Tensor<float>> keep;
  std::vector<mpt::io::NamedTensor> base;
  keep.reserve(qa_file.size());
  for (const auto& e : qa_file.tensors()) {
    if (!e.name.starts_with("bert.")) continue;
    keep.push_back(qa_file.read<float>(e.name));
    base.push_back({e.name.substr(5), keep.back().view()});
  }
  mpt::io::save_safetensors(dir / "model.safetensors", base, Dtype::f32, {{"format", "pt"}});

  Parameters<float> qa(bert_qa_parameters(c));
  const auto report = mpt::io::load_parameters(dir.path, qa.slots, quiet_options());
  CHECK(report.missing == std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"});
  CHECK(report.unused.empty());
  CHECK(report.renamed.size() == base.size());
  CHECK(report.renamed.front().checkpoint_name == "embeddings.word_embeddings.weight");
  CHECK(report.renamed.front().model_name == "bert.embeddings.word_embeddings.weight");
  CHECK(max_diff_to_reference(qa, report.loaded, same_name) == 0.0);

  // A BertModel (slots without the prefix) loading the QA checkpoint: the head is unused.
  auto specs = bert_qa_parameters(c, "");
  specs.resize(specs.size() - 2);
  Parameters<float> model(specs);
  const auto reverse = mpt::io::load_parameters(tiny, model.slots, quiet_options());
  CHECK(reverse.missing.empty());
  CHECK(reverse.unused == std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"});
  CHECK(max_diff_to_reference(model, reverse.loaded, [](const std::string& n) { return "bert." + n; }) == 0.0);
}

TEST_CASE("load_parameters: a sharded checkpoint (model.safetensors.index.json) loads like one file") {
  TempDir dir("sharded");
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  const auto whole = mpt::io::SafetensorsFile::open(tiny / "model.safetensors");
  // Layer 0 and the embeddings in one shard, the rest in another, as save_pretrained splits.
  std::vector<Tensor<float>> keep;
  keep.reserve(whole.size());
  std::vector<mpt::io::NamedTensor> first, second;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (const auto& e : whole.tensors()) {
    keep.push_back(whole.read<float>(e.name));
    const bool early = e.name.starts_with("bert.embeddings.") || e.name.starts_with("bert.encoder.layer.0.");
    (early ? first : second).push_back({e.name, keep.back().view()});
    index["weight_map"][e.name] = early ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  mpt::io::save_safetensors(dir / "model-00001-of-00002.safetensors", first, Dtype::f32, {{"format", "pt"}});
  mpt::io::save_safetensors(dir / "model-00002-of-00002.safetensors", second, Dtype::bf16, {{"format", "pt"}});
  mpt::io::write_file_atomic(dir / "model.safetensors.index.json", index.dump(2));

  Parameters<float> params(bert_qa_parameters(c));
  const auto report = mpt::io::load_parameters(dir.path, params.slots, quiet_options());
  CHECK(report.loaded.size() == params.slots.size());
  CHECK(report.missing.empty());
  CHECK(report.unused.empty());
  // The first shard is exact, the second went through BF16.
  CHECK(max_abs_diff(params["bert.encoder.layer.0.output.dense.weight"], whole.read<float>("bert.encoder.layer.0.output.dense.weight")) == 0.0);
  CHECK(max_abs_diff(params["qa_outputs.weight"], whole.read<float>("qa_outputs.weight")) <= 1.0 / 256);

  // A shard outside the folder, or a tensor missing from its shard, is refused.
  index["weight_map"]["qa_outputs.bias"] = "../model-00002-of-00002.safetensors";
  mpt::io::write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir.path, params.slots, quiet_options()),
                       doctest::Contains("'qa_outputs.bias' maps to \"../model-00002-of-00002.safetensors\", which is not a file name"), mpt::Error);
  index["weight_map"]["qa_outputs.bias"] = "model-00001-of-00002.safetensors";
  mpt::io::write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir.path, params.slots, quiet_options()), doctest::Contains("'qa_outputs.bias' is not in its shard"),
                       mpt::Error);
  mpt::io::write_file_atomic(dir / "model.safetensors.index.json", std::string_view("{\"weight_map\": 3}"));
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir.path, params.slots, quiet_options()), doctest::Contains("weight_map"), mpt::Error);
}

TEST_CASE("load_parameters: shape mismatches and ambiguous checkpoints are errors naming the tensors") {
  TempDir dir("mismatch");
  BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  c.intermediate_size = 48;
  Parameters<float> params(bert_qa_parameters(c));
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(tiny, params.slots, quiet_options()),
                       doctest::Contains("tensor 'bert.encoder.layer.0.intermediate.dense.weight' has shape [64, 32] but BertForQuestionAnswering "
                                         "parameter 'bert.encoder.layer.0.intermediate.dense.weight' has shape [48, 32]"),
                       mpt::Error);

  Tensor<float> a(Shape{4}), b(Shape{4});
  const std::vector<mpt::io::NamedTensor> both = {{"bert.LayerNorm.gamma", a.view()}, {"bert.LayerNorm.weight", b.view()}};
  mpt::io::save_safetensors(dir / "both.safetensors", both, Dtype::f32);
  std::vector<ParameterSlot> slot = {{"bert.LayerNorm.weight", a.view()}};
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir / "both.safetensors", slot, quiet_options()),
                       doctest::Contains("'bert.LayerNorm.gamma' and 'bert.LayerNorm.weight' both provide"), mpt::Error);
  std::vector<ParameterSlot> twice = {{"x", a.view()}, {"x", b.view()}};
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir / "both.safetensors", twice, quiet_options()), doctest::Contains("'x' twice"), mpt::Error);
  CHECK_THROWS_WITH_AS(mpt::io::load_parameters(dir.path, slot, quiet_options()),
                       doctest::Contains("has neither model.safetensors nor model.safetensors.index.json"), mpt::Error);
}

TEST_CASE_TEMPLATE("save_pretrained writes a folder that loads back", P, mpt::precision::fp32, mpt::precision::bf16_mixed) {
  using T = typename P::param_t;
  TempDir dir("save");
  const BertConfig c = BertConfig::from_json_file(tiny / "config.json");
  Parameters<T> params(bert_qa_parameters(c));
  mpt::io::load_parameters(tiny, params.slots, quiet_options());

  for (Dtype dtype : {Dtype::f32, Dtype::bf16}) {
    CAPTURE(mpt::io::dtype_name(dtype));
    const fs::path out = dir / ("model_" + std::string(mpt::io::dtype_name(dtype)));
    mpt::io::save_pretrained(out, c.to_json(), mpt::io::named_tensors(params.slots), dtype, tiny / "vocab.txt");
    // Exactly the three files, no temporaries left behind.
    std::vector<std::string> files;
    for (const auto& f : fs::directory_iterator(out)) files.push_back(f.path().filename().string());
    std::sort(files.begin(), files.end());
    CHECK(files == std::vector<std::string>{"config.json", "model.safetensors", "vocab.txt"});
    CHECK(mpt::io::read_file(out / "vocab.txt") == mpt::io::read_file(tiny / "vocab.txt"));

    const auto config = nlohmann::json::parse(mpt::io::read_text_file(out / "config.json"));
    CHECK(config.at("architectures") == nlohmann::json::array({"BertForQuestionAnswering"}));
    CHECK(config.at("model_type") == "bert");
    CHECK(config.at("torch_dtype") == (dtype == Dtype::bf16 ? "bfloat16" : "float32"));
    CHECK(BertConfig::from_json_file(out / "config.json").hidden_size == 32);

    const auto file = mpt::io::SafetensorsFile::open(out / "model.safetensors");
    CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    CHECK(file.size() == params.slots.size());
    for (const auto& e : file.tensors()) CHECK(e.dtype == dtype);

    Parameters<T> reloaded(bert_qa_parameters(c), -1.0f);
    const auto report = mpt::io::load_parameters(out, reloaded.slots, quiet_options());
    CHECK(report.loaded.size() == params.slots.size());
    // Lossless unless fp32 parameters were narrowed to a BF16 file.
    const bool lossless = dtype == Dtype::f32 || std::is_same_v<T, bf16>;
    std::size_t differ = 0;
    for (std::size_t k = 0; k < params.slots.size(); ++k) {
      const auto& a = *params.storage[k];
      const auto& b = *reloaded.storage[k];
      for (std::size_t i = 0; i < a.size(); ++i) {
        const float expect = lossless ? mpt::to_float(a[i]) : mpt::round_to_bf16(mpt::to_float(a[i]));
        differ += mpt::to_float(b[i]) != expect;
      }
    }
    CHECK(differ == 0);
  }
  CHECK_THROWS_WITH_AS(mpt::io::save_pretrained(dir / "f16", c.to_json(), mpt::io::named_tensors(params.slots), Dtype::f16), doctest::Contains("F16"),
                       mpt::Error);
}

TEST_CASE_TEMPLATE("load_pretrained / save_pretrained with nn::Parameters: master weights in, compute copy refreshed", P, mpt::precision::fp32,
                   mpt::precision::bf16_mixed) {
  using master_t = typename P::master_t;
  TempDir dir("nn_parameters");
  const BertConfig c = BertConfig::from_json_file(tiny / "legacy_hub/config.json");
  const auto role_of = [](const std::string& n) {
    if (n.ends_with("LayerNorm.weight")) return mpt::nn::ParamRole::norm_weight;
    if (n.ends_with("LayerNorm.bias")) return mpt::nn::ParamRole::norm_bias;
    if (n.find(".embeddings.") != std::string::npos) return mpt::nn::ParamRole::embedding;
    return n.ends_with(".bias") ? mpt::nn::ParamRole::linear_bias : mpt::nn::ParamRole::linear_weight;
  };
  mpt::nn::Parameters<P> params;
  for (const ParameterSpec& s : bert_qa_parameters(c)) params.declare(s.name, s.shape, role_of(s.name));
  params.allocate();

  const auto report = mpt::nn::load_pretrained(tiny / "legacy_hub", params, c, quiet_options());
  CHECK(report.missing == std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"});
  // Master weights hold the file's fp32 values exactly; the compute copy is their rounding.
  const auto ref = mpt::io::SafetensorsFile::open(tiny / "model.safetensors");
  const auto id = params.find("bert.encoder.layer.1.attention.self.query.weight");
  REQUIRE(id != nullptr);
  const auto expected = ref.read<float>(id->name);
  const mpt::nn::ParamId pid = static_cast<mpt::nn::ParamId>(id - params.entries().data());
  std::size_t differ = 0;
  for (std::size_t k = 0; k < expected.size(); ++k) {
    differ += params.master(pid)[k] != static_cast<master_t>(expected[k]);
    differ += mpt::to_float(params.compute(pid)[k]) != (std::is_same_v<typename P::param_t, bf16> ? mpt::round_to_bf16(expected[k]) : expected[k]);
  }
  CHECK(differ == 0);
  // Roles chose the initialization of the new head.
  const auto* bias = params.find("qa_outputs.bias");
  REQUIRE(bias != nullptr);
  CHECK(params.master(static_cast<mpt::nn::ParamId>(bias - params.entries().data()))[1] == master_t(0));

  mpt::nn::save_pretrained(dir / "out", c, params, Dtype::f32, tiny / "vocab.txt");
  mpt::nn::Parameters<P> again;
  for (const ParameterSpec& s : bert_qa_parameters(c)) again.declare(s.name, s.shape, role_of(s.name));
  again.allocate();
  const auto reload = mpt::nn::load_pretrained(dir / "out", again, c, quiet_options());
  CHECK(reload.missing.empty());
  CHECK(reload.unused.empty());
  CHECK(std::ranges::equal(params.full_precision_master(), again.full_precision_master()));
  CHECK(std::ranges::equal(params.matmul_master(), again.matmul_master()));
  // A LayerNorm weight is read in full precision: it has a master and no compute copy.
  const auto norm = params.id_of("bert.encoder.layer.1.attention.output.LayerNorm.weight");
  CHECK(params.master(norm)[0] == static_cast<master_t>(ref.read<float>("bert.encoder.layer.1.attention.output.LayerNorm.weight")[0]));
  if constexpr (std::is_same_v<typename P::param_t, bf16>) {
    CHECK_THROWS_WITH_AS(params.compute(norm), doctest::Contains("read in full precision"), mpt::Error);
  }
}
