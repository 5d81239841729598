// Every layer's input and parameter gradients against central differences in
// fp64, one layer at a time (the whole model is checked in test_bert.cpp).
#include <doctest/doctest.h>
#include "test_seed.hpp"
#include <mpt/mpt.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

namespace {
using P = mpt::precision::fp64;
using mpt::Shape;
using mpt::Tensor;
using mpt::TensorView;

void fill(TensorView<double> t, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  for (double& v : t.span()) v = normal(rng);
}

// Checks d loss / d x for loss = Σ r ⊙ f(x): `analytic` holds the backward
// result for x, `loss` evaluates the forward again. Central differences with
// h = 1e-6: truncation ~1e-12, and rounding leaves ~1e-9 of absolute noise on
// a loss of order 10 (ε·|loss|/h), which is all an analytically zero gradient
// (key.bias: softmax ignores a per-row shift) shows; hence the 1e-2 floor.
void check_gradient(const char* what, TensorView<double> x, const std::vector<double>& analytic, const std::function<double()>& loss) {
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); i += 1 + x.size() / 24) {
    const double saved = x[i];
    constexpr double h = 1e-6;
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    worst = std::max(worst, std::fabs(numeric - analytic[i]) / std::max(std::fabs(analytic[i]), 1e-2));
  }
  std::printf("  %-44s worst relative error %.2e\n", what, worst);
  CAPTURE(what);
  CHECK(worst < 1e-6);
}

// A layer under test with its own parameters and arenas.
struct Bench {
  mpt::nn::Parameters<P> params;
  mpt::Arena activations{1 << 20}, workspace{1 << 20};
  mpt::nn::Context<P> ctx{params, activations, workspace, true, 5, 2};
  void reset() {
    activations.reset();
    workspace.reset();
  }
  void randomize(std::mt19937& rng) {
    for (mpt::nn::ParamId id = 0; id < params.count(); ++id) fill(params.master(id), rng, 0.5);
  }
  void check_parameters(const std::function<double()>& loss) {
    const std::vector<double> analytic(params.grad_flat().begin(), params.grad_flat().end());
    for (mpt::nn::ParamId id = 0; id < params.count(); ++id) {
      std::vector<double> g(analytic.begin() + static_cast<std::ptrdiff_t>(params.entry(id).offset),
                            analytic.begin() + static_cast<std::ptrdiff_t>(params.entry(id).offset + params.entry(id).size()));
      check_gradient(params.entry(id).name.c_str(), params.master(id), g, loss);
    }
  }
};

double dot(TensorView<const double> a, TensorView<const double> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

TEST_CASE("Linear: input, weight and bias gradients") {
  std::mt19937 rng(mpt::test::seed(1));
  Bench bench;
  mpt::nn::Linear<P> linear(bench.params, "dense", 5, 3);
  bench.params.allocate();
  bench.randomize(rng);
  Tensor<double> x(Shape{4, 5}), y(Shape{4, 3}), r(Shape{4, 3}), dx(Shape{4, 5});
  fill(x, rng);
  fill(r, rng);
  const auto loss = [&] {
    linear.forward(bench.ctx, TensorView<const double>(x), y.view());
    return dot(y, r);
  };
  loss();
  linear.backward(bench.ctx, TensorView<const double>(r), dx.view(), false);
  check_gradient("Linear dx", x, {dx.span().begin(), dx.span().end()}, loss);
  bench.check_parameters(loss);
}

TEST_CASE("LayerNorm: input, gamma and beta gradients") {
  std::mt19937 rng(mpt::test::seed(2));
  Bench bench;
  mpt::nn::LayerNorm<P> norm(bench.params, "LayerNorm", 6, 1e-12);
  bench.params.allocate();
  bench.randomize(rng);
  Tensor<double> x(Shape{3, 6}), y(Shape{3, 6}), r(Shape{3, 6}), dx(Shape{3, 6});
  fill(x, rng);
  fill(r, rng);
  const auto loss = [&] {
    bench.reset();
    norm.forward(bench.ctx, TensorView<const double>(x), y.view());
    return dot(y, r);
  };
  loss();
  norm.backward(bench.ctx, TensorView<const double>(r), dx.view());
  check_gradient("LayerNorm dx", x, {dx.span().begin(), dx.span().end()}, loss);
  bench.check_parameters(loss);
}

TEST_CASE("BertSelfAttention with padding mask and dropout: input and projection gradients") {
  std::mt19937 rng(mpt::test::seed(3));
  Bench bench;
  mpt::nn::BertSelfAttention<P> attention(bench.params, "attention.self", 8, 2, 0.25, 1);
  bench.params.allocate();
  bench.randomize(rng);
  const std::int64_t batch = 2, seq = 5;
  Tensor<double> x(Shape{batch * seq, 8}), y(Shape{batch * seq, 8}), r(Shape{batch * seq, 8}), dx(Shape{batch * seq, 8});
  Tensor<float> mask(Shape{batch, seq});
  mask(1, 3) = mask(1, 4) = std::numeric_limits<float>::lowest();  // the second sequence has 2 padding tokens
  fill(x, rng);
  fill(r, rng);
  const auto loss = [&] {
    bench.reset();
    attention.forward(bench.ctx, TensorView<const double>(x), TensorView<const float>(mask), batch, y.view());
    return dot(y, r);
  };
  loss();
  attention.backward(bench.ctx, TensorView<const double>(r), dx.view());
  check_gradient("BertSelfAttention dx", x, {dx.span().begin(), dx.span().end()}, loss);
  bench.check_parameters(loss);
}

TEST_CASE("BertLayer (attention, add & norm, GELU feed-forward) with dropout: every gradient") {
  std::mt19937 rng(mpt::test::seed(4));
  Bench bench;
  const mpt::nn::BertLayerConfig shape{8, 2, 12, 0.2, 0.2, 1e-12};
  mpt::nn::BertLayer<P> layer(bench.params, "layer.0", shape, 0);
  bench.params.allocate();
  bench.randomize(rng);
  const std::int64_t batch = 2, seq = 4;
  Tensor<double> x(Shape{batch * seq, 8}), y(Shape{batch * seq, 8}), r(Shape{batch * seq, 8}), dx(Shape{batch * seq, 8});
  Tensor<float> mask(Shape{batch, seq});
  mask(0, 3) = std::numeric_limits<float>::lowest();
  fill(x, rng);
  fill(r, rng);
  const auto loss = [&] {
    bench.reset();
    layer.forward(bench.ctx, TensorView<const double>(x), TensorView<const float>(mask), batch, y.view());
    return dot(y, r);
  };
  loss();
  layer.backward(bench.ctx, TensorView<const double>(r), dx.view());
  check_gradient("BertLayer dx", x, {dx.span().begin(), dx.span().end()}, loss);
  bench.check_parameters(loss);
}

TEST_CASE("BertEmbeddings with dropout: table and LayerNorm gradients, none for the padding row") {
  std::mt19937 rng(mpt::test::seed(5));
  Bench bench;
  mpt::nn::BertEmbeddings<P> embeddings(bench.params, "embeddings", {11, 6, 2, 4, 0, 0.2, 1e-12});
  bench.params.allocate();
  bench.randomize(rng);
  Tensor<std::int32_t> ids(Shape{2, 3}), types(Shape{2, 3});
  const std::int32_t id_values[] = {3, 0, 7, 7, 10, 0};  // 0 is the padding token
  for (std::size_t i = 0; i < 6; ++i) {
    ids[i] = id_values[i];
    types[i] = static_cast<std::int32_t>(i % 2);
  }
  Tensor<double> y(Shape{6, 4}), r(Shape{6, 4});
  fill(r, rng);
  const auto loss = [&] {
    bench.reset();
    embeddings.forward(bench.ctx, TensorView<const std::int32_t>(ids), TensorView<const std::int32_t>(types), y.view());
    return dot(y, r);
  };
  loss();
  embeddings.backward(bench.ctx, TensorView<const double>(r));
  const auto word_grad = bench.params.grad(embeddings.word_id());
  for (std::int64_t j = 0; j < 4; ++j) CHECK(word_grad(0, j) == 0.0);  // padding_idx row
  // The numeric gradient of the padding row is not zero (its lookup feeds the
  // output); nn.Embedding(padding_idx) defines it as zero, so compare the rest.
  const auto word = bench.params.master(embeddings.word_id());
  const std::vector<double> analytic(word_grad.span().begin(), word_grad.span().end());
  check_gradient("word_embeddings (rows 1..10)", TensorView<double>(word.data() + 4, Shape{40}),
                 std::vector<double>(analytic.begin() + 4, analytic.end()), loss);
  for (mpt::nn::ParamId id = 1; id < bench.params.count(); ++id) {
    const auto g = bench.params.grad(id);
    check_gradient(bench.params.entry(id).name.c_str(), bench.params.master(id), {g.span().begin(), g.span().end()}, loss);
  }
}
