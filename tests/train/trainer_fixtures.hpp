// Models and data for the Trainer's tests: a toy regression (not BERT: the
// Trainer is a template over any model of the TrainableModel shape), and a tiny
// BERT-QA on random labelled features.
#pragma once

#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>
#include <unistd.h>

namespace fixtures {

namespace train = mpt::train;

// ---- a toy model: y = w . x + t[c] (a weight vector and a lookup table) ----------------

struct ToyBatchView {
  std::span<const float> x;         // [n, d]
  std::span<const float> y;         // [n]
  std::span<const std::int32_t> c;  // [n]
};

template <mpt::PrecisionPolicy P>
class ToyRegression {
 public:
  using policy = P;
  struct Output {
    double loss = 0;
  };

  ToyRegression(std::size_t d, std::size_t classes) : d_(d) {
    w_ = params_.declare("toy.linear.weight", mpt::Shape{1, static_cast<std::int64_t>(d)}, mpt::nn::ParamRole::linear_weight);
    t_ = params_.declare("toy.table.weight", mpt::Shape{static_cast<std::int64_t>(classes), 1}, mpt::nn::ParamRole::embedding);
    params_.allocate();
  }
  mpt::nn::Parameters<P>& parameters() noexcept { return params_; }
  const mpt::nn::Parameters<P>& parameters() const noexcept { return params_; }

  Output forward(const ToyBatchView& b, const mpt::nn::StepOptions&) {
    batch_ = b;
    const std::size_t n = b.y.size();
    residual_.assign(n, 0.0);
    const auto w = params_.compute(w_);
    const auto t = params_.master(t_);
    double loss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double pred = static_cast<double>(t[static_cast<std::size_t>(b.c[i])]);
      for (std::size_t k = 0; k < d_; ++k) pred += static_cast<double>(w[k]) * static_cast<double>(b.x[i * d_ + k]);
      residual_[i] = pred - static_cast<double>(b.y[i]);
      loss += residual_[i] * residual_[i];
    }
    return {loss / static_cast<double>(n)};
  }
  void backward(double multiplier) {
    const std::size_t n = batch_.y.size();
    auto gw = params_.grad(w_);
    auto gt = params_.grad(t_);
    for (std::size_t i = 0; i < n; ++i) {
      const double g = multiplier * 2.0 * residual_[i] / static_cast<double>(n);
      for (std::size_t k = 0; k < d_; ++k) gw[k] += static_cast<float>(g * static_cast<double>(batch_.x[i * d_ + k]));
      gt[static_cast<std::size_t>(batch_.c[i])] += static_cast<float>(g);
    }
  }
  void save_pretrained(const std::filesystem::path& dir) const {
    std::filesystem::create_directories(dir);
    mpt::io::save_safetensors(dir / "model.safetensors", mpt::nn::master_tensors(params_), mpt::io::Dtype::f32);
  }

 private:
  std::size_t d_;
  mpt::nn::Parameters<P> params_;
  mpt::nn::ParamId w_ = 0, t_ = 0;
  ToyBatchView batch_;
  std::vector<double> residual_;
};

// y = w_true . x + bias[c] + small noise; `poison` puts an inf into sample `poison`'s x.
struct ToyData {
  std::size_t d = 4;
  std::vector<float> x, y;
  std::vector<std::int32_t> c;
  std::size_t size() const noexcept { return y.size(); }

  struct batch_type {
    std::vector<float> x, y;
    std::vector<std::int32_t> c;
    ToyBatchView view() const { return {x, y, c}; }
    std::size_t tokens() const noexcept { return y.size(); }
  };
  void collate(std::span<const std::size_t> indices, batch_type& b) const {
    b.x.clear();
    b.y.clear();
    b.c.clear();
    for (std::size_t i : indices) {
      b.x.insert(b.x.end(), x.begin() + static_cast<std::ptrdiff_t>(i * d), x.begin() + static_cast<std::ptrdiff_t>((i + 1) * d));
      b.y.push_back(y[i]);
      b.c.push_back(c[i]);
    }
  }

  static ToyData make(std::size_t n, unsigned seed = 1) {
    ToyData data;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const float w_true[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    const float bias[3] = {1.0f, -2.0f, 0.5f};
    for (std::size_t i = 0; i < n; ++i) {
      float y = 0;
      for (std::size_t k = 0; k < data.d; ++k) {
        const float v = normal(rng);
        data.x.push_back(v);
        y += w_true[k] * v;
      }
      const auto c = static_cast<std::int32_t>(i % 3);
      data.c.push_back(c);
      data.y.push_back(y + bias[c] + 0.01f * normal(rng));
    }
    return data;
  }
};

// ---- a tiny BERT-QA on random labelled features -------------------------------------

inline mpt::nn::BertConfig tiny_bert_config(double dropout = 0.1) {
  mpt::nn::BertConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 64;
  c.max_position_embeddings = 32;
  c.hidden_dropout_prob = dropout;
  c.attention_probs_dropout_prob = dropout;
  return c;
}

// n features of `seq` tokens: [CLS] q q q [SEP] context... [SEP] pad, the answer a span of
// the context marked by its token ids (so the task can be learned).
inline mpt::data::QaFeatures random_qa_features(std::size_t n, std::size_t seq, unsigned seed) {
  mpt::data::QaFeatures f;
  f.max_seq_length = seq;
  f.padded = true;
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = seq - (rng() % 4);
    f.row_begin.push_back(f.row_begin.back() + seq);
    const std::size_t start = 6 + rng() % (len - 10), end = start + rng() % 3;
    for (std::size_t t = 0; t < seq; ++t) {
      std::int32_t id = t == 0 ? 2 : (t == 4 || t == len - 1) ? 3 : t >= len ? 0 : static_cast<std::int32_t>(10 + rng() % 40);
      if (t >= start && t <= end) id = 60 + static_cast<std::int32_t>(t - start);
      f.input_ids.push_back(t < len ? id : 0);
      f.token_type_ids.push_back(t > 4 && t < len ? 1 : 0);
      f.attention_mask.push_back(t < len ? 1 : 0);
    }
    f.example_index.push_back(i);
    f.start_positions.push_back(static_cast<std::int32_t>(start));
    f.end_positions.push_back(static_cast<std::int32_t>(end));
  }
  return f;
}

// Bits of every parameter's true master weights, in declaration order.
template <class P>
std::vector<std::uint32_t> master_bits(const mpt::nn::Parameters<P>& params) {
  std::vector<std::uint32_t> bits;
  std::vector<float> values;
  for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
    values.resize(params.entry(id).size());
    params.read_master(id, 0, values);
    for (float v : values) bits.push_back(std::bit_cast<std::uint32_t>(v));
  }
  return bits;
}

// The "loss" of every training log entry, in order.
inline std::vector<double> logged_losses(const nlohmann::ordered_json& history) {
  std::vector<double> out;
  for (const auto& e : history)
    if (e.contains("loss")) out.push_back(e["loss"].get<double>());
  return out;
}

// A fresh output_dir under the temp folder.
inline std::filesystem::path temp_output(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("mpt_trainer_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// Progress lines go to a null stream in tests (the suite's output stays readable).
inline std::unique_ptr<train::TrainerCallback> quiet_progress() {
  static std::FILE* null = std::fopen("/dev/null", "w");
  return std::make_unique<train::ProgressCallback>(null, false);
}

}  // namespace fixtures
