// ModelOptimizer: one owner for every byte of a parameter, under every weight
// policy; the weights the model reads are the ones the optimizer moves, and the
// folder a model saves holds them.
#include <doctest/doctest.h>
#include <mpt/mpt.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>
#include <unistd.h>

namespace {
namespace optim = mpt::optim;
namespace train = mpt::train;
using mpt::bf16;
const std::filesystem::path tiny = std::filesystem::path(MPT_TEST_DATA) / "bert_tiny";

std::vector<float> random_vector(std::size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// transformers' Trainer exempts from weight decay every parameter of a LayerNorm
// module and every bias (get_decay_parameter_names), which for BERT's names means:
bool transformers_exempts(const std::string& name) { return name.find("bias") != std::string::npos || name.find("LayerNorm") != std::string::npos; }

// load_pretrained without its warnings.
std::nullptr_t quiet() { return nullptr; }

// A batch of 2 features of 16 tokens for the tiny model (vocab 100).
struct Batch {
  mpt::Tensor<std::int32_t> ids{mpt::Shape{2, 16}}, types{mpt::Shape{2, 16}}, mask{mpt::Shape{2, 16}}, start{mpt::Shape{2}}, end{mpt::Shape{2}};
  Batch() {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ids[i] = static_cast<std::int32_t>(1 + (i * 7) % 97);
      types[i] = (i % 16) >= 6;
      mask[i] = (i % 16) < 14;
    }
    start[0] = 7, end[0] = 9, start[1] = 6, end[1] = 6;
  }
  mpt::nn::QaBatch view() const { return {ids.view(), types.view(), mask.view(), start.view(), end.view()}; }
};

std::vector<float> true_master(const mpt::nn::Parameters<mpt::precision::bf16_mixed>& p, mpt::nn::ParamId id) {
  std::vector<float> out(p.entry(id).size());
  p.read_master(id, 0, out);
  return out;
}
}  // namespace

TEST_CASE("ModelOptimizer: the layout puts full-precision parameters first; tables follow the model's roles") {
  using P = mpt::precision::bf16_mixed;
  mpt::nn::Parameters<P> params;
  const auto q = params.declare("encoder.layer.0.attention.self.query.weight", {5, 7}, mpt::nn::ParamRole::linear_weight);
  params.declare("encoder.layer.0.attention.self.query.bias", {5}, mpt::nn::ParamRole::linear_bias);
  const auto ln = params.declare("encoder.layer.0.attention.output.LayerNorm.weight", {7}, mpt::nn::ParamRole::norm_weight);
  params.declare("embeddings.word_embeddings.weight", {3, 7}, mpt::nn::ParamRole::embedding);
  params.allocate();
  CHECK(params.entry(ln).offset == 0);
  CHECK(params.full_count() == 16 + 32);  // 7 and 21 elements, each padded to 16
  CHECK(params.entry(q).offset == params.full_count());
  CHECK(params.compute_bytes() == (48 + 16) * sizeof(bf16));  // the matmul part only
  const auto full = train::parameter_table(params, false), matmul = train::parameter_table(params, true);
  CHECK(full.size() == params.full_count());
  CHECK(matmul.size() == params.size() - params.full_count());
  for (const auto* table : {&full, &matmul}) {
    for (const auto& e : table->entries()) {
      CAPTURE(e.name);
      CHECK(e.decay == !transformers_exempts(e.name));  // the model's roles agree with transformers' rule
    }
  }
}

TEST_CASE("ModelOptimizer with fp32 masters: the same bits as one AdamW over the whole buffer") {
  using P = mpt::precision::bf16_mixed;
  mpt::nn::Parameters<P> model;
  model.declare("bert.encoder.layer.0.attention.self.query.weight", {5, 7}, mpt::nn::ParamRole::linear_weight);
  model.declare("bert.encoder.layer.0.attention.self.query.bias", {7}, mpt::nn::ParamRole::linear_bias);
  model.declare("bert.encoder.layer.0.attention.output.LayerNorm.weight", {7}, mpt::nn::ParamRole::norm_weight);
  model.declare("qa_outputs.weight", {2, 9}, mpt::nn::ParamRole::linear_weight);
  model.allocate();
  const auto init = random_vector(model.size(), 61, 1.0f);
  for (mpt::nn::ParamId id = 0; id < model.count(); ++id) {
    const auto& e = model.entry(id);
    model.write_master(id, 0, std::span<const float>(init.data() + e.offset, e.size()));
  }
  // Reference: one fp32 AdamW over the whole layout, decay by name as transformers decides.
  std::vector<float> reference(model.size(), 0.0f);
  optim::ParameterTable table;
  std::vector<const mpt::nn::ParamEntry*> by_offset;
  for (const auto& e : model.entries()) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (const auto* e : by_offset) {
    table.add_at(e->name, e->offset, e->size(), !transformers_exempts(e->name));
    std::copy_n(init.data() + e->offset, e->size(), reference.data() + e->offset);
  }
  table.set_buffer_size(model.size());
  optim::AdamW<mpt::precision::fp32> one(std::span{reference}, table, {.weight_decay = 0.1});
  auto opt = train::make_adamw(model, {.weight_decay = 0.1});
  static_assert(std::is_same_v<decltype(opt)::weights_policy, optim::weights::fp32_master>);
  for (int step = 0; step < 4; ++step) {
    auto grads = model.grad_flat();
    const auto g = random_vector(grads.size(), 70 + step, 0.1f);
    std::copy(g.begin(), g.end(), grads.begin());
    opt.step(model.grad_flat(), 1e-2);
    one.step(model.grad_flat(), 1e-2);
  }
  std::size_t same = 0, rounded = 0, total = 0;
  for (mpt::nn::ParamId id = 0; id < model.count(); ++id) {
    const auto& e = model.entry(id);
    const auto master = model.master(id);
    for (std::size_t i = 0; i < e.size(); ++i, ++total) {
      same += std::bit_cast<std::uint32_t>(master[i]) == std::bit_cast<std::uint32_t>(reference[e.offset + i]);
      rounded += !model.is_matmul(id) || mpt::bf16_bits(model.compute(id)[i]) == mpt::float_to_bf16_bits(master[i]);
    }
  }
  CHECK(same == total);
  CHECK(rounded == total);
  CHECK(opt.state_dict().tensors.size() == 4);  // moments of both parts; the masters are the model's
  CHECK(opt.state_bytes() == 2 * sizeof(float) * model.size());
}

// The defect this design fixes: under split_master and stochastic_rounding the
// LayerNorm and embedding weights the model reads, and the folder it saves, never moved.
TEST_CASE_TEMPLATE("every weight policy trains every tensor, and save_pretrained writes the trained weights", W, optim::weights::fp32_master,
                   optim::weights::split_master, optim::weights::stochastic_rounding) {
  using P = mpt::precision::bf16_mixed;
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_model_optimizer_" + std::string(W::name) + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.load_pretrained(tiny, quiet());
  auto& params = model.parameters();
  std::vector<std::vector<float>> before;
  for (mpt::nn::ParamId id = 0; id < params.count(); ++id) before.push_back(true_master(params, id));
  {
    auto opt = train::make_adamw<W>(params, {.weight_decay = 0.01, .seed = 5});
    CHECK(params.matmul_master_released() == !std::is_same_v<W, optim::weights::fp32_master>);
    optim::NoLossScaling none;
    const Batch batch;
    for (std::uint32_t step = 0; step < 3; ++step) {
      params.zero_grad();
      model.forward(batch.view(), {.training = true, .seed = 1, .forward_index = step});
      model.backward();
      optim::clip_and_step(opt, none, params.grad_flat(), 1e-2, 1.0);
    }
    std::size_t unmoved = 0;
    for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
      const auto now = true_master(params, id);
      if (now == before[id]) {
        ++unmoved;
        MESSAGE(params.entry(id).name << " did not move");
      }
    }
    CHECK(unmoved == 0);
    // What the model reads is the master (full precision) or its image (matmul).
    for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
      if (!params.is_matmul(id)) continue;
      const auto m = true_master(params, id);
      std::size_t mismatched = 0;
      for (std::size_t i = 0; i < m.size(); ++i) {
        const std::uint16_t c = mpt::bf16_bits(params.compute(id)[i]);
        const std::uint32_t u = std::bit_cast<std::uint32_t>(m[i]);
        if constexpr (std::is_same_v<W, optim::weights::fp32_master>) {
          mismatched += c != mpt::float_to_bf16_bits(m[i]);
        } else if constexpr (std::is_same_v<W, optim::weights::split_master>) {
          mismatched += c != (u >> 16);  // the top half
        } else {
          mismatched += (u & 0xFFFFu) != 0 || c != (u >> 16);  // the bf16 value is the master
        }
      }
      CHECK(mismatched == 0);
    }
    model.save_pretrained(dir);
    const auto file = mpt::io::SafetensorsFile::open(dir / "model.safetensors");
    std::size_t differ = 0;
    for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
      const auto saved = file.read<float>(params.entry(id).name);
      const auto now = true_master(params, id);
      for (std::size_t i = 0; i < now.size(); ++i) differ += std::bit_cast<std::uint32_t>(saved[i]) != std::bit_cast<std::uint32_t>(now[i]);
    }
    CHECK(differ == 0);
    // Bytes: one owner each. fp32 master: 4 + 2 per matmul element; split: 2 + 2 (optimizer); rounding: 2.
    const std::size_t matmul = params.size() - params.full_count();
    const std::size_t trail = std::is_same_v<W, optim::weights::split_master> ? 2 * matmul : 0;
    CHECK(opt.state_bytes() == 2 * sizeof(float) * params.size() + trail);
    CHECK(params.master_bytes() == sizeof(float) * (std::is_same_v<W, optim::weights::fp32_master> ? params.size() : params.full_count()));
    CHECK(params.compute_bytes() == sizeof(bf16) * matmul);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a released master is refused where a view of it is asked for, with the way out") {
  using P = mpt::precision::bf16_mixed;
  const auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.init_weights(3);
  auto opt = train::make_adamw<optim::weights::split_master>(model.parameters());
  auto& params = model.parameters();
  CHECK_THROWS_WITH_AS(params.master("qa_outputs.weight"), doctest::Contains("read_master"), mpt::Error);
  CHECK_THROWS_WITH_AS(model.load_pretrained(tiny, quiet()), doctest::Contains("before creating the optimizer"), mpt::Error);
  // write_master reaches the split master exactly: top half in the compute copy, low half in the optimizer.
  const auto id = params.id_of("qa_outputs.bias");
  const std::vector<float> values = {1.2345678f, -0.0001234f};
  params.write_master(id, 0, values);
  std::vector<float> back(2);
  params.read_master(id, 0, back);
  CHECK(std::bit_cast<std::uint32_t>(back[0]) == std::bit_cast<std::uint32_t>(values[0]));
  CHECK(std::bit_cast<std::uint32_t>(back[1]) == std::bit_cast<std::uint32_t>(values[1]));
  CHECK(mpt::bf16_bits(params.compute(id)[0]) == std::bit_cast<std::uint32_t>(values[0]) >> 16);
}

TEST_CASE("evaluation with packed weights reused across batches: the same logits, refreshed after an update") {
  using P = mpt::precision::bf16_mixed;
  const auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  mpt::nn::BertForQuestionAnswering<P> model(config);
  model.load_pretrained(tiny, quiet());
  const Batch batch;
  auto logits = [&](bool reuse) {
    const auto out = model.forward(batch.view(), {.training = false, .reuse_packed_weights = reuse});
    return std::vector<float>(out.start_logits.data(), out.start_logits.data() + out.start_logits.size());
  };
  const auto plain = logits(false);
  CHECK(logits(true) == plain);
  CHECK(logits(true) == plain);  // second batch: the packed copies are reused
  auto opt = train::make_adamw(model.parameters());
  model.forward(batch.view(), {.training = true});
  model.backward();
  optim::NoLossScaling none;
  optim::clip_and_step(opt, none, model.parameters().grad_flat(), 1e-2, 1.0);
  const auto updated = logits(false);
  CHECK(updated != plain);
  CHECK(logits(true) == updated);  // the update made the packed copies stale: repacked
  model.release_packed_weights();
  CHECK(logits(true) == updated);
}

TEST_CASE_TEMPLATE("the whole model gives the same bits on 1 and 2 threads: forward, backward, two AdamW steps", P, mpt::precision::fp32,
                   mpt::precision::bf16_mixed) {
  const auto config = mpt::nn::BertConfig::from_json_file(tiny / "config.json");
  auto run = [&](int threads) {
    mpt::ScopedNumThreads scoped(threads);
    mpt::nn::BertForQuestionAnswering<P> model(config);
    model.load_pretrained(tiny, quiet());
    auto opt = train::make_adamw(model.parameters(), {.weight_decay = 0.01});
    optim::NoLossScaling none;
    const Batch batch;
    std::vector<double> losses;
    for (std::uint32_t step = 0; step < 2; ++step) {
      model.parameters().zero_grad();
      losses.push_back(model.forward(batch.view(), {.training = true, .seed = 9, .forward_index = step}).loss);
      model.backward();
      optim::clip_and_step(opt, none, model.parameters().grad_flat(), 1e-2, 1.0);
    }
    std::vector<float> out;
    for (mpt::nn::ParamId id = 0; id < model.parameters().count(); ++id) {
      std::vector<float> w(model.parameters().entry(id).size());
      model.parameters().read_master(id, 0, w);
      out.insert(out.end(), w.begin(), w.end());
    }
    const auto g = model.parameters().grad_flat();
    out.insert(out.end(), g.begin(), g.end());  // the last step's gradients were zeroed by nobody: compare them too
    return std::pair{losses, out};
  };
  const auto one = run(1), two = run(2);
  CHECK(one.first == two.first);
  CHECK(std::memcmp(one.second.data(), two.second.data(), one.second.size() * sizeof(float)) == 0);
}
