// BertForQuestionAnswering against PyTorch (tests/fixtures/bert_tiny, made by
// tools/gen_bert_fixtures.py with torch 1.13.1) and against finite differences.
#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>
#include <unistd.h>

namespace {
const std::filesystem::path tiny = std::filesystem::path(MPT_TEST_DATA) / "bert_tiny";

// The fixture batch: I64 tensors narrowed to int32, as the tokenizer makes them.
struct FixtureBatch {
  mpt::Tensor<std::int32_t> ids, types, mask, start, end;
  mpt::nn::QaBatch view() const { return {ids.view(), types.view(), mask.view(), start.view(), end.view()}; }
};

mpt::Tensor<std::int32_t> read_i64(const mpt::io::SafetensorsFile& file, const char* name) {
  const auto& e = file.at(name);
  REQUIRE(e.dtype == mpt::io::Dtype::i64);
  mpt::Tensor<std::int32_t> t(e.shape());
  for (std::size_t i = 0; i < t.size(); ++i) {
    std::int64_t v;
    std::memcpy(&v, e.bytes.data() + 8 * i, 8);
    t[i] = static_cast<std::int32_t>(v);
  }
  return t;
}

FixtureBatch fixture_batch() {
  const auto file = mpt::io::SafetensorsFile::open(tiny / "batch.safetensors");
  return {read_i64(file, "input_ids"), read_i64(file, "token_type_ids"), read_i64(file, "attention_mask"), read_i64(file, "start_positions"),
          read_i64(file, "end_positions")};
}

// Max |a - b| and that over max |b|, printed per tensor as llm.c's test does.
struct Diff {
  double max_abs = 0, max_ref = 0;
  double rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }
};
template <class T>
Diff compare(const std::string& name, const T* got, const mpt::Tensor<float>& expected) {
  Diff d;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(static_cast<double>(got[i]) - expected[i]));
    d.max_ref = std::max(d.max_ref, std::fabs(static_cast<double>(expected[i])));
  }
  std::printf("  %-66s max|diff| %.3e  rel %.3e\n", name.c_str(), d.max_abs, d.rel());
  return d;
}

struct Expected {
  mpt::io::SafetensorsFile file;
  nlohmann::json spread;  // autocast vs fp32, per tensor
  mpt::Tensor<float> get(const std::string& name) const { return file.read<float>(name); }
};
Expected expected(const char* file) {
  std::ifstream in(tiny / "expected.json");
  nlohmann::json meta = nlohmann::json::parse(in);
  return {mpt::io::SafetensorsFile::open(tiny / file), meta["autocast_vs_fp32"]};
}

template <class P>
struct RunResult {
  std::unique_ptr<mpt::nn::BertForQuestionAnswering<P>> model;
  mpt::nn::QaOutput<typename P::accum_t> out;
};

template <class P>
RunResult<P> run_fixture(const FixtureBatch& batch) {
  auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  auto model = std::make_unique<mpt::nn::BertForQuestionAnswering<P>>(config);
  const std::nullptr_t quiet = nullptr;  // no warnings
  const auto report = model->load_pretrained(tiny, quiet);
  REQUIRE(report.missing.empty());
  REQUIRE(report.unused.empty());
  auto out = model->forward(batch.view(), {.training = true, .seed = 1, .forward_index = 0});  // dropout 0 in the config
  model->backward();
  return {std::move(model), out};
}
}  // namespace

TEST_CASE("fp32 BERT-QA matches PyTorch fp32: logits, loss, hidden states, every gradient") {
  const FixtureBatch batch = fixture_batch();
  const Expected exp = expected("expected_fp32.safetensors");
  auto [model, out] = run_fixture<mpt::precision::fp32>(batch);
  std::printf("fp32 vs PyTorch fp32:\n");
  // Summation order is the only difference: ~1e-5 of each tensor's scale.
  constexpr double tolerance = 2e-5;
  CHECK(compare("start_logits", out.start_logits.data(), exp.get("start_logits")).rel() < tolerance);
  CHECK(compare("end_logits", out.end_logits.data(), exp.get("end_logits")).rel() < tolerance);
  const float loss = static_cast<float>(out.loss);
  CHECK(compare("loss", &loss, exp.get("loss")).rel() < tolerance);
  const auto hidden = model->hidden_states();
  for (std::size_t l = 0; l < hidden.size(); ++l) {
    const std::string name = "hidden_states." + std::to_string(l);
    CHECK(compare(name, hidden[l].data(), exp.get(name)).rel() < tolerance);
  }
  auto& params = model->parameters();
  const auto zero_grads = nlohmann::json::parse(std::ifstream(tiny / "expected.json"))["grads_zero_in_exact_arithmetic"];
  for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
    const std::string name = "grad." + params.entry(id).name;
    const Diff d = compare(name, params.grad(id).data(), exp.get(name));
    if (zero_grads.contains(name)) {
      CHECK(d.max_abs < 1e-6);  // zero in exact arithmetic: only rounding noise remains
    } else {
      CHECK(d.rel() < tolerance);
    }
  }
}

TEST_CASE("bf16_mixed BERT-QA stays as close to PyTorch fp32 as autocast itself does") {
  // Tolerance per tensor: 3x the distance torch.autocast(bfloat16) itself
  // lands from fp32 on this batch (tests/fixtures/bert_tiny/README.md), floored at
  // 1e-4 of the tensor's scale for tensors autocast leaves nearly exact.
  const FixtureBatch batch = fixture_batch();
  const Expected fp32 = expected("expected_fp32.safetensors");
  const Expected autocast = expected("expected_bf16_autocast.safetensors");
  auto [model, out] = run_fixture<mpt::precision::bf16_mixed>(batch);
  const auto tolerance = [&](const std::string& name) { return std::max(3.0 * fp32.spread[name]["max_rel"].get<double>(), 1e-4); };
  std::printf("bf16_mixed vs PyTorch fp32 (and vs autocast):\n");
  for (const char* name : {"start_logits", "end_logits"}) {
    const auto* got = std::string(name) == "start_logits" ? out.start_logits.data() : out.end_logits.data();
    CHECK(compare(name, got, fp32.get(name)).rel() < tolerance(name));
    compare(std::string(name) + " (vs autocast)", got, autocast.get(name));
  }
  const float loss = static_cast<float>(out.loss);
  CHECK(compare("loss", &loss, fp32.get("loss")).rel() < tolerance("loss"));
  auto& params = model->parameters();
  const auto zero_grads = nlohmann::json::parse(std::ifstream(tiny / "expected.json"))["grads_zero_in_exact_arithmetic"];
  for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
    const std::string name = "grad." + params.entry(id).name;
    const Diff d = compare(name, params.grad(id).data(), fp32.get(name));
    if (zero_grads.contains(name)) {
      CHECK(d.max_abs < 3 * zero_grads[name]["autocast_max_abs"].get<double>());
    } else {
      CHECK(d.rel() < tolerance(name));
    }
  }
}

TEST_CASE("the arenas are sized exactly: one step uses what activation_bytes() promised") {
  const FixtureBatch batch = fixture_batch();
  auto [model, out] = run_fixture<mpt::precision::bf16_mixed>(batch);
  const std::int64_t b = batch.ids.dim(0), s = batch.ids.dim(1);
  CHECK(model->activation_arena().high_water() == model->activation_bytes(b, s, true));
  CHECK(model->workspace_arena().high_water() == model->workspace_bytes(b, s));
  const auto mem = model->memory();
  MESSAGE("parameters " << mem.parameters << " B, gradients " << mem.gradients << " B, activations " << mem.activations << " B");
}

TEST_CASE("a batch whose arenas cannot fit in the memory left is refused before anything is allocated") {
  const auto available = mpt::available_memory();
  REQUIRE(available.has_value());  // Linux: MemAvailable at least
  mpt::nn::BertConfig config;
  config.vocab_size = 30;
  config.hidden_size = 64;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.intermediate_size = 128;
  config.max_position_embeddings = 512;
  mpt::nn::BertForQuestionAnswering<mpt::precision::fp32> model(config);
  // Twice the available memory in activations: a batch Linux would hand out (overcommit) and then kill for.
  const std::size_t per_sample = model.activation_bytes(1, 512, true);
  const auto batch = static_cast<std::int64_t>(2 * available->bytes / per_sample + 1);
  const std::string what = "a training step on batch " + std::to_string(batch) + " x sequence 512";
  CHECK_THROWS_WITH_AS(model.reserve(batch, 512, true), doctest::Contains(what.c_str()), mpt::Error);
  CHECK_THROWS_WITH_AS(model.reserve(batch, 512, true), doctest::Contains("lower the batch size or the sequence length"), mpt::Error);
  CHECK(model.memory().activations == 0);  // nothing was allocated
  model.reserve(2, 512, true);             // what fits, fits
  CHECK(model.memory().activations >= model.activation_bytes(2, 512, true));

  // A config.json with a vocabulary of 10^9 tokens: terabytes of embeddings, refused at construction.
  mpt::nn::BertConfig huge = config;
  huge.vocab_size = 1'000'000'000;
  huge.hidden_size = 768;
  huge.num_attention_heads = 12;
  CHECK_THROWS_WITH_AS(mpt::nn::BertForQuestionAnswering<mpt::precision::fp32>{huge}, doctest::Contains("choose a smaller configuration"),
                       mpt::Error);
}

TEST_CASE("finite differences in fp64: every parameter of a tiny BERT-QA with dropout") {
  // Central differences with h = 1e-6 in double have truncation error
  // O(h^2 * f''') ~ 1e-12 and rounding error ~ 1e-16 / h ~ 1e-10 relative to
  // the loss: gradients must agree to 1e-6 of the larger of |analytic| and 1e-3.
  mpt::nn::BertConfig config;
  config.vocab_size = 23;
  config.hidden_size = 8;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 2;
  config.intermediate_size = 12;
  config.max_position_embeddings = 8;
  config.hidden_dropout_prob = 0.2;  // fixed keys: the same mask for every evaluation
  config.attention_probs_dropout_prob = 0.2;
  mpt::nn::BertForQuestionAnswering<mpt::precision::fp64> model(config);
  model.init_weights(7);
  auto& params = model.parameters();
  for (auto part : {params.full_precision_master(), params.matmul_master()})
    for (double& w : part) w *= 10;  // larger than BERT's 0.02 so every path matters

  mpt::Tensor<std::int32_t> ids(mpt::Shape{2, 6}), types(mpt::Shape{2, 6}), mask(mpt::Shape{2, 6}), start(mpt::Shape{2}), end(mpt::Shape{2});
  std::mt19937 rng(mpt::test::seed(3));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int32_t>(1 + rng() % 22);
    types[i] = static_cast<std::int32_t>(i % 6 >= 3);
    mask[i] = !(i >= 10);  // the second row has two padding tokens
  }
  start[0] = 2, end[0] = 4, start[1] = 1, end[1] = 9;  // 9 is clamped to 6 and ignored
  const mpt::nn::QaBatch batch{ids.view(), types.view(), mask.view(), start.view(), end.view()};
  const mpt::nn::StepOptions options{.training = true, .seed = 11, .forward_index = 3};

  params.zero_grad();
  model.forward(batch, options);
  model.backward();
  const std::vector<double> analytic(params.grad_flat().begin(), params.grad_flat().end());

  std::size_t checked = 0;
  for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
    const auto& e = params.entry(id);
    auto w = params.master(id);
    double worst = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const std::size_t i = (k * 7919 + id) % e.size();
      const double saved = w[i];
      constexpr double h = 1e-6;
      w[i] = saved + h;
      const double up = model.forward(batch, options).loss;
      w[i] = saved - h;
      const double down = model.forward(batch, options).loss;
      w[i] = saved;
      const double numeric = (up - down) / (2 * h);
      const double a = analytic[e.offset + i];
      const double err = std::fabs(numeric - a) / std::max(std::fabs(a), 1e-3);
      worst = std::max(worst, err);
      ++checked;
    }
    CAPTURE(e.name);
    CHECK(worst < 1e-6);
  }
  MESSAGE(checked << " gradient entries checked by central differences");
}

TEST_CASE("a Hub-style checkpoint (legacy names, pre-training heads, no qa_outputs) loads as transformers loads it") {
  auto config = mpt::nn::BertConfig::from_json_file(tiny / "legacy_hub" / "config.json");
  mpt::nn::BertForQuestionAnswering<mpt::precision::fp32> legacy(config), modern(config);
  std::vector<std::string> warnings;
  const auto report = legacy.load_pretrained(tiny / "legacy_hub", [&](const std::string& m) { warnings.push_back(m); });
  CHECK(report.missing == std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"});
  CHECK(std::any_of(report.unused.begin(), report.unused.end(), [](const std::string& n) { return n.rfind("cls.", 0) == 0; }));
  CHECK_FALSE(report.renamed.empty());  // LayerNorm.gamma / .beta
  REQUIRE(warnings.size() >= 2);
  CHECK(warnings[0].find("were not used when initializing BertForQuestionAnswering") != std::string::npos);
  const std::nullptr_t quiet = nullptr;  // no warnings
  modern.load_pretrained(tiny, quiet);
  // Every encoder weight arrived under its modern name with the same values.
  const auto& a = legacy.parameters();
  const auto& b = modern.parameters();
  for (mpt::nn::ParamId id = 0; id < a.count(); ++id) {
    const auto& e = a.entry(id);
    if (e.name.rfind("qa_outputs", 0) == 0) continue;
    const auto x = a.master(id), y = b.master(id);
    CAPTURE(e.name);
    CHECK(std::equal(x.span().begin(), x.span().end(), y.span().begin()));
  }
}

TEST_CASE("save_pretrained writes an F32 folder (weights, config, vocab) that loads back bit-identically") {
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_test_save_pretrained_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  mpt::nn::BertForQuestionAnswering<mpt::precision::bf16_mixed> model(config), again(config);
  const std::nullptr_t quiet = nullptr;  // no warnings
  model.load_pretrained(tiny, quiet);
  model.save_pretrained(dir, mpt::io::Dtype::f32, tiny / "vocab.txt");
  CHECK(std::filesystem::exists(dir / "vocab.txt"));
  const auto report = again.load_pretrained(dir, quiet);
  CHECK(report.missing.empty());
  CHECK(report.unused.empty());
  const auto& x = model.parameters();
  const auto& y = again.parameters();
  CHECK(std::ranges::equal(x.full_precision_master(), y.full_precision_master()));
  CHECK(std::ranges::equal(x.matmul_master(), y.matmul_master()));
  const auto saved = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  CHECK(saved["architectures"][0] == "BertForQuestionAnswering");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a BF16 folder: saving rounds each master once, and loading it back gives the model's own bf16 compute weights, bit for bit") {
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_test_save_bf16_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  mpt::nn::BertForQuestionAnswering<mpt::precision::bf16_mixed> model(config), again(config);
  model.load_pretrained(tiny, nullptr);  // fp32 values, most of them not representable in bf16
  model.save_pretrained(dir, mpt::io::Dtype::bf16);
  const auto file = mpt::io::SafetensorsFile::open(dir / "model.safetensors");
  for (const auto& e : file.tensors()) CHECK(e.dtype == mpt::io::Dtype::bf16);
  again.load_pretrained(dir, nullptr);
  const auto& x = model.parameters();
  const auto& y = again.parameters();
  std::size_t not_rounded = 0, inexact = 0;
  for (const auto& [mine, theirs] :
       {std::pair{x.full_precision_master(), y.full_precision_master()}, std::pair{x.matmul_master(), y.matmul_master()}}) {
    REQUIRE(mine.size() == theirs.size());
    for (std::size_t i = 0; i < mine.size(); ++i) {
      not_rounded += theirs[i] != mpt::round_to_bf16(mine[i]);
      inexact += theirs[i] != mine[i];
    }
  }
  CHECK(not_rounded == 0);
  CHECK(inexact > 0);  // the fixture's weights did need rounding: the test saw real bf16 saves
  // The matmul weights the model computes with are the same bits before and after.
  const auto a = model.parameters().matmul_compute(), b = again.parameters().matmul_compute();
  REQUIRE(a.size() == b.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(a[i])) != 0;
  CHECK(differ == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("model + AdamW: bf16_mixed fine-tuning follows the fp32 trajectory on the fixture batch") {
  // 40 AdamW steps (lr 2e-3, clipping at 1, as the Trainer) memorize the batch
  // in both precisions; bf16_mixed must track fp32 step by step. Autocast's own
  // spread on one forward of this model is 5.4e-4 of the loss (bert_tiny/README.md);
  // 40 steps compound it, and 20x that one-step spread (1%) is the bound.
  const FixtureBatch batch = fixture_batch();
  auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  const auto train = [&](auto policy_tag) {
    using P = decltype(policy_tag);
    mpt::nn::BertForQuestionAnswering<P> model(config);
    model.load_pretrained(tiny, nullptr);
    auto& params = model.parameters();
    auto adamw = mpt::train::make_adamw(params, {.weight_decay = 0.01});
    mpt::optim::NoLossScaling none;
    std::vector<double> losses;
    for (std::uint32_t step = 0; step < 40; ++step) {
      params.zero_grad();
      losses.push_back(model.forward(batch.view(), {.training = true, .seed = 3, .forward_index = step}).loss);
      model.backward();
      mpt::optim::clip_and_step(adamw, none, params.grad_flat(), 2e-3, 1.0);
    }
    return losses;
  };
  const auto fp32 = train(mpt::precision::fp32{});
  const auto mixed = train(mpt::precision::bf16_mixed{});
  std::printf("loss: fp32 %.4f -> %.4f, bf16_mixed %.4f -> %.4f\n", fp32.front(), fp32.back(), mixed.front(), mixed.back());
  CHECK(fp32.back() < 0.1 * fp32.front());
  CHECK(mixed.back() < 0.1 * mixed.front());
  double worst = 0;
  for (std::size_t s = 0; s < fp32.size(); ++s) worst = std::max(worst, std::fabs(mixed[s] - fp32[s]) / fp32.front());
  MESSAGE("largest per-step loss difference, relative to the initial loss: " << worst);
  CHECK(worst < 0.01);
}

TEST_CASE("model input errors name the input, its shape and the fix; a batch larger than reserved grows the arenas") {
  mpt::nn::BertConfig config;
  config.vocab_size = 23;
  config.hidden_size = 8;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 2;
  config.intermediate_size = 12;
  config.max_position_embeddings = 8;
  using Model = mpt::nn::BertForQuestionAnswering<mpt::precision::fp32>;
  Model model(config);
  model.init_weights(5);
  const auto tokens = [](std::int64_t b, std::int64_t s, std::int32_t value) {
    mpt::Tensor<std::int32_t> t(mpt::Shape{b, s});
    for (auto& v : t.span()) v = value;
    return t;
  };
  const auto labels = [](std::int64_t b) {
    mpt::Tensor<std::int32_t> t(mpt::Shape{b});
    for (auto& v : t.span()) v = 1;
    return t;
  };
  const mpt::nn::StepOptions eval{};

  // A sequence longer than max_position_embeddings.
  const auto long_ids = tokens(1, 9, 3), long_types = tokens(1, 9, 0), long_mask = tokens(1, 9, 1);
  CHECK_THROWS_WITH_AS(model.forward({long_ids.view(), long_types.view(), long_mask.view(), {}, {}}, eval),
                       doctest::Contains("sequence length 9 exceeds max_position_embeddings 8 of the model; use a max_seq_length of at most 8"),
                       mpt::Error);
  // Mask, token types and labels of the wrong shape.
  const auto ids = tokens(2, 4, 3), types = tokens(2, 4, 0), mask = tokens(2, 4, 1), bad_mask = tokens(2, 3, 1), bad_types = tokens(1, 4, 0);
  CHECK_THROWS_WITH_AS(model.forward({ids.view(), types.view(), bad_mask.view(), {}, {}}, eval), doctest::Contains("attention_mask"), mpt::Error);
  CHECK_THROWS_WITH_AS(model.forward({ids.view(), bad_types.view(), mask.view(), {}, {}}, eval), doctest::Contains("token_type_ids"), mpt::Error);
  const auto three = labels(3), two = labels(2);
  CHECK_THROWS_WITH_AS(model.forward({ids.view(), types.view(), mask.view(), three.view(), two.view()}, eval), doctest::Contains("start_positions"),
                       mpt::Error);
  // A token id outside the vocabulary names the id and where it is.
  auto oov = tokens(2, 4, 3);
  oov(1, 2) = 23;
  CHECK_THROWS_WITH_AS(model.forward({oov.view(), types.view(), mask.view(), {}, {}}, eval), doctest::Contains("token id 23 at position 6"),
                       mpt::Error);
  // Backward without labels.
  model.forward({ids.view(), types.view(), mask.view(), {}, {}}, eval);
  CHECK_THROWS_WITH_AS(model.backward(), doctest::Contains("call forward with start_positions and end_positions first"), mpt::Error);
  // Unsupported activation, at the config and at the model.
  mpt::nn::BertConfig relu = config;
  relu.hidden_act = "relu";
  CHECK_THROWS_WITH_AS(Model{relu}, doctest::Contains("hidden_act \"relu\" is not supported"), mpt::Error);

  // A batch larger than reserve() grows the arenas and gives what a model reserved for it gives.
  model.reserve(1, 4, true);
  const auto big_ids = tokens(3, 8, 5), big_types = tokens(3, 8, 0), big_mask = tokens(3, 8, 1);
  const auto start = labels(3), end = labels(3);
  const mpt::nn::QaBatch big{big_ids.view(), big_types.view(), big_mask.view(), start.view(), end.view()};
  const mpt::nn::StepOptions train{.training = true, .seed = 1};
  const double grown = model.forward(big, train).loss;
  Model reserved(config);
  reserved.init_weights(5);
  reserved.reserve(3, 8, true);
  CHECK(reserved.forward(big, train).loss == grown);
  CHECK(model.activation_arena().capacity() >= model.activation_bytes(3, 8, true));
}
